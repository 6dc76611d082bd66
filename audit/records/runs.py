"""Runs: score a snapshot with a stored algorithm version, check the output contract, store it.

A run is identified by what it computes (snapshot content + algorithm content), so scoring
the same pair again returns the stored run. One transaction per run: a crash stores nothing.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from ..errors import AuditError, NotFound
from ..store.db import append_log, dicts, frame, registered, required
from ..store.db import resolve as resolve_id
from ..store.hashing import canonical_json
from ..store.recipes import LOCAL, logged, result_hash, run_hash, run_id_for
from .algorithms import Algorithm, verified_module
from .snapshots import Snapshot, load_inputs

if TYPE_CHECKING:
    from .spark import SparkOptions

ENGINES = ("duckdb", "polars", "numpy", "scipy")
SPARK = "spark"
ENGINE_NAMES = (LOCAL, SPARK)


@dataclass(frozen=True)
class Run:
    """A stored run."""
    run_id: str
    snapshot_id: str
    algorithm_id: str
    algorithm: str              # name@version
    accounts: int
    result_hash: str
    engines: dict[str, str]
    seconds: float
    counterfactual: bool
    created_at: datetime
    engine: str = LOCAL         # local | spark
    new: bool = False


def engines() -> dict[str, str]:
    """The versions a run depends on besides its stored source."""
    found = {"python": platform.python_version()}
    for name in ENGINES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def result_frame(result: pl.DataFrame, algorithm: Algorithm) -> pl.DataFrame:
    """The hashed shape: account_id, raw, score, then the components in declared order as c_0..
    (a topic version's: account_id, topic, raw, score, c_0..)."""
    names = [c for c, _ in algorithm.components]
    keys = ("account_id", "topic") if algorithm.by_topic else ("account_id",)
    return result.select(*keys, pl.col("raw", "score").cast(pl.Float64),
                         *[pl.col(c).cast(pl.Float64).alias(f"c_{i}") for i, c in enumerate(names)])


def check_output(result: Any, algorithm: Algorithm, universe: int | None = None) -> pl.DataFrame:
    """The algorithm contract, enforced: columns, order, one row per account, components sum, range."""
    label = algorithm.label
    if not isinstance(result, pl.DataFrame):
        raise AuditError(f"algorithm {label}: score() returned {type(result).__name__}, not a polars DataFrame")
    names = [c for c, _ in algorithm.components]
    keys = ["account_id", "topic"] if algorithm.by_topic else ["account_id"]
    expected = [*keys, "raw", "score", *names]
    if result.columns != expected:
        raise AuditError(f"algorithm {label}: score() returned columns {result.columns}, expected {expected}")
    ids = result["account_id"]
    if ids.dtype != pl.String:      # stored as text: other ids would hash (and sort) unlike the stored rows
        raise AuditError(f"algorithm {label}: account_id must be a String column, not {ids.dtype}")
    if algorithm.by_topic:
        return _check_topic_rows(result, algorithm, names)
    if ids.null_count() or ids.n_unique() != result.height:
        raise AuditError(f"algorithm {label}: account_id must be unique and non-null")
    if universe is not None and result.height != universe:
        raise AuditError(f"algorithm {label}: score() returned {result.height:,} rows for the snapshot's "
                         f"{universe:,} accounts; the contract is one row per account")
    if not ids.is_sorted():
        raise AuditError(f"algorithm {label}: output must be sorted by account_id")
    return _check_values(result, algorithm, names)


def _check_topic_rows(result: pl.DataFrame, algorithm: Algorithm, names: list[str]) -> pl.DataFrame:
    """A topic version's rows: one per (topic, account), sorted by topic then account, named topics."""
    label = algorithm.label
    if result["topic"].dtype != pl.String:
        raise AuditError(f"algorithm {label}: topic must be a String column, not {result['topic'].dtype}")
    if result["account_id"].null_count() or result["topic"].null_count() or (
            result["topic"].str.len_bytes() == 0).any():
        raise AuditError(f"algorithm {label}: account_id and topic must be non-null (and topics non-empty)")
    # strictly increasing (topic, account_id) pairs: sorted, and each pair once, in one pass
    t, a = pl.col("topic"), pl.col("account_id")
    if not result.select(((t > t.shift()) | ((t == t.shift()) & (a > a.shift()))).slice(1).all()).item():
        raise AuditError(f"algorithm {label}: output must be sorted by topic, then account_id, with one row "
                         "per (account, topic)")
    _check_values(result.drop("topic"), algorithm, names)
    return result


def _check_values(result: pl.DataFrame, algorithm: Algorithm, names: list[str]) -> pl.DataFrame:
    """Finite values, scores in 1..100, components adding up to raw."""
    import numpy as np  # only computing a run needs it, not reading one
    label, ids = algorithm.label, result["account_id"]
    values = result.select(pl.exclude("account_id").cast(pl.Float64)).to_numpy()
    if not np.isfinite(values).all():
        raise AuditError(f"algorithm {label}: raw, score and components must be finite")
    score = result["score"].to_numpy()
    if score.size and (score.min() < 1 or score.max() > 100):
        raise AuditError(f"algorithm {label}: score must lie in 1..100 (found {score.min()}..{score.max()})")
    if names:
        gap = np.abs(values[:, 2:].sum(axis=1) - values[:, 0])
        tol = 1e-12 * np.maximum(1.0, np.abs(values[:, 0]))
        if (gap > tol).any():
            worst = int(np.argmax(gap - tol))
            raise AuditError(f"algorithm {label}: components do not add up to raw for account "
                             f"{ids[worst]} (off by {gap[worst]:.3g})")
    return result


def compute(con: duckdb.DuckDBPyConnection, snap: Snapshot, algorithm: Algorithm) -> tuple[pl.DataFrame, dict | None]:
    """Execute the stored source on the snapshot's inputs; return the stored-shape frame and the
    population statistics of its mapping (None when the algorithm declares no normalisation())."""
    module = verified_module(algorithm)
    if (getattr(module, "DIMENSION", None) == "topic") != algorithm.by_topic:
        raise AuditError(f'algorithm {algorithm.label}: DIMENSION must be written DIMENSION = "topic" on a line '
                         "of its own, or be absent")
    interactions, accounts = load_inputs(con, snap, topics=algorithm.by_topic)
    try:
        result = module.score(interactions, accounts, algorithm.params)
        checked = check_output(result, algorithm, snap.accounts)
        if not hasattr(module, "normalisation"):
            norm = None
        elif algorithm.by_topic:        # one population statistic per topic, of that topic's rows
            norm = {"topics": {str(part["topic"][0]): module.normalisation(part.drop("topic"), algorithm.params)
                               for part in checked.partition_by("topic", maintain_order=True)}}
        else:
            norm = module.normalisation(checked, algorithm.params)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"algorithm {algorithm.label} failed on snapshot {snap.snapshot_id}: "
                         f"{type(exc).__name__}: {exc}") from exc
    return result_frame(checked, algorithm), (None if norm is None else json.loads(canonical_json(norm)))


