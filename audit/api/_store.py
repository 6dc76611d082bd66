"""How a facade function reaches the store: a path (opened for the call) or the open connection
of a process that owns the store (the server), of which each call takes its own cursor."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

from ..store.db import connect, cursor, transaction

Store = str | Path | duckdb.DuckDBPyConnection


@contextmanager
def reading(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that reads the last committed state."""
    if isinstance(store, duckdb.DuckDBPyConnection):
        cur = cursor(store)
        try:
            yield cur
        finally:
            cur.close()
    else:
        with connect(store) as con:
            yield con


@contextmanager
def writing(store: Store, *, create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: everything the block appends is stored, or nothing is."""
    if isinstance(store, duckdb.DuckDBPyConnection):
        cur = cursor(store)
        try:
            with transaction(cur):
                yield cur
        finally:
            cur.close()
    else:
        with connect(store, write=True, create=create) as con, transaction(con):
            yield con


@contextmanager
def lazily(store: Store) -> Iterator[Callable[[], duckdb.DuckDBPyConnection]]:
    """A reading connection opened only if the block asks for one (`con()`), then reused: a
    question answered from memory (the service's published scores) touches no store."""
    with ExitStack() as stack:
        opened: list[duckdb.DuckDBPyConnection] = []

        def con() -> duckdb.DuckDBPyConnection:
            if not opened:
                opened.append(stack.enter_context(reading(store)))
            return opened[0]
        yield con


def is_path(store: Store) -> bool:
    return not isinstance(store, duckdb.DuckDBPyConnection)


def may_store(store: Store, con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a derived record may be stored through STORE (CON: a connection reading it): a path is
    opened for writing when needed; a process's own connection only when it was not opened read-only."""
    return is_path(store) or not con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
