"""JSON and text of an Explanation (`audit explain`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl

from ..analysis.explain import SHOWN, Explanation, RunPoint, window_text
from .common import named, plain, table

PART_LABELS = {"own_activity": "own activity", "population": "everyone else", "algorithm": "algorithm"}


def explanation_json(e: Explanation, *, engagers: int = 50) -> dict[str, Any]:
    """The `audit explain --json` document (the engagers that moved the score most, at most 50)."""
    return plain(dataclasses.replace(e, engagers=e.engagers.head(engagers)))


def _side(p: RunPoint) -> str:
    on = f"{p.snapshot_label} ({p.snapshot_id}, " if p.snapshot_label else f"{p.snapshot_id} ("
    where = f"{on}{window_text(p.window_seconds)} to {p.as_of})"
    if p.score is None:
        return f"{p.run_id}: {p.algorithm} on {where}, no score"
    return f"{p.run_id}: {p.algorithm} on {where}, score {p.score:.1f}, rank {p.rank:,} of {p.accounts:,}"


def _headline(e: Explanation) -> str:
    who = named(e.account_id, e.handle)
    if e.status == "joined":
        return f"account {who}: no score -> {e.candidate.score:.1f} (joined)"
    if e.status == "left":
        return f"account {who}: {e.baseline.score:.1f} -> no score (left)"
    return f"account {who}: {e.baseline.score:.1f} -> {e.candidate.score:.1f} ({e.total:+.2f} points)"


def _reasons(e: Explanation) -> list[str]:
    lines = [f"  {i}. {r.text}" for i, r in enumerate(e.reasons, 1)]
    if lines:
        return lines
    if e.status in ("joined", "left"):
        return ["  none: it received nothing in either window (an account is scored for what it gives, "
                "and for being in the accounts file, as well)"]
    if e.status == "same" or e.total == 0.0:
        return ["  none: the score did not change"]
    return [f"  none: every item is under {SHOWN} points ({e.total:+.2f} together)"]


def _rating(value: float, kind: str) -> str:
    return f"{value:+,.0f}" if kind in ("rating", "distrust") else ""


def explanation_text(e: Explanation, *, engagers: int = 10) -> str:
    """A readable explanation: the change, its parts, reasons, notes, components and engagers."""
    lines = [_headline(e), f"  from {_side(e.baseline)}", f"  to   {_side(e.candidate)}", f"  method: {e.method}"]
    if e.parts:
        lines += ["", "parts"]
        lines += [f"  {PART_LABELS[k]:<14} {v:+8.2f}" for k, v in e.parts.items()]
        lines += [f"  {'total':<14} {e.total:+8.2f}"]
    lines += ["", "reasons", *_reasons(e)]
    if e.notes:
        lines += ["", "notes", *(f"  - {n}" for n in e.notes)]
    if e.components:
        rows = [[c.algorithm, c.component, c.unit, f"{c.before:,.4g}", f"{c.after:,.4g}", f"{c.own_activity:+.2f}",
                 f"{c.population:+.2f}"]
                for c in sorted(e.components, key=lambda c: (-abs(c.own_activity + c.population), c.algorithm,
                                                             c.component))
                if c.before or c.after or c.own_activity or c.population]
        lines += ["", "components (points by part)"]
        lines += table(["algorithm", "component", "unit", "before", "after", "own", "everyone else"], rows, left=3)
    moved = e.engagers.filter(pl.col("points").is_null() | (pl.col("points").abs() >= 0.005)
                              | (pl.col("change") != "same"))
    if moved.height:
        shown = moved.head(engagers)
        rows = [[named(r["engager"], r.get("engager_handle")), r["kind"], f"{r['n1']:,}", f"{r['n2']:,}",
                 _rating(r["value2"] if r["n2"] else r["value1"], r["kind"]),
                 "" if r["points"] is None else f"{r['points']:+.2f}", r["change"]]
                for r in shown.iter_rows(named=True)]
        order = "moved the score most" if shown["points"].null_count() < shown.height else "changed their engagement most"
        lines += ["", f"engagers ({shown.height:,} engagement{'s' if shown.height != 1 else ''} that {order}; "
                      f"{e.engagers_total:,} engager{'s' if e.engagers_total != 1 else ''} in all)"]
        lines += table(["engager", "kind", "before", "after", "rating", "points", "change"], rows, left=2)
    return "\n".join(lines)
