"""Publications and score history. What was published stays published: publishing another
run for a period appends a restatement that points at what it restates; nothing is replaced.

Views of history:
- published (default): the first publication of each period, as originally shown;
- restated: the latest publication of each period;
- as of an instant: what was on display then, the latest publication of each period made by then.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from ..errors import AuditError
from ..store.db import append_log, dicts, frame
from ..store.hashing import as_utc, short_id
from ..store.recipes import publication_hash
from .runs import RANK


@dataclass(frozen=True)
class Publication:
    """One publication record."""
    publication_id: str
    run_id: str
    period: str
    restates: str | None
    published_at: datetime
    new: bool = False


_COLUMNS = "publication_id, run_id, period, restates, published_at"


def find(con: duckdb.DuckDBPyConnection, publication_id: str) -> Publication | None:
    """The publication with this exact id, or None."""
    rows = dicts(con, f"SELECT {_COLUMNS} FROM publication WHERE publication_id = ?", [publication_id])
    return Publication(**rows[0]) if rows else None


def list_all(con: duckdb.DuckDBPyConnection) -> list[Publication]:
    """Every publication, in the order they were made."""
    return [Publication(**r) for r in
            dicts(con, f"SELECT {_COLUMNS} FROM publication ORDER BY published_at, period, publication_id")]


def publish(con: duckdb.DuckDBPyConnection, run_id: str, period: str, now: datetime) -> Publication:
    """Record RUN as the published score for PERIOD (a restatement when the period has one)."""
    period = period.strip()
    # Hashed as read back: the store returns every instant in UTC (naive means UTC).
    now = as_utc(now)
    if not period:
        raise AuditError("--period must not be empty; e.g. --period 2012-07-04")
    same = dicts(con, f"SELECT {_COLUMNS} FROM publication WHERE run_id = ? AND period = ?", [run_id, period])
    if same:
        return Publication(**same[0])
    latest = dicts(con, "SELECT publication_id, published_at FROM publication WHERE period = ? "
                        "ORDER BY published_at DESC, publication_id DESC LIMIT 1", [period])
    restates = latest[0]["publication_id"] if latest else None
    if latest and now <= latest[0]["published_at"]:
        raise AuditError(f"period {period} was last published at {latest[0]['published_at'].isoformat()}; "
                         "a restatement must be published after it")
    content = publication_hash(run_id, period, restates, now)
    publication_id = short_id("p", content)
    con.execute("INSERT INTO publication VALUES (?, ?, ?, ?, ?, ?)",
                [publication_id, content, run_id, period, restates, now])
    append_log(con, "publication", publication_id, content, now)
    return Publication(publication_id, run_id, period, restates, now, new=True)


HISTORY_SCHEMA = {"account_id": pl.String, "period": pl.String, "score": pl.Float64, "rank": pl.Int64,
                  "run_id": pl.String, "algorithm": pl.String, "publication_id": pl.String,
                  "published_at": pl.Datetime("us", "UTC"), "restated": pl.Boolean, "superseded": pl.Boolean,
                  "restatement": pl.Boolean, "algorithm_changed": pl.Boolean}


def history(con: duckdb.DuckDBPyConnection, accounts: list[str], *, restated: bool = False,
            as_of: datetime | None = None) -> pl.DataFrame:
    """Each account's score per period in the chosen view, oldest period first.

    `restated`: the period has more than one publication (in the view). `superseded`: a later
    publication replaced the one shown (the published view shows the first). `restatement`: the
    one shown restates an earlier one. `algorithm_changed` marks the first point of each account
    under a different algorithm version than its previous point.
    """
    pick_latest = restated or as_of is not None
    order = "published_at DESC, publication_id DESC" if pick_latest else "published_at, publication_id"
    params: dict = {"accounts": accounts}
    cutoff = ""
    if as_of is not None:
        cutoff, params["as_of"] = "WHERE published_at <= $as_of", as_of
    df = frame(con, f"""
        WITH visible AS (SELECT * FROM publication {cutoff}),
        shown AS (
            SELECT *, count(*) OVER (PARTITION BY period) AS versions FROM visible
            QUALIFY row_number() OVER (PARTITION BY period ORDER BY {order}) = 1),
        ranked AS (
            SELECT run_id, account_id, score, {RANK} AS rank
            FROM score WHERE run_id IN (SELECT run_id FROM shown))
        SELECT r.account_id, p.period, r.score, r.rank, p.run_id,
               a.name || '@' || a.version AS algorithm, p.publication_id, p.published_at,
               p.versions > 1 AS restated, {"false" if pick_latest else "p.versions > 1"} AS superseded,
               p.restates IS NOT NULL AS restatement,
               snap.as_of AS _as_of
        FROM shown p
        JOIN run USING (run_id) JOIN algorithm a USING (algorithm_id)
        JOIN snapshot snap USING (snapshot_id)
        JOIN ranked r ON r.run_id = p.run_id AND r.account_id IN (SELECT unnest($accounts))
        ORDER BY r.account_id, snap.as_of, p.period""", params)
    if df.height == 0:
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    df = df.with_columns(
        (pl.col("algorithm") != pl.col("algorithm").shift(1).over("account_id")).fill_null(False)
        .alias("algorithm_changed")).drop("_as_of")
    return df.cast(HISTORY_SCHEMA).select(list(HISTORY_SCHEMA))
