"""Page context of the account statement: the score history as published and as restated, and
the latest change explained.

Invariant: everything a page shows is computed here, in a fixed order, from the result it is
given (no clock, no randomness, no I/O); templates only lay it out and format values through
the registered filters. Texts are tuples of (value, filter kind) pieces (see `svg.say`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from . import svg
from .svg import Chart, say
from .widgets import Stat

if TYPE_CHECKING:
    from audit.analysis.explain import Explanation, Reason, RunPoint
    from audit.api.reports import AccountStatement

PART_LABELS = {"own_activity": "Own activity", "population": "Everyone else", "algorithm": "Algorithm"}


@dataclass(frozen=True)
class Point:
    score: float
    rank: int
    algorithm: str
    run_id: str
    publication_id: str
    published_at: datetime
    algorithm_changed: bool             # first point of its view under another algorithm version


@dataclass(frozen=True)
class HistoryRow:
    period: str
    published: Point | None             # as first published
    restated: Point | None              # as it stands now
    was_restated: bool
    difference: float | None            # restated - published


@dataclass(frozen=True)
class PartRow:
    key: str
    label: str
    points: float


@dataclass(frozen=True)
class ComponentRow:
    part: str
    algorithm: str
    component: str
    label: str
    before: float
    after: float
    points: float


@dataclass(frozen=True)
class EngagerRow:
    engager: str
    kind: str
    algorithm: str
    before: int                         # interactions with the account in the earlier run's window
    after: int
    points: float | None
    change: str                         # started, stopped, more, fewer, same


@dataclass(frozen=True)
class ExplanationView:
    baseline: RunPoint
    candidate: RunPoint
    total: float
    parts: tuple[PartRow, ...]
    chart: Chart
    reasons: tuple[Reason, ...]         # ranked by points
    components: tuple[ComponentRow, ...]
    engagers: tuple[EngagerRow, ...]
    engagers_total: int
    started: int
    stopped: int
    method: str
    counterfactual_runs: tuple[str, ...]


@dataclass(frozen=True)
class AccountPage:
    title: str
    account_id: str
    summary: tuple[Stat, ...]
    chart: Chart
    history: tuple[HistoryRow, ...]
    explanation: ExplanationView | None
    note: str


def _points(frame: pl.DataFrame) -> dict[str, Point]:
    return {r["period"]: Point(r["score"], r["rank"], r["algorithm"], r["run_id"], r["publication_id"],
                               r["published_at"], r["algorithm_changed"]) for r in frame.iter_rows(named=True)}


def explanation_view(e: Explanation, engagers: int = 20) -> ExplanationView:
    """The explanation as parts, a waterfall, ranked reasons, components and the top engagers."""
    keys = [k for k in [*PART_LABELS, *sorted(set(e.parts) - set(PART_LABELS))] if k in e.parts]
    parts = tuple(PartRow(k, PART_LABELS.get(k, k), e.parts[k]) for k in keys)
    chart = svg.waterfall((say("Before"), e.baseline.score), [(say(p.label), p.points) for p in parts],
                          (say("After"), e.candidate.score), title="From the score before to the score after, part by part")
    components = tuple(ComponentRow(PART_LABELS.get(c.part, c.part), c.algorithm, c.component, c.label, c.before,
                                    c.after, c.points)
                       for c in sorted(e.components, key=lambda c: (-abs(c.points), c.part, c.algorithm, c.component)))
    frame = e.engagers
    rows, started, stopped = [], 0, 0
    if frame.height:
        per = frame.unique(["engager", "kind"]).group_by("engager").agg(pl.col("n1", "n2").sum())
        started = per.filter((per["n1"] == 0) & (per["n2"] > 0)).height
        stopped = per.filter((per["n2"] == 0) & (per["n1"] > 0)).height
        order = frame.with_columns(pl.col("points").abs().fill_null(0.0).alias("_o"), pl.col("engager").cast(pl.String))
        cols = ["_o", "n2", "engager", "kind", *(["algorithm"] if "algorithm" in frame.columns else [])]
        top = order.sort(cols, descending=[True, True, False, False, False][:len(cols)], nulls_last=True)
        for r in top.head(engagers).iter_rows(named=True):
            n1, n2 = r["n1"], r["n2"]
            change = ("started" if n1 == 0 else "stopped" if n2 == 0 else
                      "more" if n2 > n1 else "fewer" if n2 < n1 else "same")
            rows.append(EngagerRow(str(r["engager"]), r["kind"], r.get("algorithm", ""), n1, n2, r.get("points"), change))
    return ExplanationView(e.baseline, e.candidate, e.total, parts, chart, tuple(e.reasons), components,
                           tuple(rows), frame.height, started, stopped, e.method, tuple(e.counterfactual_runs))


def account_page(st: AccountStatement) -> AccountPage:
    """The account statement's context: both histories side by side, then the latest change."""
    pub, res = _points(st.published), _points(st.restated)
    periods = list(dict.fromkeys([*st.published["period"].to_list(), *st.restated["period"].to_list()]))
    history = []
    for p in periods:
        a, b = pub.get(p), res.get(p)
        history.append(HistoryRow(p, a, b, bool(a and b and a.publication_id != b.publication_id),
                                  b.score - a.score if a and b else None))
    markers: dict[int, list[str]] = {}
    for frame in (st.published, st.restated):
        for r in frame.filter(pl.col("algorithm_changed")).iter_rows(named=True):
            names = markers.setdefault(periods.index(r["period"]), [])
            if r["algorithm"] not in names:
                names.append(r["algorithm"])

    def name(view: str, frame) -> str:
        algos = list(dict.fromkeys(frame["algorithm"].to_list()))
        return f"{view} ({', '.join(algos)})" if algos else view
    chart = svg.line_chart(
        periods, [(name("as published", st.published), "published", [pub[p].score if p in pub else None for p in periods]),
                  (name("as restated", st.restated), "restated", [res[p].score if p in res else None for p in periods])],
        title=f"Score history of account {st.account_id}, as published and as restated",
        markers=[(i, say("to ", ", ".join(n))) for i, n in sorted(markers.items())],
        links=[(i, h.published.score, h.restated.score) for i, h in enumerate(history)
               if h.was_restated and h.published and h.restated])
    e = explanation_view(st.explanation) if st.explanation is not None else None
    summary = []
    if history:
        last = history[-1]
        if last.published:
            summary.append(Stat("Score as first published", say((last.published.score, "score")),
                                say(last.period, ", ", last.published.algorithm)))
        if last.restated:
            summary.append(Stat("Score as it stands now", say((last.restated.score, "score")),
                                say(last.period, ", ", last.restated.algorithm)))
    summary.append(Stat("Periods restated", say((sum(h.was_restated for h in history), "count")),
                        say("of ", (len(history), "count"), " periods; originals kept")))
    if e is not None:
        summary.append(Stat("Latest change", say((e.total, "points")),
                            say((e.baseline.score, "score"), " to ", (e.candidate.score, "score"))))
        summary += [Stat(p.label, say((p.points, "points"))) for p in e.parts]
    return AccountPage(f"Score statement: account {st.account_id}", st.account_id, tuple(summary), chart,
                       tuple(history), e, st.note)
