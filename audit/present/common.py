"""What every presentation function shares: the one JSON encoding, JSON-able values, tables.

Invariant: presentation only formats what a result holds (no computation, no clock, no store),
so the same result always gives the same text and the same JSON bytes, whichever door asks.
"""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from typing import Any

import polars as pl


def dumps(doc: Any) -> str:
    """The JSON document of a result, as every door prints it: sorted keys, two-space indents."""
    return json.dumps(doc, sort_keys=True, indent=2, default=str)


def plain(value: Any) -> Any:
    """A JSON-able copy: dataclasses and frames as objects and lists, NaN -> None, tuples -> lists,
    mapping keys -> str, numpy scalars -> Python numbers, instants -> ISO 8601."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pl.DataFrame):
        return [plain(row) for row in value.to_dicts()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):   # numpy scalars
        return plain(value.item())
    return value


def table(header: list[str], rows: list[list[str]], left: int = 1, indent: str = "  ") -> list[str]:
    """Lines of a plain table: the first `left` columns left-aligned, the others right-aligned;
    widths from the content; no trailing spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = (cell.ljust(w) if i < left else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        return (indent + "  ".join(cells)).rstrip()
    return [fmt(header), *(fmt(r) for r in rows)]


def cell(v: object) -> str:
    """A value in a frame table: floats with 4 decimals (small ones in e-notation), counts with commas."""
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def frame_text(df: pl.DataFrame) -> str:
    """A frame as a plain table: every column right-aligned, with its name as the header."""
    cols = df.columns
    cells = [[cell(v) for v in row] for row in df.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def window(seconds: int | None) -> str:
    """A snapshot window as it was given: 7d, 12h, 90m, or all."""
    if seconds is None:
        return "all"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 account`, `2 accounts`, `1,024 accounts`."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
