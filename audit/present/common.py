"""What every presentation function shares: the one JSON encoding, JSON-able values, tables.

Invariant: presentation only formats what a result holds (no computation, no clock, no store),
so the same result always gives the same text and the same JSON bytes, whichever door asks.
"""
from __future__ import annotations

import dataclasses
import json
import json.encoder
import math
from datetime import datetime
from typing import Any

import polars as pl


def dumps(doc: Any) -> str:
    """The JSON document of a result, as every door prints it: sorted keys, two-space indents.

    Exactly `json.dumps(doc, sort_keys=True, indent=2, default=str)`, which this computes
    directly for the JSON types (CPython's C encoder ignores `indent`, and its Python encoder
    took ~70% of a bulk lookup); anything else goes to json.dumps itself. A test holds the two
    equal."""
    out: list[str] = []
    try:
        _encode(doc, "", out)
    except _Other:
        return json.dumps(doc, sort_keys=True, indent=2, default=str)
    return "".join(out)


class _Other(Exception):
    """A value json.dumps would hand to `default` (or a key it would convert): let it."""


_string = json.encoder.encode_basestring_ascii
_INF = float("inf")


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _scalar(o: Any) -> str | None:
    """The JSON of a scalar as json.dumps writes it, or None for a container."""
    t = type(o)
    if t is str:
        return _string(o)
    if t is float:
        return float.__repr__(o) if o - o == 0 else _float(o)
    if t is int:
        return int.__repr__(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, str):
        return _string(o)
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, (list, tuple, dict)):
        return None
    raise _Other


def _encode(o: Any, pad: str, out: list[str]) -> None:
    piece = _scalar(o)
    if piece is not None:
        out.append(piece)
        return
    inner = pad + "  "
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        sep = "{\n" + inner
        for k, v in sorted(o.items()):
            if type(k) is not str:
                raise _Other
            t = type(v)                 # the common scalars inline: this loop is the hot path
            if t is str:
                out.append(f"{sep}{_string(k)}: {_string(v)}")
            elif t is float and v - v == 0:
                out.append(f"{sep}{_string(k)}: {float.__repr__(v)}")
            elif t is int:
                out.append(f"{sep}{_string(k)}: {int.__repr__(v)}")
            else:
                out.append(f"{sep}{_string(k)}: ")
                _encode(v, inner, out)
            sep = ",\n" + inner
        out.append("\n" + pad + "}")
        return
    if not o:
        out.append("[]")
        return
    if type(o[0]) is dict and o[0] and len(o) > 8 and _rows(o, inner, out):
        return
    sep = "[\n" + inner
    for v in o:
        out.append(sep)
        _encode(v, inner, out)
        sep = ",\n" + inner
    out.append("\n" + pad + "]")


def _rows(items: list | tuple, pad: str, out: list[str]) -> bool:
    """A list of flat objects with the same keys (rows of a table), written column by column
    into one template; False, with nothing written, when it is not one."""
    keys = sorted(items[0])
    keyset = items[0].keys()
    if any(type(k) is not str for k in keys) or not all(type(r) is dict and r.keys() == keyset for r in items):
        return False
    columns = []
    for k in keys:
        column = [r[k] for r in items]
        kinds = set(map(type, column))
        if kinds == {str}:
            columns.append(list(map(_string, column)))
        elif kinds == {float} and all(map(math.isfinite, column)):
            columns.append(list(map(float.__repr__, column)))
        elif kinds == {int}:
            columns.append(list(map(int.__repr__, column)))
        else:
            pieces = list(map(_scalar, column))
            if None in pieces:
                return False
            columns.append(pieces)
    inner = pad + "  "
    template = "{\n" + ",\n".join(f"{inner}{_string(k).replace('%', '%%')}: %s" for k in keys) + "\n" + pad + "}"
    out.append("[\n" + pad + (",\n" + pad).join([template % values for values in zip(*columns)]) + "\n" + pad[:-2] + "]")
    return True


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


def named(account_id: str, handle: str | None) -> str:
    """An account as people know it: `handle (id)` where an accounts file gave a handle, else the id."""
    return f"{handle} ({account_id})" if handle else account_id
