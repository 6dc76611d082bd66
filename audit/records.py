"""Content hashes of stored records, computed the same way when a record is written and when
`verify` recomputes it from what the store holds. Each function takes plain values and frames."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb
import polars as pl

from .hashing import frame_digest, sha256_json
from .store import frame

INTERACTION_KEY = ["ts", "source", "target", "kind", "weight", "topic", "event_id"]
ACCOUNT_KEY = ["account_id", "handle", "followers", "following", "created_at"]


def rows_digest(rows: pl.DataFrame, batch_kind: str) -> str:
    """Digest of a batch's rows in canonical order (identical rows are kept and counted)."""
    key = INTERACTION_KEY if batch_kind == "interactions" else ACCOUNT_KEY
    # The sort order as row positions; frame_digest then gathers one column at a time, so a
    # sorted copy of the whole batch never exists at once.
    order = rows.select(pl.arg_sort_by(key, nulls_last=True, maintain_order=True)).to_series()
    return frame_digest(rows.select(key), order)


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC (naive means UTC): hashed instants must read back identically from the
    store, which returns every TIMESTAMPTZ in UTC."""
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def logged(content: str, **meta: Any) -> str:
    """What a log entry holds for a record: its content hash plus the fields outside it (a
    snapshot's label, when a record was made), so that editing any of them is detected."""
    return sha256_json({"content": content,
                        "meta": {k: as_utc(v).isoformat() if isinstance(v, datetime) else v
                                 for k, v in meta.items()}})


BATCH_FIELDS = ("batch_id", "file_sha256", "source_name", "format", "batch_kind", "rows", "accounts",
                "validation", "ingested_at")


def batch_hash(meta: dict[str, Any], digest: str) -> str:
    """A batch record: its metadata (file, format, counts, validation result) and its rows."""
    meta = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in meta.items()}
    assert sorted(meta) == sorted(BATCH_FIELDS), sorted(meta)
    return sha256_json({"meta": meta, "rows": digest})


def snapshot_definition(as_of: datetime, window_seconds: int | None,
                        batches: list[tuple[str, str]]) -> dict[str, Any]:
    """What a snapshot is: the as-of instant, the window and the content hashes of its batches."""
    return {"as_of": as_of.isoformat(), "window_seconds": window_seconds,
            "batches": [list(b) for b in sorted(batches)]}


def snapshot_hash(definition: dict[str, Any], interactions: int, accounts: int) -> str:
    return sha256_json({"definition": definition, "interactions": interactions, "accounts": accounts})


def stored_batch_rows(con: duckdb.DuckDBPyConnection, batch_id: str, batch_kind: str) -> pl.DataFrame:
    """A batch's rows as stored, in the dtypes the digest expects."""
    if batch_kind == "interactions":
        sql = ("SELECT source, target, kind::VARCHAR AS kind, ts, weight, topic, event_id "
               "FROM interaction WHERE batch_id = ?")
    else:
        sql = ("SELECT account_id, handle, followers, following, created_at "
               "FROM account WHERE batch_id = ?")
    return frame(con, sql, [batch_id])
