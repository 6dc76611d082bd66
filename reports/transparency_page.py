"""Page context of the transparency report: per published version its weights, parameters,
source, distribution, comparison and restatements; the data quality of its batches; the
verification of the log.

Invariant: everything a page shows is computed here, in a fixed order, from the result it is
given (no clock, no randomness, no I/O); templates only lay it out and format values through
the registered filters. Texts are tuples of (value, filter kind) pieces (see `svg.say`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import svg
from .compare_page import ComparisonView, comparison_view
from .gaming_view import GamingView, gaming_view
from .svg import Chart, say
from .widgets import DiffLine, ParamDiff, Stat, diff_lines

if TYPE_CHECKING:
    from audit.api.reports import BatchQuality, Bin, Release, Restatement, Share, TransparencyData


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
    shares: tuple[Share, ...]
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
    gaming: GamingView | None                # the stored gaming audit of the run shown (none: not audited)


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
    topics: tuple[Any, ...] = ()             # TopicScoring of each topic version (topics scored, the rule)


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
    shares = tuple(sorted(r.shares, key=lambda s: (-s.share, order.get(s.component, 0))))
    drawn = [(say(s.label, " (", s.component, ")"), s.share) for s in shares if s.share > 0]
    chart = svg.hbars(drawn, title=f"Share of all score mass per component, {a.label}", kind="pct",
                      tones=["bar"] * len(drawn))
    changes = tuple(ParamDiff(p.path, p.kind, p.baseline, p.candidate) for p in r.param_changes)
    source_diff = diff_lines(r.source_diff)
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
        restatements=tuple(sorted(r.restatements, key=lambda s: (s.period, s.published_at, s.publication))),
        gaming=gaming_view(r.gaming) if r.gaming is not None else None)


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
    return TransparencyPage(title, tuple(summary), releases, batches, verification, tuple(data.topics))