def compute_on_spark(con: duckdb.DuckDBPyConnection, snap: Snapshot, algorithm: Algorithm, run_id: str,
                     options: SparkOptions) -> tuple[pl.DataFrame, dict | None, dict[str, Any]]:
    """Execute the stored source's compute_spark on Spark, from the snapshot exported to Parquet; the
    result passes the same output contract as a local run, and its scores must be exactly the
    version's own to_score of its raw values. Returns the stored-shape frame, the normalisation and
    what the run records about the engine."""
    import numpy as np

    from . import exports, spark
    module = verified_module(algorithm)
    spark.check_version(module, algorithm.label)
    spark.require()
    spark.check_master(options.master)
    if options.data_dir is None:
        raise AuditError("--engine spark needs a folder for the Parquet exports (--data-dir)")
    export = exports.export_snapshot(con, snap, options.data_dir)
    result, described = spark.compute(module, algorithm.label, algorithm.params, export.folder,
                                      export.folder / "runs" / run_id, options)
    checked = check_output(result, algorithm, snap.accounts)
    norm = None
    try:
        if hasattr(module, "normalisation"):
            norm = module.normalisation(checked, algorithm.params)
        if norm is not None and hasattr(module, "to_score"):
            mapped = np.asarray(module.to_score(checked["raw"].to_numpy(), norm, algorithm.params), dtype=np.float64)
            off = np.flatnonzero(mapped != checked["score"].to_numpy())
            if off.size:
                i = int(off[0])
                raise AuditError(f"algorithm {algorithm.label}: compute_spark() gave account "
                                 f"{checked['account_id'][i]} the score {checked['score'][i]!r}, its to_score() "
                                 f"gives {mapped[i]!r}; the scores of a Spark run must be the version's own "
                                 "mapping of raw")
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"algorithm {algorithm.label} failed on snapshot {snap.snapshot_id}: "
                         f"{type(exc).__name__}: {exc}") from exc
    return (result_frame(checked, algorithm), None if norm is None else json.loads(canonical_json(norm)),
            described)


