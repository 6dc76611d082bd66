"""Content hashes: canonical JSON and frame digests. Ids are short prefixes of these hashes."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import polars as pl


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace, and no NaN: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_text(canonical_json(value))


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC (naive means UTC): hashed instants must read back identically from the
    store, which returns every TIMESTAMPTZ in UTC."""
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def short_id(prefix: str, digest: str) -> str:
    """`b_3f9a2c1b0d4e`: a record id is its kind's letter and 12 hex digits of its content hash."""
    return f"{prefix}_{digest[:12]}"


def _column_bytes(h: "hashlib._Hash", col: pl.Series) -> None:
    import numpy as np  # hashing needs it, a read does not
    h.update(f"{col.name}:{col.dtype}:{len(col)}|".encode())
    valid = col.is_not_null()
    if col.null_count():
        h.update(np.packbits(valid.to_numpy()).tobytes())
    dtype = col.dtype
    if dtype == pl.String:
        filled = col.fill_null("")
        h.update(filled.str.len_bytes().cast(pl.UInt32).to_numpy().tobytes())
        h.update(filled.str.join("").item().encode("utf-8"))
    elif dtype == pl.Boolean:
        h.update(np.packbits(col.fill_null(False).to_numpy()).tobytes())
    elif dtype.is_temporal():
        h.update(col.dt.cast_time_unit("us").to_physical().fill_null(0).to_numpy().tobytes()
                 if isinstance(dtype, pl.Datetime) else col.to_physical().fill_null(0).to_numpy().tobytes())
    elif dtype.is_float():
        # -0.0 and 0.0 are different bytes; NaN never reaches a stored frame (validation).
        h.update(col.cast(pl.Float64).fill_null(0.0).to_numpy().tobytes())
    elif dtype.is_integer():
        h.update(col.cast(pl.Int64).fill_null(0).to_numpy().tobytes())
    elif isinstance(dtype, pl.List):
        h.update(col.list.len().fill_null(0).cast(pl.UInt32).to_numpy().tobytes())
        _column_bytes(h, col.explode().drop_nulls().cast(pl.Float64).rename(col.name + "[]"))
    else:
        _column_bytes(h, col.cast(pl.String))


def frame_digest(df: pl.DataFrame, order: pl.Series | None = None) -> str:
    """sha256 over a frame's column names, types and values, in row order, or in the order of
    the row positions `order` (gathered column by column)."""
    h = hashlib.sha256()
    for name in df.columns:
        col = df[name] if order is None else df[name].gather(order)
        _column_bytes(h, col.rechunk())
    return h.hexdigest()
