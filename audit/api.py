"""The Python API: the same verbs as the CLI, returning dataclasses and polars frames.

Every function takes the store path first. Writing functions take `now` (the CLI fills it in;
the library never reads a clock) and run in one transaction.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from . import snapshots as snaps
from .ingest import IngestResult, file_sha256, find_by_file, prepare, store_batch
from .snapshots import Snapshot
from .store import connect, resolve, transaction
from .verify import Verification, verify_log

Step = Callable[[str], None]


def quiet(_: str) -> None:
    """A progress callback that shows nothing."""


def ingest(store: str | Path, path: str | Path, *, now: datetime, fmt: str = "auto",
           kind: str | None = None, step: Step = quiet) -> IngestResult:
    """Validate PATH and store it as one batch; the same content again is a no-op."""
    if Path(store).exists() and Path(path).is_file():
        with connect(store) as con:
            known = find_by_file(con, file_sha256(Path(path)))
        if known is not None:
            return known
    prep = prepare(path, fmt, kind, now, step)      # the store is not touched until this passed
    with connect(store, write=True) as con, transaction(con):
        return store_batch(con, prep, now, step)


def snapshot(store: str | Path, *, as_of: datetime | str, now: datetime, window: str | int | None = None,
             label: str | None = None) -> Snapshot:
    """Freeze the batches stored so far as of AS_OF, over WINDOW (e.g. "7d"; None: everything)."""
    instant = snaps.parse_instant(as_of) if isinstance(as_of, str) else as_of
    seconds = snaps.parse_window(window) if isinstance(window, str) or window is None else int(window)
    with connect(store, write=True) as con, transaction(con):
        return snaps.create(con, instant, seconds, label, now)


def snapshots(store: str | Path) -> list[Snapshot]:
    """Every snapshot, oldest as-of first."""
    with connect(store) as con:
        return snaps.list_all(con)


def get_snapshot(store: str | Path, ref: str) -> Snapshot:
    """One snapshot by id, unique prefix, or `latest`."""
    with connect(store) as con:
        found = snaps.get(con, resolve(con, "snapshot", ref, what="snapshot", listing="audit snapshots"))
        assert found is not None
        return found


def verify(store: str | Path, *, step: Step = quiet) -> Verification:
    """Walk the log and recompute every record's content hash."""
    with connect(store) as con:
        return verify_log(con, step)
