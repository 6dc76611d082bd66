"""JSON and text of a GamingAudit (`audit gaming`)."""
from __future__ import annotations

import math
from typing import Any

from ..analysis.gaming import GamingAudit, Group
from .common import plain, plural, table

EVIDENCE = ("role", "received", "from_group", "share_from_group", "given", "to_group")
SHOWN = 20


def _finding(row: dict) -> dict[str, Any]:
    return {"account_id": row["account_id"], "handle": row["handle"], "pattern": row["pattern"],
            "group": row["group"], "score": row["score"], "score_without": row["score_without"],
            "points_from_group": row["points_from_group"], "evidence": {k: row[k] for k in EVIDENCE}}


def _group(g: Group) -> dict[str, Any]:
    return {"group": g.group, "pattern": g.pattern, "accounts": g.accounts, "flagged": g.flagged,
            "points_from_group": g.points, "members": [{"account_id": a, "role": r} for a, r in g.members],
            "evidence": g.evidence}


def gaming_json(g: GamingAudit) -> dict[str, Any]:
    """The `--json` document: detector, run_id, counterfactual_run_id, flagged (by points), groups."""
    p = g.points
    return plain({
        "gaming_id": g.gaming_id, "detector": g.detector, "detector_id": g.detector_id, "run_id": g.run_id,
        "algorithm": g.algorithm, "snapshot_id": g.snapshot_id, "counterfactual_run_id": g.counterfactual_run_id,
        "counterfactual_snapshot_id": g.derived_snapshot_id, "interactions_left_out": g.left_out, "new": g.new,
        "flagged": [_finding(r) for r in g.flagged.iter_rows(named=True)],
        "groups": [_group(x) for x in g.groups],
        "points": {"flagged": p.flagged, "more_than_5": p.over_5, "total": p.total, "median": p.median,
                   "p90": p.p90, "max": p.max,
                   "bands": [{"from": None if math.isinf(lo) else lo, "to": None if math.isinf(hi) else hi,
                              "accounts": n} for lo, hi, n in p.bins]},
    })


def _measure(key: str, v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if key.endswith(("share", "reciprocity", "density")) else f"{v:,.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def gaming_text(g: GamingAudit, top: int = SHOWN) -> str:
    """What was found, the counterfactual it is measured against, the top flagged accounts and groups."""
    verb = "gaming audit" if g.new else "gaming audit (stored):"
    lines = [f"{verb} {g.gaming_id}: {g.detector} on run {g.run_id} ({g.algorithm} on "
             f"{g.snapshot_label or g.snapshot_id}, {g.snapshot_id}, {g.accounts:,} accounts)"]
    if not g.groups:
        lines.append("no ring and no puppet group found: nothing flagged, no counterfactual run needed")
        return "\n".join(lines)
    rings = [x for x in g.groups if x.pattern == "ring"]
    puppets = [x for x in g.groups if x.pattern == "puppets"]
    lines.append(f"counterfactual run {g.counterfactual_run_id}: {g.algorithm} on {g.derived_snapshot_id}, the same "
                 f"snapshot with the groups' {plural(g.left_out, 'interaction')} among themselves left out")
    lines.append(f"found {plural(len(rings), 'ring')} ({plural(sum(x.accounts for x in rings), 'account')}) and "
                 f"{plural(len(puppets), 'puppet group')} ({plural(sum(x.flagged for x in puppets), 'target')}, "
                 f"{plural(sum(x.accounts - x.flagged for x in puppets), 'puppet')}): "
                 f"{plural(g.points.flagged, 'account')} flagged")
    p = g.points
    lines.append(f"points from the group: total {p.total:,.1f}, median {p.median:.2f}, p90 {p.p90:.2f}, "
                 f"max {p.max:.2f}; {plural(p.over_5, 'account')} with more than 5 points")
    rows = [[r["account_id"], r["handle"] or "", r["pattern"], str(r["group"]), f"{r['score']:.2f}",
             f"{r['score_without']:.2f}", f"{r['points_from_group']:+.2f}", f"{r['share_from_group']:.2f}"]
            for r in g.flagged.head(top).iter_rows(named=True)]
    lines += ["", f"flagged accounts (top {min(top, g.flagged.height):,} of {g.flagged.height:,} by points):"]
    lines += table(["account", "handle", "pattern", "group", "score", "without", "points", "share"], rows, left=3)
    lines += ["", f"groups (top {min(top, len(g.groups)):,} of {len(g.groups):,} by points):"]
    for x in sorted(g.groups, key=lambda x: (-x.points, x.group))[:top]:
        ev = ", ".join(f"{k.replace('_', ' ')} {_measure(k, v)}" for k, v in sorted(x.evidence.items()))
        earners = [a for a, r in x.members if r != "puppet"]
        shown = ", ".join(earners[:8]) + (", ..." if len(earners) > 8 else "")
        lines.append(f"  {x.group:>4}  {x.pattern:<7}  {plural(x.accounts, 'account'):>12}  "
                     f"{x.points:+8.2f} points  {'targets' if x.pattern == 'puppets' else 'members'}: {shown}")
        lines.append(f"        {ev}")
    return "\n".join(lines)
