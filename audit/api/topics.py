"""Facade: topic influence, influence relative to one account, and who among an account's
engagers matters.

- `account_topics`: an account's topics in a topic run (`topics@1`), best first, with score and
  rank within each topic.
- `influence`: an account's influencers (the engagers whose engagement adds most to its score, in
  points, from the run's own version: its `engagers()` and raw -> score mapping) and influencees
  (the accounts whose score it adds most to); with `relative`, every account ranked by PageRank
  personalised to the account (teleport to it alone).
- `engagers`: every account that engaged the account in the run's snapshot window, with its score
  and rank in the run, its interactions by kind, first and last time, and whether it is new since
  the previous snapshot of the same window; those at or above `min_score` are alerts.

Every function takes an account as an id or `@handle`, and `topic` for a topic run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from ..errors import AuditError, NotFound
from ..records import accounts as accts
from ..records import algorithms as algos
from ..records import publications as pubs
from ..records import runs as runs_
from ..records import snapshots as snaps
from ..records.runs import Run
from ..records.snapshots import Snapshot
from ..store.db import dicts, frame, registered
from ._store import Store, reading

RELATIVE_DAMPING = 0.85
RELATIVE_TOL = 1e-12           # L1 change between iterates
RELATIVE_MAX_ITER = 1000
DEFAULT_KIND_WEIGHTS = {"retweet": 1.0, "reply": 0.75, "mention": 0.5, "like": 0.25, "message": 0.25,
                        "follow": 0.1, "rating": 0.1}


# ---------------------------------------------------------------- which run, which topic

def check_topic(con: duckdb.DuckDBPyConnection, run: Run, topic: str | None) -> str | None:
    """The topic to read in RUN: required for a topic run (and one it scored), refused otherwise."""
    by_topic = algos.get(con, run.algorithm_id).by_topic
    if topic is None and by_topic:
        raise AuditError(f'run {run.run_id} ({run.algorithm}) scores topics: give --topic T '
                         f'("audit topics ACCOUNT --run {run.run_id}" lists an account\'s topics)')
    if topic is not None and not by_topic:
        raise AuditError(f"run {run.run_id} ({run.algorithm}) has no topics: --topic needs a run of a topic "
                         "version, e.g. topics@1")
    if topic is not None and not dicts(con, "SELECT count(*) AS n FROM score WHERE run_id = ? AND topic = ?",
                                       [run.run_id, topic])[0]["n"]:
        raise NotFound(f'topic "{topic}" has no scores in run {run.run_id}: it is not in the snapshot, or it is '
                       "below the minimum activity of its version")
    return topic


def run_shown(con: duckdb.DuckDBPyConnection, run: str | None, topical: bool = False) -> Run:
    """RUN (id or prefix), or by default the run on display now: the latest publication of the latest
    period (of a topic version when `topical`)."""
    if run is not None:
        return runs_.resolve(con, run)
    shown = [p for p, _ in pubs.shown(pubs.points(con, topical=topical), latest=True)]
    if not shown:
        raise NotFound("nothing is published yet: give --run (\"audit runs\" lists the runs)")
    return runs_.get(con, shown[-1].run_id)


def _account(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    return accts.resolve_one(con, ref)


# ---------------------------------------------------------------- topics of an account

@dataclass(frozen=True)
class AccountTopics:
    """One account's topics in a topic run, best first: topic, score, raw, rank, accounts (of the topic)."""
    account_id: str
    handle: str | None
    run_id: str
    algorithm: str
    snapshot_id: str
    topics_scored: int                  # topics the run scored (above its minimum activity)
    topics: int                         # topics the account has a score in
    rows: pl.DataFrame


def account_topics(store: Store, account: str, *, run: str | None = None, top: int | None = None) -> AccountTopics:
    """ACCOUNT's topics in RUN (a topic run; default the topic run on display now), best first (the
    best `top` when given)."""
    with reading(store) as con:
        account = _account(con, account)
        r = run_shown(con, run, topical=True)
        if not algos.get(con, r.algorithm_id).by_topic:
            raise AuditError(f"run {r.run_id} ({r.algorithm}) has no topics: give a run of a topic version, "
                             "e.g. audit score latest topics@1")
        rows = runs_.account_topics(con, r.run_id, account)
        total = rows.height
        rows = rows if top is None else rows.head(top)
        scored = dicts(con, "SELECT count(DISTINCT topic) AS n FROM score WHERE run_id = ?", [r.run_id])[0]["n"]
        handle = accts.handles(con, [account]).get(account)
    return AccountTopics(account, handle, r.run_id, r.algorithm, r.snapshot_id, int(scored), int(total), rows)


