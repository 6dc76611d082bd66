"""Shared fixtures: the bundled real Higgs data in the algorithm input shape, and one real
store (the Higgs week, daily snapshots, both shipped algorithms) built once per session.

Shared helpers: where the shared real datasets are (`SHARED_DATA`, skipping tests whose files are
missing), the `audit` executable next to the running interpreter and the in-process entry point,
and the bytes of a store file and its WAL (`store_state`)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

import polars as pl
import pytest

from audit import api

DATA = Path(__file__).resolve().parent.parent / "data"
# The real public datasets beside the checkout (../shared/data), wherever the checkout is; the
# environment variable AUDIT_SHARED_DATA points elsewhere (e.g. at a missing folder, to check that
# the tests needing them skip). There is no other fallback.
SHARED_DATA = Path(os.environ.get("AUDIT_SHARED_DATA") or DATA.parent.parent / "shared" / "data")
HIGGS = DATA / "higgs-activity_time.txt.gz"


def shared_file(*parts: str) -> Path:
    """A file of the shared real datasets (it may be missing: see `needs_shared`)."""
    return SHARED_DATA.joinpath(*parts)


def needs_shared(*paths: Path) -> pytest.MarkDecorator:
    """Skip, saying which file is missing, unless every one of the shared dataset files exists."""
    missing = [p for p in paths if not p.is_file()]
    return pytest.mark.skipif(bool(missing), reason="needs the real dataset "
                              + ", ".join(str(p) for p in missing) + " (../shared/data beside the checkout)")


def require_shared(path: Path) -> Path:
    """For a fixture: the shared dataset file, or skip every test that uses the fixture."""
    if not path.is_file():
        pytest.skip(f"needs the real dataset {path} (../shared/data beside the checkout)")
    return path


def audit_executable() -> Path:
    """The installed `audit` script next to the running interpreter (the venv's bin folder)."""
    found = shutil.which("audit", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(f"no `audit` executable next to {sys.executable}; install the package "
                           "(make test does) or run the tests with the venv's python")
    return Path(found)


def run_audit(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`audit ARGS` as a subprocess: the installed entry point, text output captured."""
    return subprocess.run([str(audit_executable()), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def store_state(store: Path) -> tuple[str | None, str | None]:
    """The sha256 of the store file's bytes and of its WAL's (None where a file does not exist)."""
    def digest(p: Path) -> str | None:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return digest(store), digest(store.with_name(store.name + ".wal"))


def audit_main(*args: str) -> tuple[int, str, str]:
    """`audit ARGS` in this process through the real entry point (`audit.cli.main(argv)` and its one
    error handler): (exit code, stdout, stderr)."""
    from audit import cli
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli.main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}


def read_higgs(path: Path = HIGGS) -> pl.DataFrame:
    """The Higgs activity file as interactions: source, target, kind, ts (UTC), weight."""
    raw = pl.read_csv(path, separator=" ", has_header=False,
                      new_columns=["source", "target", "ts", "code"],
                      schema_overrides={"source": pl.String, "target": pl.String,
                                        "ts": pl.Int64, "code": pl.String})
    return raw.select(
        "source", "target",
        pl.col("code").replace_strict(KINDS).alias("kind"),
        pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
        pl.lit(1.0).alias("weight"),
    ).sort(["ts", "source", "target", "kind"])


EMPTY_ACCOUNTS = pl.DataFrame(schema={
    "account_id": pl.String, "handle": pl.String, "followers": pl.Int64,
    "following": pl.Int64, "created_at": pl.Datetime("us", "UTC")})


@pytest.fixture(scope="session")
def higgs_interactions() -> pl.DataFrame:
    """All 563,069 real Higgs interactions (2012-07-01..07)."""
    return read_higgs()


@pytest.fixture(scope="session")
def empty_accounts() -> pl.DataFrame:
    return EMPTY_ACCOUNTS


DAYS = [f"2012-07-0{d}" for d in range(1, 8)]
ALGORITHMS = ("activity@1", "network@2")
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def query(store: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a read-only query on a store file, instants in UTC."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'")
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def read_frame(store: Path, sql: str, params: list | None = None) -> pl.DataFrame:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.sql(sql, params=params).pl()
    finally:
        con.close()


class Clock:
    """A deterministic `now`: each call is one second after the previous one."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        now, self.at = self.at, self.at + timedelta(seconds=1)
        return now


@dataclass(frozen=True)
class RealStore:
    """The session store and the ids in it."""
    path: Path
    batch_id: str
    snapshots: dict[str, str]               # day -> snapshot id
    runs: dict[tuple[str, str], str]        # (day, algorithm) -> run id

    def copy_to(self, folder: Path) -> Path:
        """A private copy for a test that writes to the store or tampers with it."""
        target = folder / "audit.duckdb"
        shutil.copy(self.path, target)
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists():
            shutil.copy(wal, target.with_name(target.name + ".wal"))
        return target


def build_real_store(tmp_path_factory) -> RealStore:
    """Build the real-data store once per session (every module asking for it gets the same one)."""
    base = tmp_path_factory.getbasetemp() / "real-higgs-week"
    ready = base / "ids.json"
    if ready.exists():
        ids = json.loads(ready.read_text())
    else:
        base.mkdir(exist_ok=True)
        store, clock = base / "audit.duckdb", Clock(START)
        batch = api.ingest(store, HIGGS, now=clock())
        assert batch.rows == 563_069
        ids = {"batch_id": batch.batch_id, "snapshots": {}, "runs": {}}
        for day in DAYS:
            snap = api.snapshot(store, as_of=day, window="7d", label=day, now=clock())
            ids["snapshots"][day] = snap.snapshot_id
            for algorithm in ALGORITHMS:
                ids["runs"][f"{day} {algorithm}"] = api.score(store, snap.snapshot_id, algorithm,
                                                              now=clock()).run_id
        ready.write_text(json.dumps(ids))
    return RealStore(path=base / "audit.duckdb", batch_id=ids["batch_id"], snapshots=ids["snapshots"],
                     runs={tuple(k.split(" ")): v for k, v in ids["runs"].items()})


@pytest.fixture(scope="session")
def real(tmp_path_factory) -> RealStore:
    return build_real_store(tmp_path_factory)
