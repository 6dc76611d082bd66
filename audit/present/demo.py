"""JSON and text of the demo's result (`audit demo`)."""
from __future__ import annotations

from typing import Any

from ..api.demo import DemoResult


def demo_json(r: DemoResult) -> dict[str, Any]:
    return {"store": r.store, "reports": r.reports, "account": r.account, "snapshots": r.snapshots, "runs": r.runs,
            "gaming_id": r.gaming.gaming_id if r.gaming is not None else None}


def demo_text(r: DemoResult) -> str:
    e = r.explanation
    lines = [f"store: {r.store}",
             f"{len(r.snapshots)} daily snapshots, {sum(len(v) for v in r.runs.values())} runs, "
             f"{r.publications} publications ({r.restatements} restatements)"]
    if e is not None:
        lines.append(f"biggest drop: account {r.account} {e.baseline.score:.1f} ({e.baseline.algorithm}, "
                     f"{e.baseline.snapshot_label}) -> {e.candidate.score:.1f} ({e.candidate.algorithm}, "
                     f"{e.candidate.snapshot_label}): own activity {e.parts['own_activity']:+.1f}, everyone else "
                     f"{e.parts['population']:+.1f}, algorithm {e.parts['algorithm']:+.1f}")
        lines += [f"  - {reason.text}" for reason in e.reasons]
    g = r.gaming
    if g is not None:
        rings = sum(1 for x in g.groups if x.pattern == "ring")
        lines.append(f"gaming audit {g.gaming_id} ({g.detector} on {g.algorithm}, {g.snapshot_label}): "
                     f"{g.points.flagged:,} accounts flagged in {rings:,} rings and {len(g.groups) - rings:,} puppet "
                     f"groups, {g.points.over_5:,} with more than 5 points from their group")
    lines += [f"report {name}: {path}" for name, path in sorted(r.reports.items())]
    return "\n".join(lines)
