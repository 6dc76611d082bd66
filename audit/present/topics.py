"""Presentation of topic influence, relative influence and engagers: the `--json` documents and the
text the CLI prints (the HTTP service returns the same JSON)."""
from __future__ import annotations

from typing import Any

import polars as pl

from .common import plain, table, window


def _who(account: str, handle: str | None) -> str:
    return f"{account} ({handle})" if handle else account


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return plain(df)


# ---------------------------------------------------------------- topics of an account

def account_topics_json(t) -> dict[str, Any]:
    return {"account_id": t.account_id, "handle": t.handle, "run_id": t.run_id, "algorithm": t.algorithm,
            "snapshot_id": t.snapshot_id, "topics_scored": t.topics_scored, "topics_of_account": t.topics,
            "topics": _rows(t.rows)}


def account_topics_text(t) -> str:
    head = (f"account {_who(t.account_id, t.handle)}: a score in {t.topics:,} of the {t.topics_scored:,} topics "
            f"scored by {t.algorithm} in {t.run_id} ({t.snapshot_id})"
            + (f"; the best {t.rows.height:,}" if t.rows.height < t.topics else ""))
    if not t.rows.height:
        return head + "\n  no score in any topic (its topics are below the minimum activity, or it has none)"
    rows = [[r["topic"], f"{r['score']:.1f}", f"{r['rank']:,}", f"{r['accounts']:,}"] for r in t.rows.iter_rows(named=True)]
    return "\n".join([head, *table(["topic", "score", "rank", "of"], rows)])


# ---------------------------------------------------------------- influence

def influence_json(i) -> dict[str, Any]:
    return {"account_id": i.account_id, "handle": i.handle, "run_id": i.run_id, "algorithm": i.algorithm,
            "snapshot_id": i.snapshot_id, "topic": i.topic, "score": plain(i.score), "raw": plain(i.raw),
            "rank": i.rank, "accounts": i.accounts, "influencers": _rows(i.influencers),
            "influencees": _rows(i.influencees),
            "relative": None if i.relative is None else _rows(i.relative),
            "relative_method": plain(i.relative_method)}


def _points_rows(df: pl.DataFrame) -> list[list[str]]:
    return [[_who(r["account_id"], r["handle"]), "" if r["score"] is None else f"{r['score']:.1f}",
             f"{r['interactions']:,}", f"{r['points']:+.2f}"] for r in df.iter_rows(named=True)]


def influence_text(i) -> str:
    where = f' in topic "{i.topic}"' if i.topic else ""
    lines = [f"account {_who(i.account_id, i.handle)}{where}: score {i.score:.1f}, rank {i.rank:,} of {i.accounts:,} "
             f"({i.algorithm}, {i.run_id})"]
    lines.append("")
    lines.append("influencers (whose engagement adds most to its score; points = its score without them)")
    lines += (table(["account", "score", "interactions", "points"], _points_rows(i.influencers))
              if i.influencers.height else ["  none: nobody engaged it"])
    lines.append("")
    lines.append("influencees (whose score it adds most to; points of their score)")
    lines += (table(["account", "score", "interactions", "points"], _points_rows(i.influencees))
              if i.influencees.height else ["  none: it engaged nobody"])
    if i.relative is not None:
        lines.append("")
        lines.append(f"relative to {i.account_id}: PageRank personalised to it (teleport to it alone, damping "
                     f"{i.relative_method['damping']}); {i.relative_method['reached']:,} accounts reached")
        rows = [[_who(r["account_id"], r["handle"]), f"{r['rank']:,}", f"{r['pagerank']:.6f}",
                 "" if r["score"] is None else f"{r['score']:.1f}"] for r in i.relative.iter_rows(named=True)]
        lines += table(["account", "rank", "pagerank", "score"], rows) if rows else ["  nobody: it engaged nobody"]
    return "\n".join(lines)


# ---------------------------------------------------------------- engagers

def engagers_json(e) -> dict[str, Any]:
    return {"account_id": e.account_id, "handle": e.handle, "run_id": e.run_id, "algorithm": e.algorithm,
            "snapshot_id": e.snapshot_id, "topic": e.topic, "as_of": e.as_of.isoformat(),
            "window": window(e.window_seconds), "since": None if e.since is None else e.since.isoformat(),
            "min_score": e.min_score, "previous_snapshot_id": e.previous_snapshot_id,
            "engagers": [{**r, "kinds": {k["kind"]: k["n"] for k in r["kinds"]}} for r in _rows(e.rows)],
            "alerts": int(e.rows["alert"].sum())}


def engagers_text(e) -> str:
    where = f' in topic "{e.topic}"' if e.topic else ""
    since = f" since {e.since.isoformat()}" if e.since else ""
    lines = [f"account {_who(e.account_id, e.handle)}{where}: {e.rows.height:,} engagers in {e.snapshot_id} "
             f"(window {window(e.window_seconds)} before {e.as_of.isoformat()}){since}, scores from {e.algorithm} "
             f"({e.run_id})"]
    if e.previous_snapshot_id is None:
        lines.append("  new: no earlier snapshot of the same window to compare with")
    if e.min_score is not None:
        lines.append(f"  alerts: {int(e.rows['alert'].sum()):,} at or above score {e.min_score:g} (marked !)")
    rows = []
    for r in e.rows.iter_rows(named=True):
        kinds = ", ".join(f"{k['kind']} {k['n']}" for k in r["kinds"])
        rows.append(["!" if r["alert"] else "", _who(r["engager"], r["handle"]),
                     "" if r["score"] is None else f"{r['score']:.1f}", "" if r["rank"] is None else f"{r['rank']:,}",
                     kinds, r["first"].strftime("%Y-%m-%d %H:%M"), r["last"].strftime("%Y-%m-%d %H:%M"),
                     "new" if r["new"] else ""])
    if rows:
        lines += table(["", "engager", "score", "rank", "interactions", "first", "last", ""], rows, left=2)
    return "\n".join(line.rstrip() for line in lines)
