"""Page contexts of the transparency report and the account statement (the comparison report's
is in `comparison`), one frozen dataclass per page, built from audit's result types.

Invariant: everything a page shows is computed here, in a fixed order, from the result it is
given (no clock, no randomness, no I/O); templates only lay it out and format values through
the registered filters. Texts are tuples of (value, filter kind) pieces (see `svg.say`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from . import svg
from .comparison import ComparisonView, DiffLine, ParamDiff, Stat, comparison_view, diff_lines, param_diff
from .svg import Chart, say

if TYPE_CHECKING:
    from audit.explain import Explanation, Reason, RunPoint
    from audit.reporting import AccountStatement, BatchQuality, Bin, Release, Restatement, TransparencyData

PART_LABELS = {"own_activity": "Own activity", "population": "Everyone else", "algorithm": "Algorithm"}


# ---------------------------------------------------------------- transparency

@dataclass(frozen=True)
class ShareRow:
    label: str
    component: str
    share: float


@dataclass(frozen=True)
class ParamRow:
    path: str
    value: Any


@dataclass(frozen=True)
class ReleaseView:
    label: str
    algorithm_id: str
    newest: bool                             # no later published version supersedes it
    superseded_by: str | None                # the later version in the report that names it as previous
    description: str
    changelog: str
    previous: str | None
    first_published: datetime
    periods: tuple[str, ...]
    run_id: str
    snapshot_id: str
    snapshot_label: str | None
    accounts: int
    shares: tuple[ShareRow, ...]
    shares_chart: Chart
    unused: tuple[str, ...]                  # components with no input in this data (0% share)
    params: tuple[ParamRow, ...]
    param_changes: tuple[ParamDiff, ...]
    source_sha256: str
    source: tuple[DiffLine, ...]             # the full source of a first version
    source_diff: tuple[DiffLine, ...]        # against the previous version
    histogram: Chart
    bins: tuple[tuple[Bin, ...], ...]       # the bins in table rows of ten
    comparison: ComparisonView | None
    restatements: tuple[Restatement, ...]


@dataclass(frozen=True)
class Example:
    line: int | None
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ExpectationRow:
    describe: str
    expectation: str
    column: str
    success: bool
    unexpected: int
    examples: tuple[Example, ...]


@dataclass(frozen=True)
class WarningRow:
    code: str
    count: int
    text: str
    lines: tuple[int, ...]


@dataclass(frozen=True)
class BatchView:
    batch_id: str
    source_name: str
    format: str
    rows: int
    accounts: int
    ingested_at: datetime
    validator: str
    expectations: tuple[ExpectationRow, ...]
    passed: int
    warnings: tuple[WarningRow, ...]
    duplicates_of_stored: int


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str
    record_id: str
    problem: str


@dataclass(frozen=True)
class VerificationView:
    ok: bool
    entries: int
    head: str
    reran: int
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class TransparencyPage:
    title: str
    summary: tuple[Stat, ...]
    releases: tuple[ReleaseView, ...]        # newest first
    batches: tuple[BatchView, ...]
    verification: VerificationView


def _flat(params: dict, prefix: str = "") -> list[ParamRow]:
    out: list[ParamRow] = []
    for key in sorted(params, key=str):
        value = params[key]
        out.extend(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value
                   else [ParamRow(f"{prefix}{key}", value)])
    return out


def release_view(r: Release, newest: bool, superseded_by: str | None) -> ReleaseView:
    """One published version: its weights, parameters, source, distribution, comparison, restatements."""
    a, prev = r.algorithm, r.previous
    order = {name: i for i, (name, _) in enumerate(a.components)}
    shares = tuple(ShareRow(s.label, s.component, s.share)
                   for s in sorted(r.shares, key=lambda s: (-s.share, order.get(s.component, 0))))
    drawn = [(say(s.label, " (", s.component, ")"), s.share) for s in shares if s.share > 0]
    chart = svg.hbars(drawn, title=f"Share of all score mass per component, {a.label}", kind="pct",
                      tones=["bar"] * len(drawn))
    if r.comparison is not None:
        changes = tuple(ParamDiff(p.path, p.kind, p.baseline, p.candidate) for p in r.comparison.param_changes)
        source_diff = diff_lines(r.comparison.source_diff)
    elif prev is not None:
        changes = param_diff(prev.params, a.params)
        source_diff = diff_lines("\n".join(difflib.unified_diff(prev.source.splitlines(), a.source.splitlines(),
                                                                prev.label, a.label, lineterm="")))
    else:
        changes, source_diff = (), ()
    bins = tuple(r.histogram)
    hist = svg.histogram([(b.low, b.high, b.accounts) for b in bins],
                         title=f"Score distribution of {a.label}, period {r.periods[-1] if r.periods else ''}")
    return ReleaseView(
        label=a.label, algorithm_id=a.algorithm_id, newest=newest, superseded_by=superseded_by,
        description=a.description,
        changelog=a.changelog, previous=prev.label if prev else None, first_published=r.first_published,
        periods=tuple(r.periods), run_id=r.run.run_id, snapshot_id=r.run.snapshot_id,
        snapshot_label=r.snapshot_label, accounts=r.run.accounts, shares=shares, shares_chart=chart,
        unused=tuple(s.label for s in shares if s.share == 0),
        params=tuple(_flat(a.params)), param_changes=changes, source_sha256=a.source_sha256,
        source=() if prev else tuple(DiffLine(line, "same") for line in a.source.splitlines()),
        source_diff=source_diff, histogram=hist, bins=tuple(bins[i:i + 10] for i in range(0, len(bins), 10)),
        comparison=comparison_view(r.comparison, movers=10) if r.comparison is not None else None,
        restatements=tuple(sorted(r.restatements, key=lambda s: (s.period, s.published_at, s.publication))))


def batch_view(b: BatchQuality) -> BatchView:
    """A batch and the checks it passed, from its stored validation result."""
    v = b.validation
    expectations = tuple(
        ExpectationRow(e.get("describe", ""), e.get("expectation", ""), e.get("column", ""), bool(e.get("success")),
                       int(e.get("unexpected", 0)),
                       tuple(Example(x.get("line"), tuple(sorted((k, val) for k, val in x.items() if k != "line")))
                             for x in e.get("examples", [])))
        for e in v.get("expectations", []))
    warnings = tuple(WarningRow(w.get("code", ""), int(w.get("count", 0)), w.get("text", ""),
                                tuple(w.get("example_lines", []))) for w in v.get("warnings", []))
    return BatchView(b.batch_id, b.source_name, b.format, b.rows, b.accounts, b.ingested_at, v.get("validator", ""),
                     expectations, sum(e.success for e in expectations), warnings,
                     int(v.get("duplicates_of_stored", 0)))


def transparency_page(data: TransparencyData) -> TransparencyPage:
    """The transparency report's context: newest release first."""
    n = len(data.releases)
    releases = tuple(release_view(r, r.superseded_by is None, r.superseded_by) for r in reversed(data.releases))
    batches = tuple(batch_view(b) for b in sorted(data.batches, key=lambda b: b.batch_id))
    v = data.verification
    problems = tuple(Problem(p.get("seq"), str(p.get("kind", "")), str(p.get("record_id", "")), str(p.get("problem", "")))
                     for p in v.problems)
    verification = VerificationView(v.ok, v.entries, v.head, v.reran, problems, tuple(v.notes))
    periods = sorted({p for r in data.releases for p in r.periods})
    expectations = sum(len(b.expectations) for b in batches)
    summary = [Stat("Published versions", say((n, "count")),
                    say("newest: ", releases[0].label) if releases else ()),
               Stat("Periods published", say((len(periods), "count")),
                    say(periods[0], " to ", periods[-1]) if periods else ()),
               Stat("Restatements", say((sum(len(r.restatements) for r in releases), "count")),
                    say("originals kept beside them"))]
    if releases:
        cur = releases[0]
        summary.append(Stat("Accounts scored", say((cur.accounts, "count")),
                            say("period ", cur.periods[-1] if cur.periods else "")))
        if cur.comparison is not None:
            summary.append(Stat("Rank agreement with " + (cur.previous or "previous"),
                                say((cur.comparison.agreement[0].spearman, "corr")), say("Spearman, all accounts")))
    summary.append(Stat("Data checks passed", say((sum(b.passed for b in batches), "count"), " of ",
                                                  (expectations, "count")),
                        say("input batches: ", (len(batches), "count"), ", warnings: ",
                            (sum(len(b.warnings) for b in batches), "count"))))
    summary.append(Stat("Verification", say("OK" if v.ok else "PROBLEMS FOUND"),
                        say((v.entries, "count"), " log entries, ", (v.reran, "count"), " runs re-executed")))
    title = "Transparency report" + (f": {releases[0].label}" if releases else "")
    return TransparencyPage(title, tuple(summary), releases, batches, verification)


# ---------------------------------------------------------------- account statement

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
