"""The main job on the bundled Higgs data, end to end: ingest, daily snapshots, both shipped
versions, publications and a restating release, a comparison, an explanation, a gaming audit of the
release's latest run, reports.

Every step reuses what the store already holds, so running it twice computes nothing new.
The clock is passed in (the CLI's), never read here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Callable

import polars as pl

from ..analysis.explain import Explanation
from ..analysis.gaming import GamingAudit
from ..progress import Step, quiet
from .analyses import explain
from .gaming import gaming
from .inputs import ingest, snapshot
from .publishing import publish
from .runs import score, scores

DAYS = [date(2012, 7, 1) + timedelta(days=i) for i in range(7)]
BASELINE, CANDIDATE = "activity@1", "network@3"


def bundled_data() -> Path:
    """The bundled Higgs activity file: next to the package in a checkout."""
    here = Path(__file__).resolve().parents[2] / "data" / "higgs-activity_time.txt.gz"
    if here.is_file():
        return here
    return Path(str(resources.files("audit"))).parent / "data" / "higgs-activity_time.txt.gz"


@dataclass
class DemoResult:
    """What the demo did and where its reports are."""
    store: str
    batch_id: str
    snapshots: list[str] = field(default_factory=list)
    runs: dict[str, list[str]] = field(default_factory=dict)
    publications: int = 0
    restatements: int = 0
    account: str = ""
    drop: tuple[float, float] = (0.0, 0.0)
    explanation: Explanation | None = None
    gaming: GamingAudit | None = None
    reports: dict[str, str] = field(default_factory=dict)


def biggest_drop(store: str | Path, baseline_run: str, candidate_run: str) -> tuple[str, float, float]:
    """The account whose score fell most from one run to the other (ties: smallest id)."""
    b = scores(store, baseline_run).select("account_id", pl.col("score").alias("before"))
    c = scores(store, candidate_run).select("account_id", pl.col("score").alias("after"))
    row = (b.join(c, on="account_id").with_columns((pl.col("after") - pl.col("before")).alias("d"))
           .sort(["d", "account_id"]).row(0, named=True))
    return row["account_id"], row["before"], row["after"]


def run_demo(store: str | Path, clock: Callable[[], datetime], step: Step = quiet) -> DemoResult:
    """Run the whole job; returns ids, headline figures and report paths."""
    batch = ingest(store, bundled_data(), now=clock(), step=step)
    result = DemoResult(store=str(store), batch_id=batch.batch_id)
    for day in DAYS:
        step(f"snapshot {day}")
        snap = snapshot(store, as_of=day.isoformat(), window="7d", label=day.isoformat(), now=clock())
        result.snapshots.append(snap.snapshot_id)
    for algorithm in (BASELINE, CANDIDATE):
        result.runs[algorithm] = []
        for day, snapshot_id in zip(DAYS, result.snapshots):
            step(f"scoring {day} with {algorithm}")
            result.runs[algorithm].append(score(store, snapshot_id, algorithm, now=clock()).run_id)
    for algorithm in (BASELINE, CANDIDATE):          # the release: network@3 restates every day
        for day, run_id in zip(DAYS, result.runs[algorithm]):
            step(f"publishing {algorithm} for {day}")
            pub = publish(store, run_id, period=day.isoformat(), now=clock())
            result.publications += 1
            result.restatements += pub.restates is not None
    before_run, after_run = result.runs[BASELINE][-2], result.runs[CANDIDATE][-1]
    step("finding the biggest drop")
    account, before, after = biggest_drop(store, before_run, after_run)
    result.account, result.drop = account, (before, after)
    result.explanation = explain(store, account, from_run=before_run, to_run=after_run, now=clock(), step=step)
    step(f"gaming audit of {after_run} (the release's latest run)")
    result.gaming = gaming(store, after_run, now=clock(), step=step)
    return result
