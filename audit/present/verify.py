"""JSON and text of a Verification (`audit verify`)."""
from __future__ import annotations

from typing import Any

from ..records.verify import Verification


def verification_json(v: Verification) -> dict[str, Any]:
    return {"ok": v.ok, "entries": v.entries, "head": v.head, "problems": v.problems, "reran": v.reran,
            "notes": v.notes}


def verification_text(v: Verification, *, rerun: bool) -> str:
    lines = []
    for p in v.problems:
        where = f"log entry {p['seq']}: " if p["seq"] is not None else ""
        lines.append(f"FAIL {where}{p['problem']}")
    lines += [f"note: {n}" for n in v.notes]
    status = "ok" if v.ok else f"{len(v.problems)} problem(s)"
    reran = f", {v.reran} run(s) re-executed" if rerun else ""
    lines.append(f"{status}: {v.entries:,} log entries checked{reran}, head {v.head[:16]}")
    return "\n".join(lines)
