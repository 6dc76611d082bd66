"""Accounts by reference: an account id as it is, or `@handle` as an accounts batch delivered it.

The one place a reference becomes an account id (the CLI, the service and the bulk lookup all
come here). A handle matches exactly (case and spaces count) any handle an account was ever
delivered with; a handle that several accounts held is reported with each holder and when it
was first seen, never silently given to one of them. An id that begins with `@` is read as a
handle. Every value reaches SQL as a bound parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from ..errors import AuditError, NotFound
from ..store.db import dicts, registered


@dataclass(frozen=True)
class Holder:
    """An account that was delivered with a handle, and the first batch ingest that said so."""
    account_id: str
    handle: str
    first_seen: datetime


@dataclass(frozen=True)
class Resolution:
    """What a list of references names: (ref, account id) pairs in the order asked (a reference
    asked twice counts once), references that name nothing, and handles held by several accounts."""
    accounts: tuple[tuple[str, str], ...]
    unknown: tuple[str, ...]
    ambiguous: tuple[tuple[str, tuple[Holder, ...]], ...]

    @property
    def ids(self) -> list[str]:
        return [account for _, account in self.accounts]


def is_handle(ref: str) -> bool:
    return ref.startswith("@")


def holders(con: duckdb.DuckDBPyConnection, handles: list[str]) -> dict[str, tuple[Holder, ...]]:
    """Every account delivered with each handle, first seen first (ties by account id)."""
    if not handles:
        return {}
    rows = dicts(con, """
        SELECT a.handle, a.account_id, min(b.ingested_at) AS first_seen
        FROM account a JOIN batch b USING (batch_id)
        WHERE a.handle IN (SELECT unnest($handles))
        GROUP BY a.handle, a.account_id
        ORDER BY a.handle, first_seen, a.account_id""", {"handles": sorted(set(handles))})
    found: dict[str, list[Holder]] = {}
    for r in rows:
        found.setdefault(r["handle"], []).append(Holder(r["account_id"], r["handle"], r["first_seen"]))
    return {h: tuple(v) for h, v in found.items()}


def resolve(con: duckdb.DuckDBPyConnection, refs: list[str]) -> Resolution:
    """Ids and `@handles` -> account ids; unknown handles and handles of several accounts apart.

    An id is taken as it is (whether it has a score is the caller's question, per run)."""
    refs = list(dict.fromkeys(refs))
    held = holders(con, [r[1:] for r in refs if is_handle(r) and len(r) > 1])
    accounts, unknown, ambiguous = [], [], []
    for ref in refs:
        if not is_handle(ref):
            accounts.append((ref, ref))
            continue
        found = held.get(ref[1:], ())
        if not found:
            unknown.append(ref)
        elif len(found) > 1:
            ambiguous.append((ref, found))
        else:
            accounts.append((ref, found[0].account_id))
    return Resolution(tuple(accounts), tuple(unknown), tuple(ambiguous))


def describe(holders_: tuple[Holder, ...]) -> str:
    return "; ".join(f"{h.account_id} (first seen {h.first_seen.isoformat()})" for h in holders_)


def resolve_one(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """One account id from an id or `@handle`; NotFound or an error naming every holder otherwise."""
    if not is_handle(ref):
        return ref
    r = resolve(con, [ref])
    if r.unknown:
        raise NotFound(f'no account was delivered with handle "{ref[1:]}"; give the account id, or ingest '
                       "an accounts file that names it")
    if r.ambiguous:
        raise AuditError(f'handle "{ref[1:]}" was held by {len(r.ambiguous[0][1])} accounts: '
                         f"{describe(r.ambiguous[0][1])}; give the account id")
    return r.accounts[0][1]


def handles(con: duckdb.DuckDBPyConnection, ids: list[str] | None = None) -> dict[str, str]:
    """The handle each account was last delivered with (latest batch first, then batch id), for the
    given accounts (every account with a handle when `ids` is None). Accounts without one are absent."""
    if not con.execute("SELECT count(*) FROM (SELECT 1 FROM account WHERE handle IS NOT NULL AND handle <> '' "
                       "LIMIT 1)").fetchall()[0][0]:
        return {}                       # no accounts file gave a handle
    sql = """
        SELECT a.account_id, a.handle FROM account a JOIN batch b USING (batch_id) {join}
        WHERE a.handle IS NOT NULL AND a.handle <> ''
        QUALIFY row_number() OVER (PARTITION BY a.account_id ORDER BY b.ingested_at DESC, b.batch_id DESC) = 1
        ORDER BY a.account_id"""
    if ids is None:
        rows = dicts(con, sql.format(join=""))
    else:
        # the ids as a relation (an explanation asks for tens of thousands of engagers)
        wanted = pl.DataFrame({"account_id": sorted(set(ids))}, schema={"account_id": pl.String})
        with registered(con, "wanted_handles", wanted):
            rows = dicts(con, sql.format(join="SEMI JOIN wanted_handles w ON w.account_id = a.account_id"))
    return {r["account_id"]: r["handle"] for r in rows}


def with_handles(df: pl.DataFrame, known: dict[str, str], column: str = "account_id",
                 name: str = "handle") -> pl.DataFrame:
    """The frame with a `handle` column beside COLUMN (null where the account has none)."""
    values = pl.Series(name, [known.get(a) for a in df[column].to_list()], dtype=pl.String)
    return df.insert_column(df.columns.index(column) + 1, values)
