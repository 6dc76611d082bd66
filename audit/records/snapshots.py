"""Snapshots: immutable selections of stored batches (as-of instant and window). A snapshot
copies no rows; its inputs are read from the batches it names, filtered by its window."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl

from ..errors import AuditError
from ..store.db import append_log, dicts, frame, registered, required, resolve as resolve_id
from ..store.hashing import as_utc, short_id
from ..store.recipes import derived_definition, logged, snapshot_definition, snapshot_hash

_WINDOW = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Snapshot:
    """A stored snapshot, as listed."""
    snapshot_id: str
    label: str | None
    as_of: datetime
    window_seconds: int | None
    batch_ids: tuple[str, ...]
    interactions: int
    accounts: int
    created_at: datetime
    accounts_rule: int | None = None
    parent_id: str | None = None         # a derived snapshot: its parent, with some interactions left out
    new: bool = False


def parse_window(text: str | None) -> int | None:
    """`7d`, `12h`, `90d`, `2w` -> seconds; None or `all` -> no window."""
    if text is None or text == "all":
        return None
    m = _WINDOW.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise AuditError(f'window "{text}" is not a duration; use a number and a unit, e.g. 7d, 12h, 2w, or "all"')
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_instant(text: str) -> datetime:
    """An as-of instant: ISO 8601 (UTC unless an offset is given); a bare date means the end of that day."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) + timedelta(days=1)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(f'"{text}" is not a date or an ISO 8601 instant; e.g. 2012-07-04 or 2012-07-04T12:00:00Z') from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def window_sql(window_seconds: int | None) -> str:
    """The WHERE clause selecting a snapshot's interactions: its batches, [as_of - window, as_of).
    Its values are bound from window_params()."""
    lower = "" if window_seconds is None else " AND ts >= $as_of - to_seconds($window)"
    return f"batch_id IN (SELECT unnest($batches)) AND ts < $as_of{lower}"


def window_params(as_of: datetime, window_seconds: int | None, batch_ids: list[str]) -> dict:
    """The bound values of window_sql()."""
    p = {"as_of": as_of, "batches": batch_ids}
    if window_seconds is not None:
        p["window"] = window_seconds
    return p


def _window(snap: "Snapshot") -> tuple[str, dict]:
    return window_sql(snap.window_seconds), window_params(snap.as_of, snap.window_seconds, list(snap.batch_ids))


ACCOUNTS_RULE = 2      # the rule new snapshots follow (see schema migration 5)


def accounts_sql(rule: int | None) -> str:
    """The accounts a snapshot sees: from its batches, the latest delivery of each account wins
    (batches ordered by ingest time, then id); under rule 2 an account created after the as-of
    instant is left out. Binds $batches (and $as_of under rule 2)."""
    latest = """
        SELECT a.account_id, a.handle, a.followers, a.following, a.created_at
        FROM account a JOIN batch b USING (batch_id)
        WHERE a.batch_id IN (SELECT unnest($batches))
        QUALIFY row_number() OVER (PARTITION BY a.account_id ORDER BY b.ingested_at DESC, b.batch_id DESC) = 1"""
    if rule is None:
        return latest
    return f"SELECT * FROM ({latest}) WHERE created_at IS NULL OR created_at < $as_of"


EXCLUSION = "(SELECT account_id, part FROM snapshot_exclusion WHERE snapshot_id = $derived)"


def left_out_sql(rows: str, exclusion: str = EXCLUSION) -> str:
    """The rows of the subquery ROWS (with source and target) that a derived snapshot keeps: all but
    those whose source and target are in the same part of EXCLUSION (a relation of account_id, part)."""
    return f"""SELECT i.* FROM ({rows}) i
        LEFT JOIN {exclusion} xs ON xs.account_id = i.source
        LEFT JOIN {exclusion} xt ON xt.account_id = i.target
        WHERE xs.part IS NULL OR xt.part IS NULL OR xs.part <> xt.part"""


