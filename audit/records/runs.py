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
import numpy as np
import polars as pl

from ..errors import AuditError, NotFound
from ..store.db import append_log, dicts, frame, registered, required, resolve as resolve_id
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
    """The hashed shape: account_id, raw, score, then the components in declared order as c_0.."""
    names = [c for c, _ in algorithm.components]
    return result.select("account_id", pl.col("raw", "score").cast(pl.Float64),
                         *[pl.col(c).cast(pl.Float64).alias(f"c_{i}") for i, c in enumerate(names)])


def check_output(result: Any, algorithm: Algorithm, universe: int | None = None) -> pl.DataFrame:
    """The algorithm contract, enforced: columns, order, one row per account, components sum, range."""
    label = algorithm.label
    if not isinstance(result, pl.DataFrame):
        raise AuditError(f"algorithm {label}: score() returned {type(result).__name__}, not a polars DataFrame")
    names = [c for c, _ in algorithm.components]
    expected = ["account_id", "raw", "score", *names]
    if result.columns != expected:
        raise AuditError(f"algorithm {label}: score() returned columns {result.columns}, expected {expected}")
    ids = result["account_id"]
    if ids.dtype != pl.String:      # stored as text: other ids would hash (and sort) unlike the stored rows
        raise AuditError(f"algorithm {label}: account_id must be a String column, not {ids.dtype}")
    if ids.null_count() or ids.n_unique() != result.height:
        raise AuditError(f"algorithm {label}: account_id must be unique and non-null")
    if universe is not None and result.height != universe:
        raise AuditError(f"algorithm {label}: score() returned {result.height:,} rows for the snapshot's "
                         f"{universe:,} accounts; the contract is one row per account")
    if not ids.is_sorted():
        raise AuditError(f"algorithm {label}: output must be sorted by account_id")
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
    interactions, accounts = load_inputs(con, snap)
    try:
        result = module.score(interactions, accounts, algorithm.params)
        checked = check_output(result, algorithm, snap.accounts)
        norm = module.normalisation(checked, algorithm.params) if hasattr(module, "normalisation") else None
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


def stored_normalisation(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """The population statistics stored with a run (None for a version without normalisation())."""
    rows = dicts(con, "SELECT norm FROM run_normalisation WHERE run_id = ?", [run_id])
    return json.loads(rows[0]["norm"]) if rows else None


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
    with registered(con, "result_rows", stored):
        con.execute(f"INSERT INTO score SELECT ?, account_id, raw, score, [{components}]::DOUBLE[] "
                    "FROM result_rows", [run_id])
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


def ranked(con: duckdb.DuckDBPyConnection, run_id: str, *, accounts: list[str] | None = None,
           top: int | None = None) -> pl.DataFrame:
    """account_id, score, raw, components and rank of a run, best first (ties by account_id);
    only the given accounts when `accounts` is given, only the best `top` when `top` is."""
    params: dict = {"run": run_id}
    if accounts is not None and len(accounts) <= FEW and top is None:
        # A few accounts: RANK spelled as 1 + the strictly higher scores, one filtered count each,
        # instead of ranking the whole run (an explanation asks for one account four times).
        params["accounts"] = list(accounts)
        return frame(con, """
            WITH mine AS (SELECT account_id, score, raw, components FROM score
                          WHERE run_id = $run AND account_id IN (SELECT unnest($accounts)))
            SELECT account_id, score, raw, components,
                   (SELECT count(*) FROM score h WHERE h.run_id = $run AND h.score > mine.score) + 1 AS rank
            FROM mine ORDER BY rank, account_id""", params)
    picked = ""
    if accounts is not None:
        picked, params["accounts"] = "WHERE account_id IN (SELECT unnest($accounts))", list(accounts)
    limit = ""
    if top is not None:
        limit, params["top"] = "LIMIT $top", int(top)
    return frame(con, f"""
        WITH ranked AS (SELECT account_id, score, raw, components, {RANK} AS rank FROM score WHERE run_id = $run)
        SELECT * FROM ranked {picked} ORDER BY rank, account_id {limit}""", params)


def place(con: duckdb.DuckDBPyConnection, run_id: str, account: str) -> dict | None:
    """raw, score, rank (RANK's definition: 1 + accounts scoring strictly higher) and tied (other
    accounts with exactly this score) of one account in a run; None when it has no score there."""
    rows = dicts(con, """
        WITH s AS (SELECT raw, score FROM score WHERE run_id = $run AND account_id = $account)
        SELECT s.raw, s.score, count(*) FILTER (WHERE o.score > s.score) + 1 AS rank,
               count(*) FILTER (WHERE o.score = s.score) - 1 AS tied
        FROM s, score o WHERE o.run_id = $run GROUP BY s.raw, s.score""", {"run": run_id, "account": account})
    return rows[0] if rows else None


def has(con: duckdb.DuckDBPyConnection, run_id: str, account: str) -> bool:
    """Whether the account has a score in the run."""
    return bool(dicts(con, "SELECT count(*) AS n FROM score WHERE run_id = ? AND account_id = ?",
                      [run_id, account])[0]["n"])


def score_at_rank(con: duckdb.DuckDBPyConnection, run_id: str, rank: int) -> float:
    """The score of the rank-th best account of a run (the score an account of that rank has)."""
    return dicts(con, "SELECT score FROM score WHERE run_id = ? ORDER BY score DESC LIMIT 1 OFFSET ?",
                 [run_id, rank - 1])[0]["score"]


def run_scores(con: duckdb.DuckDBPyConnection, run_id: str, accounts: list[str] | None = None) -> pl.DataFrame:
    """account_id, raw, score of a run (of the given accounts only, when given), in account order."""
    if accounts is None:
        return frame(con, "SELECT account_id, raw, score FROM score WHERE run_id = ? ORDER BY account_id", [run_id])
    return frame(con, "SELECT account_id, raw, score FROM score WHERE run_id = $run AND account_id IN "
                      "(SELECT unnest($ids)) ORDER BY account_id", {"run": run_id, "ids": accounts})


def rows(con: duckdb.DuckDBPyConnection, run_id: str, algorithm: Algorithm, accounts: list[str]) -> pl.DataFrame:
    """account_id, raw, score and one column per component of the given accounts, in account order:
    the run's result as its algorithm returned it, for those accounts."""
    names = [c for c, _ in algorithm.components]
    parts = "".join(f", components[{i + 1}] AS {_quoted(n)}" for i, n in enumerate(names))
    return frame(con, f"SELECT account_id, raw, score{parts} FROM score WHERE run_id = $run AND account_id IN "
                      "(SELECT unnest($ids)) ORDER BY account_id", {"run": run_id, "ids": accounts})


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stored_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """A run's rows as stored, in account order (the shape result_hash covers)."""
    width = dicts(con, "SELECT coalesce(max(len(components)), 0) AS width FROM score WHERE run_id = ?",
                  [run_id])[0]["width"]
    parts = "".join(f", components[{i + 1}] AS c_{i}" for i in range(width))
    return frame(con, f"SELECT account_id, raw, score{parts} FROM score WHERE run_id = ? ORDER BY account_id",
                 [run_id])


def account_components(con: duckdb.DuckDBPyConnection, run_id: str, algorithm: Algorithm,
                       account: str) -> dict[str, float]:
    """One account's components in a run, by component name."""
    rows = dicts(con, "SELECT components FROM score WHERE run_id = ? AND account_id = ?", [run_id, account])
    if not rows:
        raise NotFound(f'account "{account}" has no score in run {run_id}')
    return {name: float(v) for (name, _), v in zip(algorithm.components, rows[0]["components"], strict=True)}
