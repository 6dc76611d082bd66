"""JSON and text of a Comparison (`audit compare`); NaN becomes null / "n/a"."""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import polars as pl

from ..analysis.segments import BUILTIN
from .common import named, plain, table

if TYPE_CHECKING:   # analysis.compare imports scipy; a Comparison exists only once it was imported
    from ..analysis.compare import Comparison, ParamChange, RunInfo

SCOPE_TEXT = {"all": "all", "top_10pct": "top 10%", "top_1pct": "top 1%"}


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [plain(row) for row in frame.to_dicts()]


def _run(info: RunInfo) -> dict[str, Any]:
    return {"run_id": info.run_id, "snapshot_id": info.snapshot_id, "snapshot_label": info.snapshot_label,
            "algorithm": info.algorithm,
            "params": plain(dict(info.params))}


def _change(change: ParamChange) -> dict[str, Any]:
    return {"path": change.path, "kind": change.kind,
            "baseline": plain(change.baseline), "candidate": plain(change.candidate)}


def comparison_json(c: Comparison) -> dict[str, Any]:
    """The `audit compare --json` document: plain JSON values (no NaN)."""
    d = c.deltas
    return {
        "baseline": _run(c.baseline), "candidate": _run(c.candidate),
        "coverage": {"both": c.coverage.both, "only_baseline": c.coverage.only_baseline,
                     "only_candidate": c.coverage.only_candidate},
        "deltas": plain({"accounts": d.accounts, "changed": d.changed, "mean": d.mean,
                          "median": d.median, "p5": d.p5, "p95": d.p95, "up_5": d.up_5,
                          "down_5": d.down_5, "up_10": d.up_10, "down_10": d.down_10}),
        "spearman": plain(c.spearman), "kendall_tau_b": plain(c.kendall_tau_b),
        "agreement": [plain({"scope": a.scope, "accounts": a.accounts, "spearman": a.spearman,
                              "kendall_tau_b": a.kendall_tau_b}) for a in c.agreement],
        "rbo": plain(c.rbo), "top_k_overlap": plain(c.top_k_overlap), "top_k_accounts": plain(c.top_k_accounts),
        "bands": {"labels": list(c.band_labels), "matrix": plain(c.bands)},
        "segments": _rows(c.segments),
        "movers": {"risers": _rows(c.risers), "fallers": _rows(c.fallers)},
        "param_changes": [_change(p) for p in c.param_changes],
        "source_diff": c.source_diff,
        "any_difference": c.any_difference,
    }


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _pct(v: float) -> str:
    return _num(None if math.isnan(v) else v * 100, ".1f") + ("%" if not math.isnan(v) else "")


def _range(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{low:,.0f}" if low == high else f"{low:,.0f}-{high:,.0f}"


def _movers(title: str, frame: pl.DataFrame) -> list[str]:
    if frame.is_empty():
        return [f"{title}: none"]
    rows = [[named(r["account_id"], r.get("handle")), f'{r["baseline_score"]:.2f}', f'#{r["baseline_rank"]:,}',
             f'{r["candidate_score"]:.2f}', f'#{r["candidate_rank"]:,}', f'{r["delta"]:+.2f}']
            for r in frame.iter_rows(named=True)]
    return [f"{title}:", *table(["account", "baseline", "rank", "candidate", "rank", "change"], rows)]


SOURCE_LINES = 12


def _snapshot(info: RunInfo) -> str:
    return f"{info.snapshot_label} ({info.snapshot_id})" if info.snapshot_label else info.snapshot_id


def comparison_text(c: Comparison) -> str:
    """A plain-text report of the Comparison, for the terminal (no trailing newline)."""
    b, k, d, cov = c.baseline, c.candidate, c.deltas, c.coverage
    out = [f"baseline  {b.run_id}  {b.algorithm} on {_snapshot(b)}",
           f"candidate {k.run_id}  {k.algorithm} on {_snapshot(k)}",
           "",
           f"accounts: {cov.both:,} in both, {cov.only_baseline:,} only in baseline, "
           f"{cov.only_candidate:,} only in candidate; {d.changed:,} scores changed",
           f"score change (candidate - baseline): mean {_num(d.mean, '+.2f')}, median {_num(d.median, '+.2f')}, "
           f"p5 {_num(d.p5, '+.2f')}, p95 {_num(d.p95, '+.2f')}",
           f"moved more than 5 points: {_pct(d.up_5)} up, {_pct(d.down_5)} down; "
           f"more than 10: {_pct(d.up_10)} up, {_pct(d.down_10)} down",
           "",
           "rank agreement (subsets by baseline rank):"]
    out += table(["scope", "accounts", "spearman", "kendall tau-b"],
                  [[SCOPE_TEXT.get(a.scope, a.scope), f"{a.accounts:,}", _num(a.spearman), _num(a.kendall_tau_b)]
                   for a in c.agreement])
    out.append("rank-biased overlap: " + ", ".join(f"p={p:g} {_num(v)}" for p, v in c.rbo.items()))
    out.append("top-k overlap: " + ", ".join(
        f"k={n:,} {_num(v)}" + (f" (of {c.top_k_accounts[n]:,}: fewer than {n:,} accounts)"
                                if c.top_k_accounts[n] < n else "") for n, v in c.top_k_overlap.items()))
    out += ["", "score bands (rows baseline, columns candidate):"]
    out += table(["", *c.band_labels], [[label, *(f"{n:,}" for n in row)]
                                         for label, row in zip(c.band_labels, c.bands, strict=True)])
    out += ["", "who pays (score change by segment):"]
    seg_rows = [[r["segment"] if r["segment"] not in BUILTIN else f'{r["segment"]} ({r["feature"]})',
                 r["band"], _range(r["low"], r["high"]), f'{r["accounts"]:,}',
                 _num(r["mean_delta"], "+.2f"), _num(r["median_delta"], "+.2f")]
                for r in c.segments.iter_rows(named=True)]
    out += table(["segment", "band", "range", "accounts", "mean", "median"], seg_rows, left=2) \
        if seg_rows else ["  none"]
    out += ["", *_movers("top risers", c.risers), "", *_movers("top fallers", c.fallers), ""]
    if c.param_changes:
        out.append("parameter changes:")
        for p in c.param_changes:
            before = "(absent)" if p.kind == "added" else json.dumps(p.baseline, sort_keys=True)
            after = "(absent)" if p.kind == "removed" else json.dumps(p.candidate, sort_keys=True)
            out.append(f"  {p.path}: {before} -> {after}")
    else:
        out.append("parameters: no change")
    if c.source_diff:
        lines = c.source_diff.rstrip("\n").splitlines()
        added = sum(1 for l in lines if l.startswith("+") and not l.startswith("+++"))
        removed = sum(1 for l in lines if l.startswith("-") and not l.startswith("---"))
        out += [f"source diff: +{added} -{removed} lines ({SOURCE_LINES} shown; --json or "
                "`audit report compare` has all of it)"] + lines[:SOURCE_LINES]
    else:
        out.append("source: no change")
    out += ["", "verdict: " + ("the runs differ" if c.any_difference else "no difference")]
    return "\n".join(out)                  # no final newline: the CLI echoes it with one