def stored_normalisation(con: duckdb.DuckDBPyConnection, run_id: str, topic: str | None = None) -> dict | None:
    """The population statistics stored with a run (None for a version without normalisation());
    with `topic`, those of that topic in a topic run."""
    rows = dicts(con, "SELECT norm FROM run_normalisation WHERE run_id = ?", [run_id])
    norm = json.loads(rows[0]["norm"]) if rows else None
    return norm["topics"].get(topic) if topic is not None and norm is not None else norm


_COLUMNS = ("r.run_id, r.snapshot_id, r.algorithm_id, a.name || '@' || a.version AS algorithm, r.accounts, "
            "r.result_hash, r.engines, r.seconds, r.counterfactual, r.created_at, r.engine")
_FROM = "FROM run r JOIN algorithm a USING (algorithm_id)"


def _run(row: dict) -> Run:
    return Run(**{**row, "engines": json.loads(row["engines"])})


def find_for(con: duckdb.DuckDBPyConnection, snapshot_id: str, algorithm_id: str,
             engine: str = LOCAL) -> Run | None:
    """The run of this snapshot with this algorithm version on this engine, if it was scored."""
    rows = dicts(con, f"SELECT {_COLUMNS} {_FROM} WHERE snapshot_id = ? AND algorithm_id = ? AND engine = ?",
                 [snapshot_id, algorithm_id, engine])
    return _run(rows[0]) if rows else None


def find(con: duckdb.DuckDBPyConnection, run_id: str) -> Run | None:
    """The run with this exact id, or None."""
    rows = dicts(con, f"SELECT {_COLUMNS} {_FROM} WHERE run_id = ?", [run_id])
    return _run(rows[0]) if rows else None


def get(con: duckdb.DuckDBPyConnection, run_id: str) -> Run:
    """The run with this exact id; NotFound when the store does not hold it."""
    return required(find(con, run_id), "run", run_id, "audit runs")


def resolve(con: duckdb.DuckDBPyConnection, ref: str) -> Run:
    """A run by id or unique id prefix."""
    return get(con, resolve_id(con, "run", ref, what="run", listing="audit runs"))


def list_all(con: duckdb.DuckDBPyConnection) -> list[Run]:
    """Every run, by snapshot as-of, then algorithm."""
    return [_run(r) for r in dicts(con, f"SELECT {_COLUMNS} {_FROM} JOIN snapshot s USING (snapshot_id) "
                                        "ORDER BY s.as_of, a.name, a.version, r.engine, r.run_id")]


def score_snapshot(con: duckdb.DuckDBPyConnection, snap: Snapshot, algorithm: Algorithm,
                   now: datetime, *, counterfactual: bool = False, engine: str = LOCAL,
                   spark: SparkOptions | None = None) -> Run:
    """Score and store, inside the caller's transaction; an existing run is returned as it is.
    engine "spark" runs the version's compute_spark with SPARK's options."""
    if engine not in ENGINE_NAMES:
        raise AuditError(f'engine "{engine}" is not one of {", ".join(ENGINE_NAMES)}')
    existing = find_for(con, snap.snapshot_id, algorithm.algorithm_id, engine)
    if existing is not None:
        return existing
    snapshot_hash = dicts(con, "SELECT content_hash FROM snapshot WHERE snapshot_id = ?",
                          [snap.snapshot_id])[0]["content_hash"]
    run_id = run_id_for(snapshot_hash, algorithm.content_hash, engine)
    versions = engines()
    t0 = time.perf_counter()
    if engine == SPARK:
        from .spark import SparkOptions
        stored, norm, described = compute_on_spark(con, snap, algorithm, run_id, spark or SparkOptions())
        versions |= described
    else:
        stored, norm = compute(con, snap, algorithm)
    seconds = round(time.perf_counter() - t0, 3)
    digest = result_hash(stored)
    components = ", ".join(c for c in stored.columns if c.startswith("c_"))
    topic = "topic" if algorithm.by_topic else "NULL"
    with registered(con, "result_rows", stored):
        con.execute(f"INSERT INTO score (run_id, account_id, raw, score, components, topic) SELECT ?, account_id, "
                    f"raw, score, [{components}]::DOUBLE[], {topic} FROM result_rows", [run_id])
    content = run_hash(run_id, snap.snapshot_id, algorithm.algorithm_id, stored.height, digest, versions,
                       seconds, counterfactual, engine)
    con.execute("INSERT INTO run VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        run_id, content, snap.snapshot_id, algorithm.algorithm_id, stored.height, digest,
        json.dumps(versions, sort_keys=True), seconds, counterfactual, now, engine])
    if norm is not None:
        con.execute("INSERT INTO run_normalisation VALUES (?, ?)", [run_id, canonical_json(norm)])
    append_log(con, "run", run_id, logged(content, created_at=now, normalisation=norm), now)
    return dataclasses.replace(get(con, run_id), new=True)


