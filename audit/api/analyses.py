"""Facade: compare two runs, explain one account's change, verify the store.

The analyses themselves are pure (`audit.analysis`); this module gathers their inputs from the
records and stores the counterfactual runs an explanation needs.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from ..analysis.explain import (Explanation, Ranks, RunPoint, Side, Version, check_account, explain_change,
                                explain_presence, explain_same)
from ..progress import Step, quiet
from ..errors import NotComputed, NotFound
from ..records import accounts as accts
from ..records import algorithms as algos
from ..records import features as feats
from ..records import publications as pubs
from ..records import runs as runs_
from ..records import snapshots as snaps
from ..records.runs import Run
from ..records.snapshots import Snapshot
from ..records.verify import Verification, verify as verify_store
from ._store import Store, may_store, reading, writing

if TYPE_CHECKING:   # compare pulls in scipy.stats; only compare and the reports need it at run time
    from ..analysis.compare import Comparison, RunInfo


# ---------------------------------------------------------------- compare

def run_info(con: duckdb.DuckDBPyConnection, run: Run) -> RunInfo:
    """What identifies one side of a comparison: the run, its snapshot and its algorithm's source."""
    from ..analysis.compare import RunInfo
    algo = algos.get(con, run.algorithm_id)
    return RunInfo(run_id=run.run_id, snapshot_id=run.snapshot_id, algorithm=algo.label, params=algo.params,
                   source=algo.source, snapshot_label=snaps.get(con, run.snapshot_id).label)


def compare_runs(con: duckdb.DuckDBPyConnection, baseline: Run, candidate: Run, *, top: int = 20,
                 segments: dict[str, str] | None = None, topic: str | None = None) -> Comparison:
    """Compare two runs on an open connection (the transparency report compares each release too);
    with `topic`, one topic of two topic runs."""
    from ..analysis.compare import compare_runs as compare_frames
    features = feats.segment_features(con, snaps.get(con, baseline.snapshot_id))
    c = compare_frames(runs_.run_scores(con, baseline.run_id, topic=topic),
                       runs_.run_scores(con, candidate.run_id, topic=topic),
                       features=features, baseline_info=run_info(con, baseline),
                       candidate_info=run_info(con, candidate), top=top, segments=segments)
    known = accts.handles(con, c.risers["account_id"].to_list() + c.fallers["account_id"].to_list())
    return dataclasses.replace(c, risers=accts.with_handles(c.risers, known), fallers=accts.with_handles(c.fallers, known))


def compare(store: Store, baseline: str, candidate: str, *, top: int = 20,
            segments: dict[str, str] | None = None, topic: str | None = None,
            now: datetime | None = None) -> Comparison:
    """Compare two runs: coverage, deltas, rank agreement, bands, segments (over the baseline's
    snapshot inputs), movers, and the parameter and source diff of their algorithms (of one topic
    of two topic runs, with `topic`). With `now`, the baseline snapshot's features are stored first
    when they are not yet (one transaction; later comparisons read them); without, nothing is
    written and features not stored are computed from the snapshot's interactions."""
    from .topics import check_topic
    with reading(store) as con:
        b, c = runs_.resolve(con, baseline), runs_.resolve(con, candidate)
        check_topic(con, b, topic), check_topic(con, c, topic)
        if now is None or feats.find(con, b.snapshot_id) is not None or not may_store(store, con):
            return compare_runs(con, b, c, top=top, segments=segments, topic=topic)
    with writing(store) as con:
        feats.ensure(con, snaps.get(con, b.snapshot_id), now)
    with reading(store) as con:
        return compare_runs(con, b, c, top=top, segments=segments, topic=topic)


# ---------------------------------------------------------------- explain

def _needed_counterfactuals(con: duckdb.DuckDBPyConnection, r1: Run, r2: Run) -> list[tuple[str, str]]:
    """(snapshot_id, algorithm_id) pairs the explanation needs that are not stored yet."""
    if r1.snapshot_id == r2.snapshot_id or r1.algorithm_id == r2.algorithm_id:
        return []
    pairs = [(r2.snapshot_id, r1.algorithm_id), (r1.snapshot_id, r2.algorithm_id)]
    return [p for p in pairs if runs_.find_for(con, *p) is None]


def _point(con: duckdb.DuckDBPyConnection, run: Run, snap: Snapshot, account: str,
           hit: dict | None = None, topic: str | None = None) -> RunPoint:
    hit = hit or runs_.place(con, run.run_id, account, topic) or {"raw": None, "score": None, "rank": None, "tied": 0}
    return RunPoint(run.run_id, run.snapshot_id, snap.label, run.algorithm, snap.as_of.isoformat(),
                    snap.window_seconds, runs_.accounts_in(con, run, topic), hit["score"], hit["raw"], hit["rank"], hit["tied"])


