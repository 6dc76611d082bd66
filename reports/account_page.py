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

from audit.analysis.explain import window_text

from . import svg
from .gaming_view import Measure, measures
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
    algorithm: str
    component: str
    label: str
    unit: str
    before: float
    after: float
    own_activity: float
    population: float


@dataclass(frozen=True)
class EngagerRow:
    engager: str
    kind: str
    before: int                         # interactions with the account in the earlier run's window
    after: int
    rating: float | None                # the rating value (added up), for ratings
    points: float | None
    change: str                         # started, stopped, more, fewer, same
    handle: str | None = None


@dataclass(frozen=True)
class SideView:
    point: RunPoint
    window: str                         # e.g. "7 days to 2012-07-07 00:00:00 UTC"


@dataclass(frozen=True)
class ExplanationView:
    status: str                         # changed, joined, left, same
    baseline: SideView
    candidate: SideView
    total: float | None
    parts: tuple[PartRow, ...]
    chart: Chart | None
    reasons: tuple[Reason, ...]         # ranked by points
    notes: tuple[str, ...]
    components: tuple[ComponentRow, ...]
    engagers: tuple[EngagerRow, ...]
    engagers_total: int
    started: int
    stopped: int
    ranked_by_points: bool
    method: str
    counterfactual_runs: tuple[str, ...]


@dataclass(frozen=True)
class GamingRow:
    """The account flagged by one stored gaming audit of one of its published runs."""
    period: str
    gaming_id: str
    detector: str
    run_id: str
    algorithm: str
    counterfactual_run_id: str
    pattern: str
    group: int
    role: str
    score: float
    score_without: float
    points: float
    received: float
    from_group: float
    share: float
    others: tuple[str, ...]             # the other members or targets of its group
    puppets: int
    measures: tuple[Measure, ...]       # the group's evidence


@dataclass(frozen=True)
class TopicRow:
    topic: str
    score: float
    rank: int
    accounts: int


@dataclass(frozen=True)
class InfluenceRow:
    account_id: str
    handle: str
    score: float | None
    interactions: int
    points: float


@dataclass(frozen=True)
class EngagerAlert:
    account_id: str
    handle: str
    score: float
    rank: int
    interactions: int
    last: str
    new: bool


@dataclass(frozen=True)
class InfluenceView:
    """Top topics, influencers and influencees, and the latest high-score engagers."""
    topics_run: str
    topics_of: int                      # topics the account has a score in
    topics: tuple[TopicRow, ...]
    run_id: str
    algorithm: str
    influencers: tuple[InfluenceRow, ...]
    influencees: tuple[InfluenceRow, ...]
    alert_score: float
    engagers: int
    alerts: tuple[EngagerAlert, ...]


def influence_view(st: AccountStatement) -> InfluenceView | None:
    """The statement's topics, influence and engager alerts (None when the store had none to give)."""
    if st.topics is None and st.influence is None and st.engagers is None:
        return None

    def rows(df) -> tuple[InfluenceRow, ...]:
        return tuple(InfluenceRow(r["account_id"], r["handle"] or "", r["score"], r["interactions"], r["points"])
                     for r in df.iter_rows(named=True))
    t, i, e = st.topics, st.influence, st.engagers
    alerts = () if e is None else tuple(
        EngagerAlert(r["engager"], r["handle"] or "", r["score"], r["rank"], r["interactions"],
                     r["last"].strftime("%Y-%m-%d %H:%M"), bool(r["new"]))
        for r in e.alerts.sort(["last", "engager"], descending=[True, False]).head(10).iter_rows(named=True))
    shown = i or e
    return InfluenceView(
        "" if t is None else t.run_id, 0 if t is None else t.topics,
        () if t is None else tuple(TopicRow(*r) for r in t.rows.select("topic", "score", "rank", "accounts").iter_rows()),
        "" if shown is None else shown.run_id, "" if shown is None else shown.algorithm,
        () if i is None else rows(i.influencers), () if i is None else rows(i.influencees),
        0.0 if e is None else float(e.min_score), 0 if e is None else e.rows.height, alerts)


@dataclass(frozen=True)
class AccountPage:
    title: str
    account_id: str
    summary: tuple[Stat, ...]
    chart: Chart
    history: tuple[HistoryRow, ...]
    explanation: ExplanationView | None
    note: str
    gaming: tuple[GamingRow, ...] = ()
    handle: str | None = None
    influence: InfluenceView | None = None