def count_inputs(con: duckdb.DuckDBPyConnection, as_of: datetime, window_seconds: int | None,
                 batch_ids: list[str], accounts_rule: int | None, derived: str | None = None,
                 exclusion: str = EXCLUSION) -> tuple[int, int]:
    """(interactions in the window, accounts: ids in the window plus the accounts the rule takes). A
    derived snapshot counts the interactions it keeps and its parent's accounts (it keeps them all)."""
    full = f"SELECT source, target FROM interaction WHERE {window_sql(window_seconds)}"
    kept = full if derived is None else left_out_sql(full, exclusion)
    params = window_params(as_of, window_seconds, batch_ids)
    if derived is not None and exclusion == EXCLUSION:
        params["derived"] = derived
    row = dicts(con, f"""
        WITH w AS ({full}), k AS ({kept})
        SELECT (SELECT count(*) FROM k) AS interactions,
               (SELECT count(*) FROM (SELECT source AS id FROM w UNION SELECT target FROM w
                UNION SELECT account_id FROM ({accounts_sql(accounts_rule)}))) AS accounts
    """, params)[0]
    return row["interactions"], row["accounts"]


def create(con: duckdb.DuckDBPyConnection, as_of: datetime, window_seconds: int | None,
           label: str | None, now: datetime) -> Snapshot:
    """Freeze every batch stored so far: interactions in [as_of - window, as_of).

    The same definition over the same batches is the same snapshot (its label is kept from the first).
    """
    as_of, now = as_utc(as_of), as_utc(now)
    batches = con.execute("SELECT batch_id, content_hash FROM batch ORDER BY batch_id").fetchall()
    if not batches:
        raise AuditError('the store holds no batches yet; "audit ingest FILE" stores one')
    definition = snapshot_definition(as_of, window_seconds, [tuple(b) for b in batches], ACCOUNTS_RULE)
    batch_ids = [b[0] for b in batches]
    interactions, accounts = count_inputs(con, as_of, window_seconds, batch_ids, ACCOUNTS_RULE)
    content = snapshot_hash(definition, interactions, accounts)
    snapshot_id = short_id("s", content)
    existing = find(con, snapshot_id)
    if existing is not None:
        return existing
    con.execute("INSERT INTO snapshot (snapshot_id, content_hash, label, as_of, window_seconds, batch_ids, "
                "interactions, accounts, created_at, accounts_rule) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [snapshot_id, content, label, as_of, window_seconds, batch_ids, interactions, accounts, now,
                 ACCOUNTS_RULE])
    append_log(con, "snapshot", snapshot_id, logged(content, label=label, created_at=now), now)
    return dataclasses.replace(get(con, snapshot_id), new=True)


_COLUMNS = ("snapshot_id, label, as_of, window_seconds, batch_ids, interactions, accounts, created_at, accounts_rule, "
            "parent_id")


def _snapshot(row: dict) -> Snapshot:
    return Snapshot(**{**row, "batch_ids": tuple(row["batch_ids"])})