# The rank of an account in a run: 1 + the number of accounts of that run with a strictly higher
# score (ties share the best rank). This is the one definition; analysis.compare computes the
# same on arrays (`analysis.compare.rank_in`), and a test holds the two equal.
RANK = "rank() OVER (PARTITION BY run_id ORDER BY score DESC)"


FEW = 16


def _in_topic(topic: str | None, params: dict) -> str:
    """The filter of a topic's rows in a topic run (nothing for a run without topics)."""
    if topic is None:
        return ""
    params["topic"] = topic
    return " AND topic = $topic"


def ranked(con: duckdb.DuckDBPyConnection, run_id: str, *, accounts: list[str] | None = None,
           top: int | None = None, topic: str | None = None) -> pl.DataFrame:
    """account_id, score, raw, components and rank of a run, best first (ties by account_id);
    only the given accounts when `accounts` is given, only the best `top` when `top` is; with
    `topic`, the rows of that topic of a topic run, ranked within the topic."""
    params: dict = {"run": run_id}
    where = _in_topic(topic, params)
    if accounts is not None and len(accounts) <= FEW and top is None:
        # A few accounts: RANK spelled as 1 + the strictly higher scores, one filtered count each,
        # instead of ranking the whole run (an explanation asks for one account four times).
        params["accounts"] = list(accounts)
        return frame(con, f"""
            WITH mine AS (SELECT account_id, score, raw, components FROM score
                          WHERE run_id = $run{where} AND account_id IN (SELECT unnest($accounts)))
            SELECT account_id, score, raw, components,
                   (SELECT count(*) FROM score h WHERE h.run_id = $run{where.replace(" topic", " h.topic")}
                    AND h.score > mine.score) + 1 AS rank
            FROM mine ORDER BY rank, account_id""", params)
    picked = ""
    if accounts is not None:
        picked, params["accounts"] = "WHERE account_id IN (SELECT unnest($accounts))", list(accounts)
    limit = ""
    if top is not None:
        limit, params["top"] = "LIMIT $top", int(top)
    return frame(con, f"""
        WITH ranked AS (SELECT account_id, score, raw, components, {RANK} AS rank FROM score
                        WHERE run_id = $run{where})
        SELECT * FROM ranked {picked} ORDER BY rank, account_id {limit}""", params)


def place(con: duckdb.DuckDBPyConnection, run_id: str, account: str, topic: str | None = None) -> dict | None:
    """raw, score, rank (RANK's definition: 1 + accounts scoring strictly higher) and tied (other
    accounts with exactly this score) of one account in a run (in a topic of a topic run); None when
    it has no score there."""
    params = {"run": run_id, "account": account}
    where = _in_topic(topic, params)
    rows = dicts(con, f"""
        WITH s AS (SELECT raw, score FROM score WHERE run_id = $run{where} AND account_id = $account)
        SELECT s.raw, s.score, count(*) FILTER (WHERE o.score > s.score) + 1 AS rank,
               count(*) FILTER (WHERE o.score = s.score) - 1 AS tied
        FROM s, score o WHERE o.run_id = $run{where.replace(" topic", " o.topic")} GROUP BY s.raw, s.score""", params)
    return rows[0] if rows else None


def has(con: duckdb.DuckDBPyConnection, run_id: str, account: str, topic: str | None = None) -> bool:
    """Whether the account has a score in the run (in the topic, for a topic run)."""
    params = {"run": run_id, "account": account}
    where = _in_topic(topic, params)
    return bool(dicts(con, f"SELECT count(*) AS n FROM score WHERE run_id = $run{where} AND account_id = $account",
                      params)[0]["n"])


def score_at_rank(con: duckdb.DuckDBPyConnection, run_id: str, rank: int, topic: str | None = None) -> float:
    """The score of the rank-th best account of a run (the score an account of that rank has)."""
    params = {"run": run_id, "offset": rank - 1}
    where = _in_topic(topic, params)
    return dicts(con, f"SELECT score FROM score WHERE run_id = $run{where} ORDER BY score DESC LIMIT 1 OFFSET $offset",
                 params)[0]["score"]