# ---------------------------------------------------------------- influence

@dataclass(frozen=True)
class Influence:
    """Who moves an account and whom it moves, in points of the run's score (or, `relative`, the
    accounts ranked by PageRank personalised to the account)."""
    account_id: str
    handle: str | None
    run_id: str
    algorithm: str
    snapshot_id: str
    topic: str | None
    score: float
    raw: float
    rank: int
    accounts: int                       # scored in the run (in the topic)
    influencers: pl.DataFrame           # account_id, score, interactions, contribution, points
    influencees: pl.DataFrame           # account_id, score, interactions, contribution, points
    relative: pl.DataFrame | None       # account_id, pagerank, rank, score (None without --relative)
    relative_method: dict[str, Any] | None


def _topic_rows(snap_rows: str, topic: str | None, params: dict) -> str:
    if topic is None:
        return snap_rows
    params["topic"] = topic
    return f"SELECT * FROM ({snap_rows}) WHERE list_contains(string_split(topic, '|'), $topic)"


def _points(score: np.ndarray, raw: np.ndarray, contribution: np.ndarray, norm: dict | None, module: Any,
            params: dict) -> np.ndarray:
    """Points a contribution to raw is worth: the score minus the score of raw without it."""
    if norm is None or not hasattr(module, "to_score"):
        return np.full(len(score), np.nan)
    return score - np.asarray(module.to_score(raw - contribution, norm, params), dtype=np.float64)


def influence(store: Store, account: str, *, run: str, top: int = 10, relative: bool = False,
              topic: str | None = None) -> Influence:
    """ACCOUNT's influencers and influencees in RUN (the best `top` of each), and with `relative`
    the `top` accounts by PageRank personalised to ACCOUNT."""
    with reading(store) as con:
        account = _account(con, account)
        r = runs_.resolve(con, run)
        topic = check_topic(con, r, topic)
        algo = algos.get(con, r.algorithm_id)
        module = algos.verified_module(algo)
        if not hasattr(module, "engagers"):
            raise AuditError(f"{algo.label} declares no engagers(): its scores cannot be split by engager")
        mine = runs_.place(con, r.run_id, account, topic)
        if mine is None:
            where = f' in topic "{topic}"' if topic else ""
            raise NotFound(f'account "{account}" has no score in run {r.run_id}{where}')
        snap = snaps.get(con, r.snapshot_id)
        norm = runs_.stored_normalisation(con, r.run_id, topic)
        scored = runs_.accounts_in(con, r, topic)
        influencers = _influencers(con, snap, r, algo, module, account, topic, norm, top)
        influencees = _influencees(con, snap, r, algo, module, account, topic, norm, top)
        rel, method = (_relative(con, snap, r, algo, account, topic, top) if relative else (None, None))
        shown = [influencers, influencees] + ([] if rel is None else [rel])
        known = accts.handles(con, [account, *(a for f in shown for a in f["account_id"].to_list())])
        influencers, influencees = (accts.with_handles(f, known) for f in (influencers, influencees))
        rel = None if rel is None else accts.with_handles(rel, known)
        handle = known.get(account)
    return Influence(account, handle, r.run_id, r.algorithm, r.snapshot_id, topic, mine["score"], mine["raw"],
                     mine["rank"], int(scored), influencers, influencees, rel, method)


_INFLUENCE_SCHEMA = {"account_id": pl.String, "score": pl.Float64, "interactions": pl.Int64,
                     "contribution": pl.Float64, "points": pl.Float64}