def _points(frame: pl.DataFrame) -> dict[str, Point]:
    return {r["period"]: Point(r["score"], r["rank"], r["algorithm"], r["run_id"], r["publication_id"],
                               r["published_at"], r["algorithm_changed"]) for r in frame.iter_rows(named=True)}


def _side(p: RunPoint) -> SideView:
    return SideView(p, f"{window_text(p.window_seconds)} to {p.as_of.replace('T', ' ').replace('+00:00', ' UTC')}")


def explanation_view(e: Explanation, engagers: int = 20) -> ExplanationView:
    """The explanation as parts, a waterfall, ranked reasons, notes, components and the top engagers."""
    keys = [k for k in [*PART_LABELS, *sorted(set(e.parts) - set(PART_LABELS))] if k in e.parts]
    parts = tuple(PartRow(k, PART_LABELS.get(k, k), e.parts[k]) for k in keys)
    chart = None
    if e.status == "changed":
        chart = svg.waterfall((say("Before"), e.baseline.score), [(say(p.label), p.points) for p in parts],
                              (say("After"), e.candidate.score),
                              title="From the score before to the score after, part by part")
    components = tuple(ComponentRow(c.algorithm, c.component, c.label, c.unit, c.before, c.after, c.own_activity,
                                    c.population)
                       for c in sorted(e.components, key=lambda c: (-abs(c.own_activity + c.population), c.algorithm,
                                                                     c.component))
                       if c.before != 0 or c.after != 0 or c.own_activity != 0 or c.population != 0)
    frame = e.engagers
    rows, started, stopped = [], 0, 0
    if frame.height:
        per = frame.group_by("engager").agg(pl.col("n1", "n2").sum())
        started = per.filter((per["n1"] == 0) & (per["n2"] > 0)).height
        stopped = per.filter((per["n2"] == 0) & (per["n1"] > 0)).height
        for r in frame.head(engagers).iter_rows(named=True):
            rating = (r["value2"] if r["n2"] else r["value1"]) if r["kind"] in ("rating", "distrust") else None
            rows.append(EngagerRow(str(r["engager"]), r["kind"], r["n1"], r["n2"], rating, r["points"], r["change"],
                                   r.get("engager_handle")))
    return ExplanationView(e.status, _side(e.baseline), _side(e.candidate), e.total, parts, chart, tuple(e.reasons),
                           tuple(e.notes), components, tuple(rows), e.engagers_total, started, stopped,
                           bool(frame.height) and frame["points"].null_count() < frame.height, e.method,
                           tuple(e.counterfactual_runs))


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
    if e is not None and e.status == "changed":
        summary.append(Stat("Latest change", say((e.total, "points")),
                            say((e.baseline.point.score, "score"), " to ", (e.candidate.point.score, "score"))))
        summary += [Stat(p.label, say((p.points, "points"))) for p in e.parts]
    gaming = []
    for hit in st.gaming:
        a, f = hit.audit, hit.finding
        group = next(g for g in a.groups if g.group == f["group"])
        gaming.append(GamingRow(hit.period, a.gaming_id, a.detector, a.run_id, a.algorithm, a.counterfactual_run_id or "",
                                f["pattern"], f["group"], f["role"], f["score"], f["score_without"],
                                f["points_from_group"], f["received"], f["from_group"], f["share_from_group"],
                                tuple(x for x, r in group.members if r != "puppet" and x != st.account_id),
                                sum(1 for _, r in group.members if r == "puppet"), measures(group.evidence)))
    if gaming:
        latest = gaming[-1]
        summary.append(Stat("Points from a " + ("ring" if latest.pattern == "ring" else "puppet group"),
                            say((latest.points, "points")), say(latest.period, ", ", latest.algorithm)))
    handles = st.published["handle"].drop_nulls() if "handle" in st.published.columns else []
    handle = handles[0] if len(handles) else None
    who = f"{handle} ({st.account_id})" if handle else st.account_id
    return AccountPage(f"Score statement: account {who}", st.account_id, tuple(summary), chart,
                       tuple(history), e, st.note, tuple(gaming), handle, influence_view(st))
