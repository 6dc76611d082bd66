"""Page context of a "Score earned inside rings" section: a stored gaming audit's counts, the
distribution of points from the group, the top cases and the groups with their evidence.

Invariant: everything shown is computed here from the audit given (no clock, no I/O); templates only
lay it out through the registered filters, and every handle and id is escaped by autoescape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import svg
from .svg import Chart, say

if TYPE_CHECKING:
    from audit.analysis.gaming import GamingAudit, Group

# evidence key -> (plain label, filter kind)
MEASURES = {
    "internal_share": ("Share of what the group receives that comes from inside", "pct"),
    "reciprocity": ("Reciprocity (engagements inside that are returned)", "pct"),
    "density": ("Density (pairs inside that engage)", "pct"),
    "outward_share": ("Share of what members give that goes outside", "pct"),
    "received": ("Engagement received", "num"),
    "from_group": ("Engagement received from the group", "num"),
    "outside_weight": ("Engagement received from outside", "num"),
    "outside_engagers": ("Accounts outside that engage the group", "count"),
    "targets": ("Targets", "count"),
    "puppets": ("Puppets", "count"),
    "created_spread_days": ("Puppets created within (days)", "num"),
    "first_seen_spread_hours": ("Puppets' first interactions within (hours)", "num"),
}


@dataclass(frozen=True)
class CaseRow:
    account_id: str
    handle: str | None
    pattern: str
    group: int
    score: float
    score_without: float
    points: float
    share: float


@dataclass(frozen=True)
class Measure:
    label: str
    value: Any
    kind: str


@dataclass(frozen=True)
class GroupRow:
    group: int
    pattern: str
    accounts: int
    flagged: int
    points: float
    earners: tuple[str, ...]               # ring members or puppet targets
    puppets: int
    measures: tuple[Measure, ...]


@dataclass(frozen=True)
class GamingView:
    gaming_id: str
    detector: str
    detector_id: str
    run_id: str
    algorithm: str
    counterfactual_run_id: str | None
    derived_snapshot_id: str | None
    left_out: int
    flagged: int
    rings: int
    ring_accounts: int
    puppet_groups: int
    targets: int
    puppets: int
    over_5: int
    total: float
    median: float | None
    p90: float | None
    max: float | None
    chart: Chart | None
    cases: tuple[CaseRow, ...]
    groups: tuple[GroupRow, ...]


def _band(lo: float, hi: float):
    if math.isinf(lo):
        return say("below ", (hi, "tick"))
    if math.isinf(hi):
        return say((lo, "tick"), " or more")
    return say((lo, "tick"), " to ", (hi, "tick"))


def measures(evidence: dict) -> tuple[Measure, ...]:
    return tuple(Measure(label, evidence[key], kind) for key, (label, kind) in MEASURES.items() if key in evidence)


def group_row(g: Group) -> GroupRow:
    earners = tuple(a for a, r in g.members if r != "puppet")
    return GroupRow(g.group, g.pattern, g.accounts, g.flagged, g.points, earners,
                    sum(1 for _, r in g.members if r == "puppet"), measures(g.evidence))


def gaming_view(a: GamingAudit, cases: int = 10, groups: int = 10) -> GamingView:
    """The section's context: counts, points by band, the top cases and groups by points."""
    rings = [g for g in a.groups if g.pattern == "ring"]
    pups = [g for g in a.groups if g.pattern == "puppets"]
    p = a.points
    bands = [(_band(lo, hi), float(n)) for lo, hi, n in p.bins if n or (not math.isinf(lo) and lo >= 0)]
    chart = svg.hbars(bands, title=f"Flagged accounts by points from their group ({a.detector} on {a.algorithm})",
                      kind="count", tones=["bar"] * len(bands)) if p.flagged else None
    rows = tuple(CaseRow(r["account_id"], r["handle"], r["pattern"], r["group"], r["score"], r["score_without"],
                         r["points_from_group"], r["share_from_group"])
                 for r in a.flagged.head(cases).iter_rows(named=True))
    top = tuple(group_row(g) for g in sorted(a.groups, key=lambda g: (-g.points, g.group))[:groups])
    return GamingView(a.gaming_id, a.detector, a.detector_id, a.run_id, a.algorithm, a.counterfactual_run_id,
                      a.derived_snapshot_id, a.left_out, p.flagged, len(rings), sum(g.accounts for g in rings),
                      len(pups), sum(g.flagged for g in pups), sum(g.accounts - g.flagged for g in pups), p.over_5,
                      p.total, p.median, p.p90, p.max, chart, rows, top)
