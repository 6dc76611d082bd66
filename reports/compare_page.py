"""Page context of the comparison report; the transparency report embeds the same view.

Invariant: everything shown is computed here, in a fixed order, from the Comparison it is given
(no clock, no randomness, no I/O); templates only lay it out and format values through the
registered filters. Texts are tuples of (value, filter kind) pieces (see `svg.say`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import svg
from .svg import Chart, counted, say
from .widgets import DiffLine, Measure, ParamDiff, Stat, diff_lines

if TYPE_CHECKING:
    from audit.analysis.compare import Comparison, Coverage, DeltaStats

SCOPE_LABELS = {"all": "All accounts in both runs", "top_10pct": "Top 10% of the baseline ranking",
                "top_1pct": "Top 1% of the baseline ranking"}


@dataclass(frozen=True)
class Side:
    run_id: str
    snapshot_id: str
    algorithm: str
    snapshot_label: str | None


@dataclass(frozen=True)
class AgreementRow:
    scope: str
    accounts: int
    spearman: float
    kendall_tau_b: float


@dataclass(frozen=True)
class SegmentRow:
    band: str
    accounts: int
    mean_delta: float
    median_delta: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class SegmentGroup:
    segment: str
    feature: str
    rows: tuple[SegmentRow, ...]
    chart: Chart


@dataclass(frozen=True)
class Payer:
    """The band of a segment whose scores fell most on average."""
    segment: str
    band: str
    accounts: int
    mean_delta: float


@dataclass(frozen=True)
class MoverRow:
    account_id: str
    baseline_score: float
    candidate_score: float
    delta: float
    baseline_rank: int
    candidate_rank: int
    handle: str | None = None


@dataclass(frozen=True)
class ComparisonView:
    baseline: Side
    candidate: Side
    coverage: Coverage
    deltas: DeltaStats
    movement: Chart
    agreement: tuple[AgreementRow, ...]
    overlap: tuple[Measure, ...]
    heatmap: Chart
    band_moves: tuple[Measure, ...]
    segments: tuple[SegmentGroup, ...]
    payers: tuple[Payer, ...]
    risers: tuple[MoverRow, ...]
    fallers: tuple[MoverRow, ...]
    param_changes: tuple[ParamDiff, ...]
    source_diff: tuple[DiffLine, ...]
    any_difference: bool


@dataclass(frozen=True)
class ComparePage:
    title: str
    summary: tuple[Stat, ...]
    comparison: ComparisonView


def _movers(frame, n: int) -> tuple[MoverRow, ...]:
    columns = ["account_id", "baseline_score", "candidate_score", "delta", "baseline_rank", "candidate_rank"]
    return tuple(MoverRow(*r) for r in frame.head(n).select(
        *columns, *(["handle"] if "handle" in frame.columns else [])).iter_rows())


def _segments(frame) -> tuple[tuple[SegmentGroup, ...], tuple[Payer, ...]]:
    groups, payers = [], []
    names = list(dict.fromkeys(frame["segment"].to_list()))      # the comparison's own order
    for name in names:
        part = frame.filter(frame["segment"] == name)
        rows = tuple(SegmentRow(r["band"], r["accounts"], r["mean_delta"], r["median_delta"], r["low"], r["high"])
                     for r in part.iter_rows(named=True))
        chart = svg.hbars([(say(r.band, " (", *counted(r.accounts, "account"), ")"), r.mean_delta) for r in rows],
                          title=f"Mean score change by {name} band", kind="points",
                          x_title="mean score change, points")
        groups.append(SegmentGroup(name, part["feature"][0], rows, chart))
        worst = min(rows, key=lambda r: r.mean_delta)
        payers.append(Payer(name, worst.band, worst.accounts, worst.mean_delta))
    return tuple(groups), tuple(payers)


def comparison_view(c: Comparison, movers: int = 20) -> ComparisonView:
    """Everything a Comparison holds, as rows and charts."""
    d = c.deltas
    moves = [("fell by more than 10 points", d.down_10, "neg"), ("fell by 5 to 10 points", d.down_5 - d.down_10, "neg"),
             ("changed by 5 points or less", 1.0 - d.up_5 - d.down_5, "bar"),
             ("rose by 5 to 10 points", d.up_5 - d.up_10, "pos"), ("rose by more than 10 points", d.up_10, "pos")]
    movement = svg.hbars([(say(t), max(v, 0.0)) for t, v, _ in moves], title="How scores moved",
                         kind="pct", tones=[t for _, _, t in moves])
    total = sum(sum(r) for r in c.bands) or 1
    stayed = sum(c.bands[i][i] for i in range(len(c.bands)))
    up = sum(v for i, r in enumerate(c.bands) for j, v in enumerate(r) if j > i)
    band_moves = (Measure(say("Stayed in the same band"), stayed / total, "pct"),
                  Measure(say("Moved up one band or more"), up / total, "pct"),
                  Measure(say("Moved down one band or more"), (total - stayed - up) / total, "pct"))
    heat = svg.heatmap(c.band_labels, c.band_labels, c.bands, title="Band migration: accounts per pair of bands",
                       row_title=f"{c.baseline.algorithm} band", col_title=f"{c.candidate.algorithm} band")
    overlap = (*(Measure(say("Rank-biased overlap, p = ", (p, "tick")), v, "corr") for p, v in sorted(c.rbo.items())),
               *(Measure(say("Top ", (k, "count"), " overlap",
                             *((" (of ", *counted(c.top_k_accounts[k], "account"), ")") if c.top_k_accounts[k] < k else ())),
                         v, "pct") for k, v in sorted(c.top_k_overlap.items())))
    segments, payers = _segments(c.segments)
    return ComparisonView(
        baseline=Side(c.baseline.run_id, c.baseline.snapshot_id, c.baseline.algorithm, c.baseline.snapshot_label),
        candidate=Side(c.candidate.run_id, c.candidate.snapshot_id, c.candidate.algorithm,
                       c.candidate.snapshot_label),
        coverage=c.coverage, deltas=d, movement=movement,
        agreement=tuple(AgreementRow(SCOPE_LABELS.get(a.scope, a.scope), a.accounts, a.spearman, a.kendall_tau_b)
                        for a in c.agreement),
        overlap=overlap, heatmap=heat, band_moves=band_moves, segments=segments, payers=payers,
        risers=_movers(c.risers, movers), fallers=_movers(c.fallers, movers),
        param_changes=tuple(ParamDiff(p.path, p.kind, p.baseline, p.candidate) for p in c.param_changes),
        source_diff=diff_lines(c.source_diff), any_difference=c.any_difference)


def compare_page(c: Comparison) -> ComparePage:
    """The comparison report's context."""
    view = comparison_view(c)
    top100 = c.top_k_overlap.get(100)
    summary = (
        Stat("Accounts in both runs", say((c.coverage.both, "count")),
             say((c.coverage.only_baseline, "count"), " only in baseline, ",
                 (c.coverage.only_candidate, "count"), " only in candidate")),
        Stat("Spearman rank correlation", say((c.spearman, "corr")), say("Kendall tau-b ", (c.kendall_tau_b, "corr"))),
        Stat("Mean score change", say((c.deltas.mean, "points")), say("median ", (c.deltas.median, "points"))),
        Stat("Fell by more than 5 points", say((c.deltas.down_5, "pct")), say("rose by more than 5: ",
                                                                             (c.deltas.up_5, "pct"))),
        *((Stat("Top 100 overlap", say((top100, "pct"))),) if top100 is not None else ()),
        *(Stat(f"Hardest hit by {p.segment}", say((p.mean_delta, "points")),
               say(p.band, ", ", *counted(p.accounts, "account"))) for p in view.payers[:2]),
    )
    return ComparePage(f"Comparison: {c.baseline.algorithm} to {c.candidate.algorithm}", summary, view)