def _influencers(con, snap: Snapshot, r: Run, algo, module, account: str, topic: str | None, norm: dict | None,
                 top: int) -> pl.DataFrame:
    """The engagers adding most to ACCOUNT's score: the version's engagers() summed over kinds, in points."""
    inputs = snaps.account_inputs(con, snap, account, topic)
    ids = sorted(set(inputs.filter(pl.col("target") == account)["source"].to_list()) | {account})
    result = runs_.rows(con, r.run_id, algo, ids, topic)
    per = module.engagers(account, inputs, result, algo.params)
    if not per.height:
        return pl.DataFrame(schema=_INFLUENCE_SCHEMA)
    summed = (per.group_by("engager").agg(pl.col("interactions").sum().cast(pl.Int64),
                                          pl.col("contribution").sum())
              .rename({"engager": "account_id"}))
    mine = result.filter(pl.col("account_id") == account)
    score, raw = float(mine["score"][0]), float(mine["raw"][0])
    points = _points(np.full(summed.height, score), np.full(summed.height, raw),
                     summed["contribution"].to_numpy(), norm, module, algo.params)
    scores = result.select("account_id", "score")
    return (summed.with_columns(pl.Series("points", points)).join(scores, on="account_id", how="left")
            .select(list(_INFLUENCE_SCHEMA)).cast(_INFLUENCE_SCHEMA)
            .sort(["points", "contribution", "account_id"], descending=[True, True, False], nulls_last=True)
            .head(top))


def _influencees(con, snap: Snapshot, r: Run, algo, module, account: str, topic: str | None, norm: dict | None,
                 top: int) -> pl.DataFrame:
    """The accounts ACCOUNT adds most to: for each account it engaged, what the version's engagers()
    gives ACCOUNT as its engager there, in points of that account's score."""
    rows_sql, params = snaps.selection(snap)
    rows_sql = _topic_rows(rows_sql, topic, params)
    given = frame(con, f"""SELECT source, target, kind::VARCHAR AS kind, ts, weight FROM ({rows_sql})
                           WHERE source = $account ORDER BY ts, target, kind, weight""", params | {"account": account})
    targets = sorted(set(given["target"].to_list()) - {account})
    if not targets:
        return pl.DataFrame(schema=_INFLUENCE_SCHEMA)
    result = runs_.rows(con, r.run_id, algo, [account, *targets], topic)
    mine = result.filter(pl.col("account_id") == account)
    found = []
    # engagers(target) needs the target's incoming interactions from ACCOUNT and every interaction
    # ACCOUNT gave (its total weight): `given` holds exactly those, so ACCOUNT is the only engager
    for target in targets:
        per = module.engagers(target, given, pl.concat([mine, result.filter(pl.col("account_id") == target)])
                              .unique("account_id", maintain_order=True), algo.params)
        per = per.filter(pl.col("engager") == account)
        found.append((target, int(per["interactions"].sum()), float(per["contribution"].sum())))
    summed = pl.DataFrame(found, schema={"account_id": pl.String, "interactions": pl.Int64,
                                         "contribution": pl.Float64}, orient="row")
    theirs = summed.join(result.select("account_id", "score", "raw"), on="account_id", how="inner")
    points = _points(theirs["score"].to_numpy(), theirs["raw"].to_numpy(), theirs["contribution"].to_numpy(),
                     norm, module, algo.params)
    return (theirs.with_columns(pl.Series("points", points)).select(list(_INFLUENCE_SCHEMA)).cast(_INFLUENCE_SCHEMA)
            .sort(["points", "contribution", "account_id"], descending=[True, True, False], nulls_last=True)
            .head(top))


def personalised_pagerank(src: np.ndarray, tgt: np.ndarray, w: np.ndarray, n: int, seed: int,
                          d: float = RELATIVE_DAMPING, tol: float = RELATIVE_TOL,
                          max_iter: int = RELATIVE_MAX_ITER) -> np.ndarray:
    """PageRank personalised to node SEED on the weighted graph (src -> tgt, weight w > 0, pairs summed):
    every teleport, and the mass of nodes without out-edges, goes to SEED (networkx's pagerank with
    personalization={seed: 1} and its default dangling rule)."""
    import scipy.sparse as sp  # only this needs scipy: reading a topic run does not pay for it
    out = np.bincount(src, weights=w, minlength=n)
    inv = np.zeros(n)
    np.divide(1.0, out, out=inv, where=out > 0)
    dangling = out == 0
    into = sp.csr_matrix((w, (tgt, src)), shape=(n, n))
    x = np.zeros(n)
    x[seed] = 1.0
    for _ in range(max_iter):
        nxt = d * (into @ (x * inv))
        nxt[seed] += d * x[dangling].sum() + (1.0 - d)
        err = float(np.abs(nxt - x).sum())
        x = nxt
        if err < n * tol:
            return x
    raise AuditError(f"personalised PageRank did not converge in {max_iter} iterations")


