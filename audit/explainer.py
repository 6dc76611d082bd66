"""Gather from the store what an explanation needs, computing counterfactual runs on demand.

Counterfactual runs (old algorithm on new data, new algorithm on old data) are stored as
ordinary runs marked counterfactual, so a second explanation of the same change reuses them.
"""
from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from . import scoring, snapshots
from .algorithms import registry
from .algorithms.registry import Algorithm
from .explain import Explanation, RunPoint, Side, check_account, combine, split_data
from .scoring import Run
from .snapshots import Snapshot
from .store import frame


def needed_counterfactuals(con: duckdb.DuckDBPyConnection, r1: Run, r2: Run) -> list[tuple[str, str]]:
    """(snapshot_id, algorithm_id) pairs the explanation needs that are not stored yet."""
    if r1.snapshot_id == r2.snapshot_id or r1.algorithm_id == r2.algorithm_id:
        return []
    pairs = [(r2.snapshot_id, r1.algorithm_id), (r1.snapshot_id, r2.algorithm_id)]
    return [p for p in pairs if scoring.find(con, *p) is None]


def compute_counterfactuals(con: duckdb.DuckDBPyConnection, pairs: list[tuple[str, str]], now: datetime,
                            step=lambda _: None) -> None:
    for snapshot_id, algorithm_id in pairs:
        snap = snapshots.get(con, snapshot_id)
        algo = registry.get(con, algorithm_id)
        assert snap is not None and algo is not None
        step(f"counterfactual run: {algo.label} on {snapshot_id}")
        scoring.score_snapshot(con, snap, algo, now, counterfactual=True)


def _point(con: duckdb.DuckDBPyConnection, run: Run, snap: Snapshot, account: str) -> RunPoint | None:
    rows = con.execute("""
        SELECT raw, score, (SELECT count(*) FROM score o WHERE o.run_id = s.run_id AND o.score > s.score) + 1
        FROM score s WHERE run_id = ? AND account_id = ?""", [run.run_id, account]).fetchall()
    if not rows:
        return None
    raw, score, rank = rows[0]
    return RunPoint(run.run_id, run.snapshot_id, snap.label, run.algorithm, score, raw, rank)


def _components(con: duckdb.DuckDBPyConnection, run_id: str, algo: Algorithm, account: str) -> dict[str, float]:
    values = con.execute("SELECT components FROM score WHERE run_id = ? AND account_id = ?",
                         [run_id, account]).fetchall()[0][0]
    return {name: float(v) for (name, _), v in zip(algo.components, values)}


def _inputs(con: duckdb.DuckDBPyConnection, snap: Snapshot, account: str) -> pl.DataFrame:
    """Interactions into the account, and every interaction of the accounts that engaged it."""
    where = snapshots._where(snap.window_seconds)
    params = snapshots._params(snap.as_of, snap.window_seconds, list(snap.batch_ids)) | {"account": account}
    return frame(con, f"""
        WITH w AS (SELECT source, target, kind::VARCHAR AS kind, ts, weight FROM interaction WHERE {where})
        SELECT * FROM w WHERE target = $account OR source IN (SELECT source FROM w WHERE target = $account)
        ORDER BY ts, source, target, kind, weight""", params)


def check_present(con: duckdb.DuckDBPyConnection, account: str, r1: Run, r2: Run) -> None:
    """A clear message when the account has no score in either run."""
    present = {}
    for run in (r1, r2):
        present[run.run_id] = bool(con.execute("SELECT count(*) FROM score WHERE run_id = ? AND account_id = ?",
                                               [run.run_id, account]).fetchall()[0][0])
    check_account(account, present)


def explain_runs(con: duckdb.DuckDBPyConnection, account: str, r1: Run, r2: Run) -> Explanation:
    """The explanation of ACCOUNT's change from run r1 to run r2 (counterfactual runs must be stored)."""
    snap1, snap2 = snapshots.get(con, r1.snapshot_id), snapshots.get(con, r2.snapshot_id)
    a1, a2 = registry.get(con, r1.algorithm_id), registry.get(con, r2.algorithm_id)
    assert snap1 and snap2 and a1 and a2
    p1, p2 = _point(con, r1, snap1, account), _point(con, r2, snap2, account)
    check_account(account, {r1.run_id: p1 is not None, r2.run_id: p2 is not None})
    assert p1 is not None and p2 is not None
    # the account's inputs in both snapshots, and who engaged it in either (their scores are needed)
    inputs = {snap.snapshot_id: _inputs(con, snap, account) for snap in (snap1, snap2)}
    ids = sorted(set(pl.concat([f.filter(pl.col("target") == account)["source"] for f in inputs.values()])
                     .unique().to_list()) | {account})

    def side(run: Run, snap: Snapshot, algo: Algorithm, module) -> Side:
        rows = inputs[snap.snapshot_id]
        norm = scoring.stored_normalisation(con, run.run_id)
        if norm is None and hasattr(module, "normalisation"):     # a run stored without it
            norm = module.normalisation(scoring.run_scores(con, run.run_id), algo.params)
        return Side(scoring.run_scores(con, run.run_id, ids), _components(con, run.run_id, algo, account), rows, norm)

    def data_split(algo: Algorithm, before: Run, after: Run):
        module = registry.verified_module(algo)
        return split_data(module, algo.label, algo.params, algo.components, account,
                          side(before, snap1, algo, module), side(after, snap2, algo, module))

    counterfactual_runs: tuple[str, ...] = ()
    if r1.snapshot_id == r2.snapshot_id:
        splits, labels, method = [], [], "same snapshot: the whole change is the algorithm"
    elif r1.algorithm_id == r2.algorithm_id:
        splits, labels = [(1.0, data_split(a1, r1, r2))], [a1.label]
        method = "same algorithm: the change is data, split into own activity and everyone else"
    else:
        c12 = scoring.find(con, r2.snapshot_id, r1.algorithm_id)     # old algorithm, new data
        c21 = scoring.find(con, r1.snapshot_id, r2.algorithm_id)     # new algorithm, old data
        assert c12 is not None and c21 is not None, "counterfactual runs must be computed first"
        present = {c.run_id: _point(con, c, s, account) is not None for c, s in ((c12, snap2), (c21, snap1))}
        check_account(account, present)
        splits = [(0.5, data_split(a1, r1, c12)), (0.5, data_split(a2, c21, r2))]
        labels = [a1.label, a2.label]
        method = ("snapshot and algorithm both changed: two-factor Shapley value over the counterfactual runs "
                  f"{c12.run_id} ({a1.label} on the new snapshot) and {c21.run_id} ({a2.label} on the old one)")
        counterfactual_runs = (c12.run_id, c21.run_id)
    return combine(account, p1, p2, splits, labels, a2.reasons, {a1.label: a1.reasons, a2.label: a2.reasons},
                   counterfactual_runs, method)
