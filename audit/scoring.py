"""Runs: score a snapshot with a stored algorithm version, check the output contract, store it.

A run is identified by what it computes (snapshot content + algorithm content), so scoring
the same pair again returns the stored run. One transaction per run: a crash stores nothing.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import Any

import duckdb
import numpy as np
import polars as pl

from .algorithms.registry import Algorithm, verified_module
from .errors import AuditError
from .hashing import canonical_json, frame_digest, sha256_json, short_id
from .records import logged
from .snapshots import Snapshot, load_inputs
from .store import append_log, frame

ENGINES = ("duckdb", "polars", "numpy", "scipy")


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


def run_id_for(snapshot_hash: str, algorithm_hash: str) -> str:
    return short_id("r", sha256_json({"snapshot": snapshot_hash, "algorithm": algorithm_hash}))


def result_frame(result: pl.DataFrame, algorithm: Algorithm) -> pl.DataFrame:
    """The hashed shape: account_id, raw, score, then the components in declared order as c_0.."""
    names = [c for c, _ in algorithm.components]
    return result.select("account_id", pl.col("raw", "score").cast(pl.Float64),
                         *[pl.col(c).cast(pl.Float64).alias(f"c_{i}") for i, c in enumerate(names)])


def result_hash(stored: pl.DataFrame) -> str:
    """sha256 of a run's rows in account order (the shape result_frame and stored_scores give)."""
    return frame_digest(stored)


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


def stored_normalisation(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    rows = con.execute("SELECT norm FROM run_normalisation WHERE run_id = ?", [run_id]).fetchall()
    return json.loads(rows[0][0]) if rows else None


def run_hash(run_id: str, snapshot_id: str, algorithm_id: str, accounts: int, result: str,
             engine_versions: dict[str, str], seconds: float, counterfactual: bool) -> str:
    """Content hash of a run record (its scores enter through result_hash)."""
    return sha256_json({"run_id": run_id, "snapshot_id": snapshot_id, "algorithm_id": algorithm_id,
                        "accounts": accounts, "result_hash": result, "engines": engine_versions,
                        "seconds": seconds, "counterfactual": counterfactual})


_COLUMNS = ("r.run_id, r.snapshot_id, r.algorithm_id, a.name || '@' || a.version, r.accounts, r.result_hash, "
            "r.engines, r.seconds, r.counterfactual, r.created_at")


def _row(r: tuple) -> Run:
    return Run(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9])


def get(con: duckdb.DuckDBPyConnection, run_id: str) -> Run | None:
    rows = con.execute(f"SELECT {_COLUMNS} FROM run r JOIN algorithm a USING (algorithm_id) WHERE run_id = ?",
                       [run_id]).fetchall()
    return _row(rows[0]) if rows else None


def find(con: duckdb.DuckDBPyConnection, snapshot_id: str, algorithm_id: str) -> Run | None:
    rows = con.execute(f"SELECT {_COLUMNS} FROM run r JOIN algorithm a USING (algorithm_id) "
                       "WHERE snapshot_id = ? AND algorithm_id = ?", [snapshot_id, algorithm_id]).fetchall()
    return _row(rows[0]) if rows else None


def list_all(con: duckdb.DuckDBPyConnection) -> list[Run]:
    rows = con.execute(f"SELECT {_COLUMNS} FROM run r JOIN algorithm a USING (algorithm_id) "
                       "JOIN snapshot s USING (snapshot_id) ORDER BY s.as_of, a.name, a.version, r.run_id").fetchall()
    return [_row(r) for r in rows]


def score_snapshot(con: duckdb.DuckDBPyConnection, snap: Snapshot, algorithm: Algorithm,
                   now: datetime, *, counterfactual: bool = False) -> Run:
    """Score and store, inside the caller's transaction; an existing run is returned as it is."""
    existing = find(con, snap.snapshot_id, algorithm.algorithm_id)
    if existing is not None:
        return existing
    snapshot_hash = con.execute("SELECT content_hash FROM snapshot WHERE snapshot_id = ?",
                                [snap.snapshot_id]).fetchall()[0][0]
    run_id = run_id_for(snapshot_hash, algorithm.content_hash)
    t0 = time.perf_counter()
    stored, norm = compute(con, snap, algorithm)
    seconds = round(time.perf_counter() - t0, 3)
    digest = result_hash(stored)
    versions = engines()
    con.register("result_rows", stored)
    components = ", ".join(c for c in stored.columns if c.startswith("c_"))
    con.execute(f"INSERT INTO score SELECT ?, account_id, raw, score, [{components}]::DOUBLE[] FROM result_rows",
                [run_id])
    con.unregister("result_rows")
    con.execute("INSERT INTO run VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        run_id, run_hash(run_id, snap.snapshot_id, algorithm.algorithm_id, stored.height, digest, versions,
                         seconds, counterfactual),
        snap.snapshot_id, algorithm.algorithm_id, stored.height, digest, json.dumps(versions, sort_keys=True),
        seconds, counterfactual, now])
    content = con.execute("SELECT content_hash FROM run WHERE run_id = ?", [run_id]).fetchall()[0][0]
    if norm is not None:
        con.execute("INSERT INTO run_normalisation VALUES (?, ?)", [run_id, canonical_json(norm)])
    append_log(con, "run", run_id, logged(content, created_at=now, normalisation=norm), now)
    run = get(con, run_id)
    assert run is not None
    return Run(**{**run.__dict__, "new": True})


def run_scores(con: duckdb.DuckDBPyConnection, run_id: str, accounts: list[str] | None = None) -> pl.DataFrame:
    """account_id, raw, score of a run (of the given accounts only, when given), in account order."""
    if accounts is None:
        return frame(con, "SELECT account_id, raw, score FROM score WHERE run_id = ? ORDER BY account_id", [run_id])
    return frame(con, "SELECT account_id, raw, score FROM score WHERE run_id = $run AND account_id IN "
                      "(SELECT unnest($ids)) ORDER BY account_id", {"run": run_id, "ids": accounts})


def stored_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """A run's rows as stored, in account order (the shape result_hash covers)."""
    width = con.execute("SELECT coalesce(max(len(components)), 0) FROM score WHERE run_id = ?", [run_id]).fetchall()[0][0]
    parts = "".join(f", components[{i + 1}] AS c_{i}" for i in range(width))
    return frame(con, f"SELECT account_id, raw, score{parts} FROM score WHERE run_id = ? ORDER BY account_id",
                 [run_id])