def run_scores(con: duckdb.DuckDBPyConnection, run_id: str, accounts: list[str] | None = None,
               topic: str | None = None) -> pl.DataFrame:
    """account_id, raw, score of a run (of the given accounts only, when given; of one topic of a
    topic run, with `topic`), in account order."""
    if accounts is None and topic is None:
        return frame(con, "SELECT account_id, raw, score FROM score WHERE run_id = ? ORDER BY account_id", [run_id])
    params: dict = {"run": run_id}
    where = _in_topic(topic, params)
    if accounts is not None:
        where, params["ids"] = where + " AND account_id IN (SELECT unnest($ids))", accounts
    return frame(con, f"SELECT account_id, raw, score FROM score WHERE run_id = $run{where} ORDER BY account_id",
                 params)


def accounts_in(con: duckdb.DuckDBPyConnection, run: Run, topic: str | None = None) -> int:
    """How many accounts RUN scored (in one topic of a topic run, with `topic`)."""
    if topic is None:
        return run.accounts
    return int(con.execute("SELECT count(*) FROM score WHERE run_id = ? AND topic = ?",
                           [run.run_id, topic]).fetchall()[0][0])


def rows(con: duckdb.DuckDBPyConnection, run_id: str, algorithm: Algorithm, accounts: list[str],
         topic: str | None = None) -> pl.DataFrame:
    """account_id, raw, score and one column per component of the given accounts, in account order:
    the run's result as its algorithm returned it, for those accounts (in one topic, with `topic`)."""
    names = [c for c, _ in algorithm.components]
    parts = "".join(f", components[{i + 1}] AS {_quoted(n)}" for i, n in enumerate(names))
    params: dict = {"run": run_id}
    where = _in_topic(topic, params)
    # the ids as a relation, not a list bound into the query (binding tens of thousands of ids
    # as one list value costs more than the lookup)
    ids = pl.DataFrame({"account_id": sorted(set(accounts))}, schema={"account_id": pl.String})
    with registered(con, "wanted_accounts", ids):
        return frame(con, f"SELECT account_id, raw, score{parts} FROM score SEMI JOIN wanted_accounts USING "
                          f"(account_id) WHERE run_id = $run{where} ORDER BY account_id", params)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stored_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """A run's rows as stored, in account order (the shape result_hash covers; a topic run's rows
    by topic, then account, with their topic)."""
    found = dicts(con, "SELECT coalesce(max(len(components)), 0) AS width, count(topic) > 0 AS topical "
                       "FROM score WHERE run_id = ?", [run_id])[0]
    parts = "".join(f", components[{i + 1}] AS c_{i}" for i in range(found["width"]))
    if found["topical"]:
        return frame(con, f"SELECT account_id, topic, raw, score{parts} FROM score WHERE run_id = ? "
                          "ORDER BY topic, account_id", [run_id])
    return frame(con, f"SELECT account_id, raw, score{parts} FROM score WHERE run_id = ? ORDER BY account_id",
                 [run_id])


def account_components(con: duckdb.DuckDBPyConnection, run_id: str, algorithm: Algorithm,
                       account: str, topic: str | None = None) -> dict[str, float]:
    """One account's components in a run (in one topic of a topic run), by component name."""
    params = {"run": run_id, "account": account}
    where = _in_topic(topic, params)
    rows = dicts(con, f"SELECT components FROM score WHERE run_id = $run{where} AND account_id = $account", params)
    if not rows:
        raise NotFound(f'account "{account}" has no score in run {run_id}' + (f' in topic "{topic}"' if topic else ""))
    return {name: float(v) for (name, _), v in zip(algorithm.components, rows[0]["components"], strict=True)}


def topics(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """topic and accounts (scored in it) of every topic of a topic run, by topic."""
    return frame(con, "SELECT topic, count(*)::BIGINT AS accounts FROM score WHERE run_id = ? AND topic IS NOT NULL "
                      "GROUP BY topic ORDER BY topic", [run_id])


def account_topics(con: duckdb.DuckDBPyConnection, run_id: str, account: str) -> pl.DataFrame:
    """topic, score, raw, rank (within the topic) and accounts (of the topic) of one account in every
    topic of a topic run it has a score in, best first (ties by topic)."""
    return frame(con, """
        WITH mine AS (SELECT topic, score, raw FROM score WHERE run_id = $run AND account_id = $account
                      AND topic IS NOT NULL)
        SELECT mine.topic, mine.score, mine.raw,
               count(*) FILTER (WHERE o.score > mine.score) + 1 AS rank, count(*) AS accounts
        FROM mine JOIN score o ON o.run_id = $run AND o.topic = mine.topic
        GROUP BY mine.topic, mine.score, mine.raw
        ORDER BY mine.score DESC, mine.topic""", {"run": run_id, "account": account})
