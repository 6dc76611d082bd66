"""JSON and text of a ScoreCard (`audit account`, GET /api/v1/accounts/{ref}/score) and of a
Lookup (`audit lookup`, POST /api/v1/scores)."""
from __future__ import annotations

from typing import Any

from ..api.lookup import Change, Lookup, ScoreCard
from .common import table


def _change_json(c: Change | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"period": c.period, "run_id": c.run_id, "as_of": c.as_of.isoformat(), "score": c.score,
            "change": c.change}


def _when(period: str | None, published_at) -> dict[str, Any]:
    return {"period": period, "published_at": published_at.isoformat() if published_at else None}


def score_card_json(s: ScoreCard) -> dict[str, Any]:
    return {"account_id": s.account_id, "score": s.score, "raw": s.raw, "rank": s.rank, "run_id": s.run_id,
            "algorithm": s.algorithm, "as_of": s.as_of.isoformat(), "publication_id": s.publication_id,
            **_when(s.period, s.published_at),
            "changes": {name: _change_json(c) for name, c in s.changes.items()}}


def score_card_text(s: ScoreCard) -> str:
    where = f"period {s.period}" if s.period else "not published"
    lines = [f"account {s.account_id}: {s.score:.1f} (rank {s.rank:,}, raw {s.raw:.6g})",
             f"  {s.algorithm}, run {s.run_id}, {where}, as of {s.as_of.isoformat()}"]
    for name, c in s.changes.items():
        lines.append(f"  {name:<6} {'n/a' if c is None else f'{c.change:+.1f} since {c.period} ({c.score:.1f})'}")
    return "\n".join(lines)


def lookup_json(r: Lookup) -> dict[str, Any]:
    return {"run_id": r.run_id, "algorithm": r.algorithm, "as_of": r.as_of.isoformat(),
            "publication_id": r.publication_id, "period": r.period,
            "scores": [{"ref": x.ref, "account_id": x.account_id, "score": x.score, "raw": x.raw, "rank": x.rank}
                       for x in r.rows],
            "unknown": list(r.unknown),
            "ambiguous": [{"ref": ref, "accounts": [{"account_id": h.account_id, "handle": h.handle,
                                                     "first_seen": h.first_seen.isoformat()} for h in holders]}
                          for ref, holders in r.ambiguous]}


def lookup_text(r: Lookup) -> str:
    where = f"period {r.period}" if r.period else "not published"
    lines = [f"{r.algorithm}, run {r.run_id}, {where}: {len(r.rows):,} found, {len(r.unknown):,} unknown, "
             f"{len(r.ambiguous):,} ambiguous"]
    if r.rows:
        lines += table(["ref", "account", "score", "rank"],
                       [[x.ref, x.account_id, f"{x.score:.1f}", f"{x.rank:,}"] for x in r.rows], left=2)
    lines += [f"unknown: {ref}" for ref in r.unknown]
    for ref, holders in r.ambiguous:
        lines.append(f"ambiguous: {ref} held by " + "; ".join(
            f"{h.account_id} (first seen {h.first_seen.isoformat()})" for h in holders))
    return "\n".join(lines)
