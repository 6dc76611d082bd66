"""JSON and text of an Explanation (`audit explain`)."""
from __future__ import annotations

import dataclasses
from typing import Any

from ..analysis.explain import Explanation
from .common import plain

PART_LABELS = {"own_activity": "own activity", "population": "everyone else", "algorithm": "algorithm"}


def explanation_json(e: Explanation, *, engagers: int = 50) -> dict[str, Any]:
    """The `audit explain --json` document."""
    doc = plain(dataclasses.replace(e, engagers=e.engagers.head(engagers)))
    doc["engagers_total"] = e.engagers.height
    return doc


def _side(p) -> str:
    on = f"{p.snapshot_label} ({p.snapshot_id})" if p.snapshot_label else p.snapshot_id
    return f"{p.run_id}: {p.algorithm} on {on}, score {p.score:.1f}, rank {p.rank:,}"


def explanation_text(e: Explanation, *, engagers: int = 10) -> str:
    """A readable explanation: total, parts, reasons, components, engagers."""
    lines = [f"account {e.account_id}: {e.baseline.score:.1f} -> {e.candidate.score:.1f} ({e.total:+.1f} points)",
             f"  from {_side(e.baseline)}", f"  to   {_side(e.candidate)}", f"  method: {e.method}", "", "parts"]
    lines += [f"  {PART_LABELS[k]:<14} {v:+8.2f}" for k, v in e.parts.items()]
    lines += [f"  {'total':<14} {e.total:+8.2f}", "", "reasons"]
    lines += [f"  {i}. {r.text}" for i, r in enumerate(e.reasons, 1)] or ["  (no change)"]
    if e.components:
        lines += ["", "components", f"  {'part':<14} {'algorithm':<12} {'component':<18} {'before':>12} "
                                    f"{'after':>12} {'points':>8}"]
        for c in sorted(e.components, key=lambda c: (-abs(c.points), c.part, c.component)):
            lines.append(f"  {PART_LABELS[c.part]:<14} {c.algorithm:<12} {c.component:<18} {c.before:>12,.2f} "
                         f"{c.after:>12,.2f} {c.points:>+8.2f}")
    if e.engagers.height:
        lines += ["", f"engagers (largest {min(engagers, e.engagers.height)} of {e.engagers.height:,})",
                  f"  {'engager':<12} {'kind':<8} {'before':>6} {'after':>6} {'points':>8}  note"]
        for r in e.engagers.head(engagers).iter_rows(named=True):
            note = "started" if r["n1"] == 0 else "stopped" if r["n2"] == 0 else ""
            pts = "" if r.get("points") is None else f"{r['points']:+8.2f}"
            lines.append(f"  {r['engager']:<12} {r['kind']:<8} {r['n1']:>6,} {r['n2']:>6,} {pts:>8}  {note}")
    return "\n".join(lines)
