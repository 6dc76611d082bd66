"""Publications and score history. What was published stays published: publishing another
run for a period appends a restatement that points at what it restates; nothing is replaced.

Views of history:
- published (default): the first publication of each period, as originally shown;
- restated: the latest publication of each period;
- as of an instant: what was on display then, the latest publication of each period made by then.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from ..errors import AuditError
from ..store.db import append_log, dicts
from ..store.hashing import as_utc, short_id
from ..store.recipes import publication_hash
from .runs import ranked


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
    topical = dicts(con, f"SELECT {TOPICAL} AS t FROM run JOIN algorithm a USING (algorithm_id) WHERE run_id = ?",
                    [run_id])[0]["t"]
    latest = dicts(con, f"SELECT p.publication_id, p.published_at FROM publication p JOIN run USING (run_id) "
                        f"JOIN algorithm a USING (algorithm_id) WHERE p.period = ? AND {'' if topical else 'NOT '}{TOPICAL} "
                        "ORDER BY p.published_at DESC, p.publication_id DESC LIMIT 1", [period])
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


HISTORY_SCHEMA = {"account_id": pl.String, "handle": pl.String, "period": pl.String, "score": pl.Float64, "rank": pl.Int64,
                  "run_id": pl.String, "algorithm": pl.String, "publication_id": pl.String,
                  "published_at": pl.Datetime("us", "UTC"), "restated": pl.Boolean, "superseded": pl.Boolean,
                  "restatement": pl.Boolean, "algorithm_changed": pl.Boolean}


@dataclass(frozen=True)
class Point:
    """A publication with what the views of history order it by: its run's algorithm and as-of."""
    publication_id: str
    run_id: str
    period: str
    restates: str | None
    published_at: datetime
    algorithm: str                      # name@version of the run
    as_of: datetime                     # of the run's snapshot


# Whether an algorithm row is a topic version (the DIMENSION declaration algorithms.Algorithm.by_topic reads).
TOPICAL = """regexp_matches(a.source, '(?m)^DIMENSION\\s*=\\s*["'']topic["'']')"""


def points(con: duckdb.DuckDBPyConnection, *, topical: bool = False) -> list[Point]:
    """Every publication with its algorithm and as-of, in the order they were made: of runs without
    topics, or (`topical`) of runs of topic versions. The two are separate views of history: a topic
    run published for a period does not restate the period's score, nor the reverse."""
    return [Point(**r) for r in dicts(con, f"""
        SELECT p.publication_id, p.run_id, p.period, p.restates, p.published_at,
               a.name || '@' || a.version AS algorithm, s.as_of
        FROM publication p JOIN run USING (run_id) JOIN algorithm a USING (algorithm_id)
        JOIN snapshot s USING (snapshot_id)
        WHERE {"" if topical else "NOT "}{TOPICAL}
        ORDER BY p.published_at, p.publication_id""")]


def shown(all_points: list[Point], *, latest: bool, as_of: datetime | None = None,
          release: str | None = None) -> list[tuple[Point, int]]:
    """One publication per period with the number of publications of that period: the first made
    (the published view) or the latest (`latest`: restated, or as of an instant), among those made
    by `as_of` and of `release` when given; ordered by as-of, then period."""
    by_period: dict[str, list[Point]] = {}
    for p in all_points:                # already in the order they were made
        if (as_of is None or p.published_at <= as_of) and (release is None or p.algorithm == release):
            by_period.setdefault(p.period, []).append(p)
    out = [(ps[-1] if latest else ps[0], len(ps)) for ps in by_period.values()]
    return sorted(out, key=lambda pv: (pv[0].as_of, pv[0].period))


Ranked = Callable[[str, list[str]], list[tuple[str, float, float, int]]]
"""(run_id, account ids) -> (account_id, score, raw, rank) of those accounts that have a score."""


def history_frame(all_points: list[Point], ranked: Ranked, accounts: list[str], *, restated: bool = False,
                  as_of: datetime | None = None) -> pl.DataFrame:
    """Each account's score per period in the chosen view, by account, then oldest period first.

    `restated`: the period has more than one publication (in the view). `superseded`: a later
    publication replaced the one shown (the published view shows the first). `restatement`: the
    one shown restates an earlier one. `algorithm_changed` marks the first point of each account
    under a different algorithm version than its previous point.
    """
    pick_latest = restated or as_of is not None
    rows = []
    for p, versions in shown(all_points, latest=pick_latest, as_of=as_of):
        flags = (versions > 1, versions > 1 and not pick_latest, p.restates is not None)
        for account_id, score, _raw, rank in ranked(p.run_id, accounts):
            rows.append((account_id, p.as_of, p.period, score, rank, p.run_id, p.algorithm, p.publication_id,
                         p.published_at, flags))
    rows.sort(key=lambda r: r[:3])
    previous: tuple[str, str] | None = None            # (account, algorithm) of the row before
    out = []
    for account_id, _as_of, period, score, rank, run_id, algorithm, publication_id, published_at, flags in rows:
        changed = previous is not None and previous[0] == account_id and previous[1] != algorithm
        previous = (account_id, algorithm)
        # the handle is the facade's to fill in (from the accounts files)
        out.append((account_id, None, period, score, rank, run_id, algorithm, publication_id, published_at, *flags,
                    changed))
    # built row-wise in Python: a few rows per account, where a lazy polars plan cost ~2 ms
    return pl.DataFrame(out, schema=HISTORY_SCHEMA, orient="row")


def ranked_in_store(con: duckdb.DuckDBPyConnection, topic: str | None = None) -> Ranked:
    """The Ranked lookup of a store: each call ranks in SQL (`runs.ranked`, `runs.RANK`); with `topic`,
    within that topic of topic runs."""
    def lookup(run_id: str, accounts: list[str]) -> list[tuple[str, float, float, int]]:
        df = ranked(con, run_id, accounts=list(dict.fromkeys(accounts)), topic=topic)
        return sorted(zip(df["account_id"].to_list(), df["score"].to_list(), df["raw"].to_list(),
                          df["rank"].to_list()))
    return lookup