def _version(con: duckdb.DuckDBPyConnection, algorithm_id: str) -> Version:
    algo = algos.get(con, algorithm_id)
    return Version(algo.label, algos.verified_module(algo), algo.params, algo.components, algo.reasons)


def _ranks(con: duckdb.DuckDBPyConnection, old: Run, new: Run, account: str, known: dict[str, dict],
           topic: str | None = None) -> Ranks:
    """The account under two versions on one snapshot, and the score the new one gives its old rank
    (`known`: places already read, by run id)."""
    a, b = (known.get(r.run_id) or runs_.place(con, r.run_id, account, topic) for r in (old, new))
    return Ranks(runs_.accounts_in(con, old, topic), a["rank"], b["rank"], a["score"], b["score"],
                 runs_.score_at_rank(con, new.run_id, a["rank"], topic))


def _explain_runs(con: duckdb.DuckDBPyConnection, account: str, r1: Run, r2: Run,
                  topic: str | None = None) -> Explanation:
    """The explanation, with the handles of the account and its engagers where accounts files gave them."""
    e = _explain(con, account, r1, r2, topic)
    engagers = e.engagers["engager"].to_list()
    known = accts.handles(con, [account, *engagers])
    return dataclasses.replace(e, handle=known.get(account),
                               engagers=accts.with_handles(e.engagers, known, column="engager", name="engager_handle"))


def _explain(con: duckdb.DuckDBPyConnection, account: str, r1: Run, r2: Run,
             topic: str | None = None) -> Explanation:
    """The explanation of ACCOUNT's change from run r1 to run r2 (counterfactual runs must be stored);
    with `topic`, of its score in that topic of two topic runs (from that topic's interactions)."""
    snap1, snap2 = snaps.get(con, r1.snapshot_id), snaps.get(con, r2.snapshot_id)
    known = {r.run_id: runs_.place(con, r.run_id, account, topic) for r in (r1, r2)}
    p1, p2 = (_point(con, r, s, account, known[r.run_id], topic) for r, s in ((r1, snap1), (r2, snap2)))
    check_account(account, {r1.run_id: p1.score is not None, r2.run_id: p2.score is not None})
    if r1.run_id == r2.run_id:
        return explain_same(account, p1)
    # the account's inputs in both snapshots, and who engaged it in either (their scores are needed):
    # from the snapshots' stored features when both are stored, else from their interactions
    stored = {snap.snapshot_id: feats.find(con, snap.snapshot_id) for snap in (snap1, snap2)} if topic is None else {}
    given: dict[str, pl.DataFrame | None] = {snap1.snapshot_id: None, snap2.snapshot_id: None}
    if stored and all(stored.values()):
        inputs = {}
        received = feats.received_by(con, [snap1, snap2] if snap1.snapshot_id != snap2.snapshot_id else [snap1],
                                     account)
        for snap in (snap1, snap2):
            inputs[snap.snapshot_id], given[snap.snapshot_id] = feats.account_inputs(
                con, snap, stored[snap.snapshot_id], account, received[snap.snapshot_id])
    else:
        inputs = {snap.snapshot_id: snaps.account_inputs(con, snap, account, topic) for snap in (snap1, snap2)}
    if p1.score is None or p2.score is None:
        return explain_presence(account, p1, p2, inputs[snap1.snapshot_id], inputs[snap2.snapshot_id],
                                "the account has a score on one side only: there is no change to split")
    ids = sorted(set(pl.concat([f.filter(pl.col("target") == account)["source"] for f in inputs.values()])
                     .unique().to_list()) | {account})
    old, new = _version(con, r1.algorithm_id), _version(con, r2.algorithm_id)

    def side(run: Run, snap: Snapshot, version: Version) -> Side:
        norm = runs_.stored_normalisation(con, run.run_id, topic)
        if norm is None and hasattr(version.module, "normalisation"):     # a run stored without it
            norm = version.module.normalisation(runs_.run_scores(con, run.run_id, topic=topic), version.params)
        algo = algos.get(con, run.algorithm_id)
        return Side(runs_.rows(con, run.run_id, algo, ids, topic),
                    runs_.account_components(con, run.run_id, algo, account, topic), inputs[snap.snapshot_id], norm,
                    given[snap.snapshot_id])

    counterfactual_runs: tuple[str, ...] = ()
    if r1.snapshot_id == r2.snapshot_id:
        data, ranks = [], [(1.0, _ranks(con, r1, r2, account, known, topic))]
        method = ("same snapshot: the whole change is the algorithm, split into the new version's scale at the "
                  "account's old rank and its new rank")
    elif r1.algorithm_id == r2.algorithm_id:
        data, ranks = [(1.0, old, side(r1, snap1, old), side(r2, snap2, old))], []
        method = "same algorithm: the change is data, split into own activity and everyone else"
    else:
        c12 = runs_.find_for(con, r2.snapshot_id, r1.algorithm_id)     # old algorithm, new data
        c21 = runs_.find_for(con, r1.snapshot_id, r2.algorithm_id)     # new algorithm, old data
        if c12 is None or c21 is None:
            raise RuntimeError("the counterfactual runs must be stored before the explanation is gathered")
        data = [(0.5, old, side(r1, snap1, old), side(c12, snap2, old)),
                (0.5, new, side(c21, snap1, new), side(r2, snap2, new))]
        ranks = [(0.5, _ranks(con, r1, c21, account, known, topic)),
                 (0.5, _ranks(con, c12, r2, account, known, topic))]
        method = ("snapshot and algorithm both changed: two-factor Shapley value over the counterfactual runs "
                  f"{c12.run_id} ({old.label} on the new snapshot) and {c21.run_id} ({new.label} on the old one)")
        counterfactual_runs = (c12.run_id, c21.run_id)
    names = {a: f"{h} ({a})" for a, h in accts.handles(con, ids).items()}
    return explain_change(account, p1, p2, old=old, new=new, data=data, ranks=ranks,
                          counterfactual_runs=counterfactual_runs, method=method, names=names)


