"""The DuckDB store: connect, migrate, append records and read them back.

Invariant: records are only inserted. No code path updates or deletes a stored record;
every insert of a record appends an entry to the hash-chained `log` in the same transaction.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from ..errors import AuditError, NotFound, SchemaTooNew, StoreBusy
from . import holder
from .hashing import as_utc, sha256_json
from .schema import MIGRATION_TABLE, MIGRATIONS, SCHEMA_VERSION

GENESIS = "0" * 64


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            served = holder.read(path)
            if served is not None:
                url = served["url"]
                raise StoreBusy(
                    f'store "{path}" is held by the audit service at {url} (pid {served["pid"]}); use its API '
                    f"instead: reads under {url}/api/v1 (e.g. {url}/api/v1/runs), writes as jobs: "
                    f"POST {url}/api/v1/jobs with its bearer token (README, \"Service\")") from None
            raise StoreBusy(
                f'store "{path}" is busy: another audit process is using it; '
                "wait for it to finish and run the command again") from None
        raise AuditError(f'cannot open store "{path}": {exc}') from None
    except duckdb.Error as exc:
        raise AuditError(f'"{path}" is not an audit store (DuckDB could not open it: {exc})') from None
    configure(con)
    return con


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Every connection and cursor reads instants in UTC and draws no progress bar of its own."""
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar = false")   # the CLI shows its own progress
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of an open store: its own connection to the same database, which sees the last
    committed state (DuckDB isolates the connections of one process by snapshot)."""
    return configure(con.cursor())


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied to this store (0 for an empty file)."""
    present = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migration'"
    ).fetchall()[0][0]
    if not present:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migration").fetchall()[0][0]


def pending(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The migrations this store lacks (none for a store that has every one)."""
    done = {r[0] for r in con.execute("SELECT version FROM schema_migration").fetchall()} if schema_version(con) else set()
    return [v for v, _, _ in MIGRATIONS if v not in done]


def _check_version(path: Path, found: int) -> None:
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f'store "{path}" has schema version {found}, newer than this audit '
            f"(which knows up to {SCHEMA_VERSION}); upgrade audit to read it")


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this store lacks, each in its own transaction; return those applied."""
    con.execute(MIGRATION_TABLE)
    # by the set applied, not the highest: a migration numbered below one already applied (branches
    # that merged in another order) is still applied
    done = {r[0] for r in con.execute("SELECT version FROM schema_migration").fetchall()}
    applied = []
    for version, name, ddl in MIGRATIONS:
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(ddl)
            con.execute("INSERT INTO schema_migration VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def check_folder(path: str | Path) -> None:
    """A store may be made only in a folder that exists (nothing is created outside what was asked)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise AuditError(f'store "{path}": the folder "{path.parent}" does not exist; create it first or pass '
                         "another --store")


@contextmanager
def connect(path: str | Path, *, write: bool = False, create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store; a writer migrates it first, a reader refuses a stale store. Only a
    command that can start a store (`create`: ingest, register) makes a missing one."""
    path = Path(path)
    check_folder(path)
    if not create and not path.exists():
        raise NotFound(f'no store at "{path}"; "audit ingest FILE" creates one '
                       "(or pass --store / set AUDIT_STORE)")
    con = _open(path, read_only=not write)
    try:
        found = schema_version(con)
        _check_version(path, found)
        if write:
            migrate(con)
        elif found < SCHEMA_VERSION or pending(con):
            raise AuditError(f'store "{path}" has schema version {found}; '
                             f"run a writing command (e.g. audit snapshot) to migrate it to {SCHEMA_VERSION}")
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction per command: everything or nothing is stored."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def entry_hash(seq: int, kind: str, record_id: str, content_hash: str, prev: str, at: datetime) -> str:
    """The hash of one log entry: it covers the previous entry and the content it adds. The
    instant is hashed in UTC, the zone the store reads every timestamp back in."""
    return sha256_json([seq, kind, record_id, content_hash, prev, as_utc(at).isoformat()])


def append_log(con: duckdb.DuckDBPyConnection, kind: str, record_id: str,
               content_hash: str, at: datetime) -> str:
    """Append one entry to the hash chain; return its hash."""
    row = con.execute("SELECT seq, entry_hash FROM log ORDER BY seq DESC LIMIT 1").fetchall()
    seq, prev = (row[0][0] + 1, row[0][1]) if row else (1, GENESIS)
    h = entry_hash(seq, kind, record_id, content_hash, prev, at)
    con.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [seq, kind, record_id, content_hash, prev, h, at])
    return h


_ID = re.compile(r"^[A-Za-z0-9_]+$")
T = TypeVar("T")


def required(found: T | None, what: str, key: str, listing: str) -> T:
    """FOUND, or NotFound naming the id and the command that lists what exists."""
    if found is None:
        raise NotFound(f'{what} "{key}" not found; "{listing}" lists them')
    return found


def resolve(con: duckdb.DuckDBPyConnection, table: str, ref: str, *, what: str, listing: str) -> str:
    """Turn an id or a unique prefix of one (like git) into the full id; `latest` for snapshots."""
    key = f"{table}_id"
    if ref == "latest":
        order = "as_of DESC, created_at DESC, snapshot_id DESC" if table == "snapshot" else "created_at DESC"
        # `latest` names an ordinary snapshot, never one derived from it for a counterfactual
        where = "WHERE parent_id IS NULL" if table == "snapshot" else ""
        rows = con.execute(f"SELECT {key} FROM {table} {where} ORDER BY {order} LIMIT 1").fetchall()
        if not rows:
            raise NotFound(f'there is no {what} yet; "{listing}" lists them')
        return rows[0][0]
    if not _ID.match(ref):
        raise NotFound(f'{what} "{ref}" not found; "{listing}" lists them')
    rows = con.execute(f"SELECT {key} FROM {table} WHERE starts_with({key}, ?) ORDER BY {key} LIMIT 3",
                       [ref]).fetchall()
    if not rows:
        raise NotFound(f'{what} "{ref}" not found; "{listing}" lists them')
    if len(rows) > 1:
        shown = ", ".join(r[0] for r in rows[:2]) + (", ..." if len(rows) > 2 else "")
        raise AuditError(f'{what} prefix "{ref}" is ambiguous ({shown}); give more characters')
    return rows[0][0]


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> Iterator[None]:
    """A polars frame visible to SQL as NAME for the duration of the block, and only then."""
    con.register(name, df)
    try:
        yield
    finally:
        con.unregister(name)


def dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[dict[str, Any]]:
    """The rows of a query as dicts keyed by column name (never decoded by position)."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> pl.DataFrame:
    """Run SQL and fetch the whole result as a polars frame."""
    return con.sql(sql, params=params).pl()
