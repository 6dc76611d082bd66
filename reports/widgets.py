"""What the pages share: headline numbers, measures, diff lines and parameter changes, as
plain frozen data that the templates lay out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .svg import Text


@dataclass(frozen=True)
class Stat:
    """A headline number at the top of a page."""
    label: str
    value: Text
    detail: Text = ()


@dataclass(frozen=True)
class Measure:
    label: Text
    value: Any
    kind: str


@dataclass(frozen=True)
class DiffLine:
    text: str
    tone: str                   # file, hunk, add, del, same


@dataclass(frozen=True)
class ParamDiff:
    path: str
    kind: str                   # added, removed, changed
    baseline: Any
    candidate: Any


def diff_lines(diff: str) -> tuple[DiffLine, ...]:
    """A unified diff as lines with a tone each."""
    def tone(line: str) -> str:
        if line.startswith(("+++", "---")):
            return "file"
        return {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "same")
    return tuple(DiffLine(line, tone(line)) for line in diff.splitlines())