def find(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> Snapshot | None:
    """The snapshot with this exact id, or None."""
    rows = dicts(con, f"SELECT {_COLUMNS} FROM snapshot WHERE snapshot_id = ?", [snapshot_id])
    return _snapshot(rows[0]) if rows else None


def get(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> Snapshot:
    """The snapshot with this exact id; NotFound when the store does not hold it."""
    return required(find(con, snapshot_id), "snapshot", snapshot_id, "audit snapshots")


def resolve(con: duckdb.DuckDBPyConnection, ref: str) -> Snapshot:
    """A snapshot by id, unique id prefix, or `latest`."""
    return get(con, resolve_id(con, "snapshot", ref, what="snapshot", listing="audit snapshots"))


def list_all(con: duckdb.DuckDBPyConnection) -> list[Snapshot]:
    """Every snapshot, oldest as-of first."""
    return [_snapshot(r) for r in dicts(con, f"SELECT {_COLUMNS} FROM snapshot ORDER BY as_of, created_at, snapshot_id")]


ACCOUNT_SCHEMA = {"account_id": pl.String, "handle": pl.String, "followers": pl.Int64,
                  "following": pl.Int64, "created_at": pl.Datetime("us", "UTC")}


def load_inputs(con: duckdb.DuckDBPyConnection, snap: Snapshot, *,
                topics: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The snapshot's interactions and accounts, in the algorithm input shape, in a fixed order
    (with `topics`, the interactions carry their `topic` column too: a topic version's input).

    Interactions come in stored order (batch after batch as ingested, each in its file's order),
    ordered by rowid: rows are never updated or deleted, so a row's rowid never changes, and the
    same store always hands an algorithm the same rows in the same order (bit-for-bit reruns)
    for the price of an integer sort instead of a sort on timestamps and ids.
    """
    rows, params = selection(snap)
    topic = ", topic" if topics else ""
    interactions = frame(con, f"SELECT _row, source, target, kind::VARCHAR AS kind, ts, weight{topic} FROM ({rows})",
                         params)
    # A parallel scan returns row groups in any order; an integer sort (polars finds the runs
    # already in order) restores the stored order.
    interactions = interactions.sort("_row").drop("_row")
    accounts = frame(con, f"SELECT * FROM ({accounts_sql(snap.accounts_rule)}) ORDER BY account_id",
                     _accounts_params(snap))
    accounts = accounts.cast(ACCOUNT_SCHEMA) if accounts.height else pl.DataFrame(schema=ACCOUNT_SCHEMA)
    if snap.parent_id is not None:
        # A derived snapshot keeps its parent's accounts: an account whose every interaction was left
        # out is still scored (as an account without attributes), so both runs score the same accounts.
        members = frame(con, "SELECT account_id FROM snapshot_exclusion WHERE snapshot_id = ? ORDER BY account_id",
                        [snap.snapshot_id])["account_id"]
        present = pl.concat([interactions["source"], interactions["target"], accounts["account_id"]])
        gone = members.filter(~members.is_in(present.implode()))
        if len(gone):
            accounts = pl.concat([accounts, pl.DataFrame({"account_id": gone}).with_columns(
                [pl.lit(None, dtype).alias(c) for c, dtype in ACCOUNT_SCHEMA.items() if c != "account_id"])
                .select(list(ACCOUNT_SCHEMA)).cast(ACCOUNT_SCHEMA)]).sort("account_id")
    return interactions, accounts


def selection(snap: Snapshot) -> tuple[str, dict]:
    """A subquery of the snapshot's interaction rows (every column of `interaction`, and `_row`, the
    rowid) and its bound values: the window, and for a derived snapshot its exclusion."""
    where, params = _window(snap)
    rows = f"SELECT rowid AS _row, * FROM interaction WHERE {where}"
    if snap.parent_id is None:
        return rows, params
    return left_out_sql(rows), params | {"derived": snap.snapshot_id}


def exclusion(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> list[list[str]]:
    """The parts of a derived snapshot's exclusion, each sorted, in part order ([] for an ordinary one)."""
    rows = dicts(con, "SELECT part, list(account_id ORDER BY account_id) AS accounts FROM snapshot_exclusion "
                      "WHERE snapshot_id = ? GROUP BY part ORDER BY part", [snapshot_id])
    return [list(r["accounts"]) for r in rows]


def derive(con: duckdb.DuckDBPyConnection, parent: Snapshot, parts: list[list[str]], now: datetime,
           label: str | None = None) -> Snapshot:
    """The snapshot PARENT with every interaction between two accounts of the same part left out (a
    counterfactual's input): it copies no interaction row and keeps the parent's accounts. The same
    parent and parts give the same snapshot, which is returned as it is."""
    if parent.parent_id is not None:
        raise AuditError(f"snapshot {parent.snapshot_id} is itself derived from {parent.parent_id}; "
                         "derive from an ordinary snapshot")
    seen = [a for p in parts for a in p]
    if len(seen) != len(set(seen)) or any(not p for p in parts):
        raise AuditError("the parts of an exclusion must be non-empty and must not share an account")
    now = as_utc(now)
    parent_hash = dicts(con, "SELECT content_hash FROM snapshot WHERE snapshot_id = ?",
                        [parent.snapshot_id])[0]["content_hash"]
    definition = derived_definition(parent_hash, parts)
    ordered = definition["leave_out_within"]
    rows = pl.DataFrame({"account_id": [a for p in ordered for a in p],
                         "part": [i for i, p in enumerate(ordered) for _ in p]}, schema={"account_id": pl.String,
                                                                                        "part": pl.Int32})
    with registered(con, "new_exclusion", rows):
        interactions, accounts = count_inputs(con, parent.as_of, parent.window_seconds, list(parent.batch_ids),
                                              parent.accounts_rule, derived="new", exclusion="new_exclusion")
    content = snapshot_hash(definition, interactions, accounts)
    snapshot_id = short_id("s", content)
    existing = find(con, snapshot_id)
    if existing is not None:
        return existing
    label = label or f"{parent.label or parent.snapshot_id} without {len(parts)} group(s)"
    con.execute("INSERT INTO snapshot (snapshot_id, content_hash, label, as_of, window_seconds, batch_ids, "
                "interactions, accounts, created_at, accounts_rule, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [snapshot_id, content, label, parent.as_of, parent.window_seconds, list(parent.batch_ids),
                 interactions, accounts, now, parent.accounts_rule, parent.snapshot_id])
    with registered(con, "new_exclusion", rows):
        con.execute("INSERT INTO snapshot_exclusion SELECT ?, part, account_id FROM new_exclusion ORDER BY part, "
                    "account_id", [snapshot_id])
    append_log(con, "snapshot", snapshot_id, logged(content, label=label, created_at=now), now)
    return dataclasses.replace(get(con, snapshot_id), new=True)


def _accounts_params(snap: Snapshot) -> dict:
    """The bound values of accounts_sql() for a snapshot."""
    return {"batches": list(snap.batch_ids), **({"as_of": snap.as_of} if snap.accounts_rule is not None else {})}


def features(con: duckdb.DuckDBPyConnection, snap: Snapshot) -> pl.DataFrame:
    """Per-account segment features of a snapshot, computed in DuckDB (the same definitions as
    segments.segment_features, without loading the interactions): received, given,
    distinct_engagers, followers, age_days (measured from the latest interaction)."""
    rows, params = selection(snap)
    return frame(con, f"""
        WITH w AS (SELECT source, target, ts FROM ({rows})),
        received AS (SELECT target AS account_id, count(*) AS received, count(DISTINCT source) AS distinct_engagers
                     FROM w GROUP BY target),
        given AS (SELECT source AS account_id, count(*) AS given FROM w GROUP BY source),
        acc AS ({accounts_sql(snap.accounts_rule)}),
        ids AS (SELECT account_id FROM received UNION SELECT account_id FROM given UNION SELECT account_id FROM acc),
        latest AS (SELECT max(ts) AS ts FROM w)
        SELECT ids.account_id, coalesce(r.received, 0)::BIGINT AS received, coalesce(g.given, 0)::BIGINT AS given,
               coalesce(r.distinct_engagers, 0)::BIGINT AS distinct_engagers, acc.followers::BIGINT AS followers,
               (epoch_us((SELECT ts FROM latest)) - epoch_us(acc.created_at)) / 86400000000.0 AS age_days
        FROM ids LEFT JOIN received r USING (account_id) LEFT JOIN given g USING (account_id)
        LEFT JOIN acc USING (account_id)
        ORDER BY ids.account_id""", params)


def account_inputs(con: duckdb.DuckDBPyConnection, snap: Snapshot, account: str,
                   topic: str | None = None) -> pl.DataFrame:
    """The interactions into ACCOUNT in the snapshot, and every interaction of the accounts that
    engaged it (what an explanation of its score needs), in a total order; with `topic`, only the
    interactions of that topic (one of the `|`-separated names of their topic)."""
    rows, params = selection(snap)
    if topic is not None:
        rows, params = f"SELECT * FROM ({rows}) WHERE list_contains(string_split(topic, '|'), $topic)", \
            params | {"topic": topic}
    return frame(con, f"""
        WITH w AS (SELECT source, target, kind::VARCHAR AS kind, ts, weight FROM ({rows}))
        SELECT * FROM w WHERE target = $account OR source IN (SELECT source FROM w WHERE target = $account)
        ORDER BY ts, source, target, kind, weight""", params | {"account": account})