def _relative(con, snap: Snapshot, r: Run, algo, account: str, topic: str | None,
              top: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The accounts ranked by PageRank personalised to ACCOUNT, on the graph of the run's snapshot (its
    topic's interactions, for a topic run) weighted by the version's kind weights; negative ratings
    and self-interactions left out."""
    table = algo.params.get("kind_weights") if isinstance(algo.params.get("kind_weights"), dict) else None
    weights = {k: float(v) for k, v in (table or DEFAULT_KIND_WEIGHTS).items()}
    rows_sql, params = snaps.selection(snap)
    rows_sql = _topic_rows(rows_sql, topic, params)
    edges = frame(con, f"""
        WITH kw AS (SELECT * FROM (VALUES {", ".join(f"($k{i}, $w{i})" for i in range(len(weights)))}) t(kind, kw))
        SELECT source, target, sum(kw.kw * greatest(weight, 0)) AS w
        FROM ({rows_sql}) i JOIN kw ON i.kind::VARCHAR = kw.kind
        WHERE source <> target GROUP BY source, target HAVING sum(kw.kw * greatest(weight, 0)) > 0
        ORDER BY source, target""", _bind(params, weights))
    ids = pl.concat([edges["source"], edges["target"], pl.Series([account])]).unique().sort()
    codes = {c: edges[c].cast(pl.Enum(ids)).to_physical().to_numpy().astype(np.int64) for c in ("source", "target")}
    seed = int(ids.search_sorted(account))
    x = personalised_pagerank(codes["source"], codes["target"], edges["w"].to_numpy(), len(ids), seed)
    ranked = (pl.DataFrame({"account_id": ids, "pagerank": x}).filter(pl.col("pagerank") > 0)
              .sort(["pagerank", "account_id"], descending=[True, False]).with_row_index("rank", offset=1))
    shown = ranked.filter(pl.col("account_id") != account).head(top)
    scores = runs_.run_scores(con, r.run_id, shown["account_id"].to_list(), topic).select("account_id", "score")
    shown = (shown.join(scores, on="account_id", how="left")
             .select("account_id", "pagerank", pl.col("rank").cast(pl.Int64), "score")
             .sort(["rank", "account_id"]))
    method = {"damping": RELATIVE_DAMPING, "tol": RELATIVE_TOL, "kind_weights": weights,
              "reached": int(ranked.height), "edges": int(edges.height)}
    return shown, method


def _bind(params: dict, weights: dict[str, float]) -> dict:
    """Named parameters for the window and the kind weights (DuckDB takes one style per query)."""
    return params | {f"k{i}": k for i, k in enumerate(weights)} | {f"w{i}": v for i, v in enumerate(weights.values())}


# ---------------------------------------------------------------- engagers

@dataclass(frozen=True)
class Engagers:
    """Every account that engaged an account in a run's snapshot window (since `since`)."""
    account_id: str
    handle: str | None
    run_id: str
    algorithm: str
    snapshot_id: str
    topic: str | None
    as_of: datetime
    window_seconds: int | None
    since: datetime | None
    min_score: float | None
    previous_snapshot_id: str | None    # the previous snapshot of the same window ("new" compares with it)
    rows: pl.DataFrame                  # engager, score, rank, interactions, kinds, first, last, new, alert

    @property
    def alerts(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("alert"))


def ranks_of(con: duckdb.DuckDBPyConnection, run_id: str, accounts: list[str], topic: str | None) -> pl.DataFrame:
    """account_id, score, rank of many accounts of a run (of one topic): runs.RANK's definition, 1 +
    the accounts scoring strictly higher, counted on the run's scores read once in order."""
    params: dict = {"run": run_id}
    where = " AND topic = $topic" if topic is not None else ""
    if topic is not None:
        params["topic"] = topic
    every = frame(con, f"SELECT score FROM score WHERE run_id = $run{where} ORDER BY score DESC", params)["score"]
    with registered(con, "wanted_ids", pl.DataFrame({"account_id": accounts}, schema={"account_id": pl.String})):
        mine = frame(con, f"SELECT s.account_id, s.score FROM score s JOIN wanted_ids USING (account_id) "
                          f"WHERE s.run_id = $run{where.replace(' topic', ' s.topic')} ORDER BY s.account_id", params)
    higher = np.searchsorted(-every.to_numpy(), -mine["score"].to_numpy(), side="left")
    return mine.with_columns(pl.Series("rank", higher + 1, dtype=pl.Int64))


def previous_snapshot(con: duckdb.DuckDBPyConnection, snap: Snapshot) -> Snapshot | None:
    """The latest ordinary snapshot of the same window (and the same batches or fewer) made for an
    earlier as-of instant."""
    rows = dicts(con, """SELECT snapshot_id FROM snapshot WHERE parent_id IS NULL AND as_of < ?
                         AND window_seconds IS NOT DISTINCT FROM ? ORDER BY as_of DESC, snapshot_id LIMIT 1""",
                 [snap.as_of, snap.window_seconds])
    return snaps.get(con, rows[0]["snapshot_id"]) if rows else None


def _since(text: str | None) -> datetime | None:
    """--since: an ISO 8601 instant, or a bare date meaning the start of that day."""
    if text is None:
        return None
    at = snaps.parse_instant(text)
    return at - timedelta(days=1) if re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", text) else at


def engagers(store: Store, account: str, *, run: str | None = None, since: str | None = None,
             min_score: float | None = None, topic: str | None = None) -> Engagers:
    """Every account that engaged ACCOUNT in RUN's snapshot window (default: the run on display now),
    best score first, with the alerts: those scoring at least `min_score`."""
    with reading(store) as con:
        account = _account(con, account)
        r = run_shown(con, run, topical=topic is not None)
        topic = check_topic(con, r, topic)
        snap = snaps.get(con, r.snapshot_id)
        since_at = _since(since)
        rows_sql, params = snaps.selection(snap)
        rows_sql = _topic_rows(rows_sql, topic, params)
        params |= {"account": account}
        extra = ""
        if since_at is not None:
            extra, params["since"] = " AND ts >= $since", since_at
        got = frame(con, f"""
            WITH e AS (SELECT source, kind::VARCHAR AS kind, ts FROM ({rows_sql})
                       WHERE target = $account AND source <> $account{extra})
            SELECT source AS engager, kind, count(*)::BIGINT AS n, min(ts) AS first, max(ts) AS last
            FROM e GROUP BY source, kind ORDER BY source, kind""", params)
        before = previous_snapshot(con, snap)
        earlier: set[str] | None = None
        if before is not None:
            prev_sql, prev_params = snaps.selection(before)
            prev_sql = _topic_rows(prev_sql, topic, prev_params)
            earlier = set(frame(con, f"SELECT DISTINCT source FROM ({prev_sql}) WHERE target = $account "
                                     "AND source <> $account ORDER BY source",
                                prev_params | {"account": account})["source"].to_list())
        who = got["engager"].unique().sort().to_list()
        scores = ranks_of(con, r.run_id, who, topic) if who else None
        known = accts.handles(con, [account, *who])
    per = (got.group_by("engager", maintain_order=True).agg(pl.col("n").sum().alias("interactions"),
                                      pl.struct("kind", "n").alias("kinds"),
                                      pl.col("first").min(), pl.col("last").max()))
    if scores is not None:
        per = per.join(scores.select(pl.col("account_id").alias("engager"), "score", "rank"), on="engager",
                       how="left")
    else:
        per = per.with_columns(pl.lit(None, pl.Float64).alias("score"), pl.lit(None, pl.Int64).alias("rank"))
    new = (pl.lit(None, pl.Boolean) if earlier is None
           else ~pl.col("engager").is_in(pl.Series(sorted(earlier), dtype=pl.String).implode()))
    alert = (pl.lit(False) if min_score is None else (pl.col("score") >= float(min_score)).fill_null(False))
    per = (per.with_columns(new.alias("new"), alert.alias("alert"))
           .select("engager", pl.col("score").cast(pl.Float64), pl.col("rank").cast(pl.Int64),
                   pl.col("interactions").cast(pl.Int64), "kinds", "first", "last", "new", "alert")
           .sort(["score", "engager"], descending=[True, False], nulls_last=True))
    per = accts.with_handles(per, known, column="engager")
    return Engagers(account, known.get(account), r.run_id, r.algorithm, r.snapshot_id, topic, snap.as_of, snap.window_seconds,
                    since_at, min_score, None if before is None else before.snapshot_id, per)