def run_or_period(con: duckdb.DuckDBPyConnection, ref: str, release: str | None = None) -> Run:
    """A run by id or prefix, or the run on display for a published period (the latest
    publication of that period, of `release` when given; with `release`, REF is a period)."""
    points = pubs.points(con)
    if release is None:
        try:
            return runs_.resolve(con, ref)
        except NotFound:
            if not points:              # nothing published: REF can only have meant a run
                raise
    shown = [p for p, _ in pubs.shown(points, latest=True, release=release) if p.period == ref]
    if not shown:
        of = f" of {release}" if release else ""
        what = "a published period" + of if release else "a run or a published period"
        raise NotFound(f'"{ref}" is not {what}; "audit runs" and "audit publications" list them')
    return runs_.get(con, shown[-1].run_id)


def explain(store: Store, account: str, *, from_run: str, to_run: str, now: datetime,
            step: Step = quiet, release: str | None = None, compute: bool = True,
            topic: str | None = None) -> Explanation:
    """Explain ACCOUNT's (id or @handle) score change from one run to another (or from one
    published period to another, of `release` when given); computes and stores missing
    counterfactual runs first (a second explanation of the same change computes none). An account
    scored on one side only is explained as joined or left. With `compute=False` nothing is
    written: missing counterfactual runs raise NotComputed."""
    with reading(store) as con:
        account = accts.resolve_one(con, account)
        r1, r2 = run_or_period(con, from_run, release), run_or_period(con, to_run, release)
        from .topics import check_topic
        for r in (r1, r2):
            check_topic(con, r, topic)
        present = {r.run_id: runs_.has(con, r.run_id, account, topic) for r in (r1, r2)}
        check_account(account, present)       # before any counterfactual is computed
        missing = _needed_counterfactuals(con, r1, r2) if all(present.values()) else []
        # the snapshots' derived features, which the explanation reads instead of the engagers' interactions
        # (not through a connection opened read-only: then they are read from the interactions as before)
        unfeatured = sorted({r.snapshot_id for r in (r1, r2)
                             if r1.run_id != r2.run_id and topic is None and feats.find(con, r.snapshot_id) is None})
        if not may_store(store, con):
            unfeatured = []
        if missing and not compute:
            runs_needed = ", ".join(f"{algos.get(con, a).label} on {s}" for s, a in missing)
            job = json.dumps({"op": "explain", "account": account, "from": r1.run_id, "to": r2.run_id})
            raise NotComputed(
                f"explaining {account} from {r1.run_id} to {r2.run_id} needs counterfactual runs that are not "
                f"stored yet ({runs_needed}); an explain job computes and stores them: {job}")
    if missing or (unfeatured and compute):
        with writing(store) as con:
            for snapshot_id, algorithm_id in missing:
                algo = algos.get(con, algorithm_id)
                step(f"counterfactual run: {algo.label} on {snapshot_id}")
                runs_.score_snapshot(con, snaps.get(con, snapshot_id), algo, now, counterfactual=True)
            for snapshot_id in unfeatured:
                step(f"features of {snapshot_id}")
                feats.ensure(con, snaps.get(con, snapshot_id), now)
    with reading(store) as con:
        step(f"explaining {account}")
        return _explain_runs(con, account, r1, r2, topic)


# ---------------------------------------------------------------- verify

def verify(store: Store, *, rerun: bool = False, step: Step = quiet) -> Verification:
    """Walk the log and recompute every record's content hash; with rerun, re-execute every run."""
    with reading(store) as con:
        return verify_store(con, rerun_runs=rerun, step=step)
