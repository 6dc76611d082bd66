"""Batches: read, validate, hash and store one input file. Validation runs before the store is
touched, so a rejected file leaves the store byte for byte as it was. A batch is never changed
once stored; the same content again is the same batch."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ..progress import Step
from ..store.db import append_log, dicts, frame, registered
from ..store.hashing import as_utc, short_id
from ..store.recipes import batch_hash, rows_digest
from .formats import Parsed, read_input
from .validate import validate


@dataclass(frozen=True)
class IngestResult:
    """What `audit ingest` did: the batch, whether it was new, and its validation result."""
    batch_id: str
    path: str
    format: str
    batch_kind: str
    rows: int
    accounts: int
    new: bool
    warnings: list[dict[str, Any]] = field(default_factory=list)
    duplicates_of_stored: int = 0
    given: str | None = None        # the file given this time, when the batch was stored before


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_by_file(con: duckdb.DuckDBPyConnection, sha: str) -> IngestResult | None:
    """The batch already stored from a file with these exact bytes, if any.

    A uvt file's rows depend on --kind as well as its bytes, so it is never matched by bytes alone:
    it is read again and matched by content (the same kind again is still a no-op).
    """
    rows = dicts(con, f"SELECT {_STORED} FROM batch WHERE file_sha256 = ? AND format <> 'uvt' "
                      "ORDER BY batch_id LIMIT 1", [sha])
    return IngestResult(**rows[0], new=False) if rows else None


_STORED = "batch_id, source_name AS path, format, batch_kind, rows, accounts"


def normalised(parsed: Parsed) -> pl.DataFrame:
    """The rows as they are stored, in file order."""
    if parsed.batch_kind == "interactions":
        return parsed.frame.select("source", "target", "kind", "ts", "weight", "topic", "event_id")
    return parsed.frame.select("account_id", "handle", "followers", "following", "created_at")


@dataclass(frozen=True)
class Prepared:
    """A file read and validated, not yet stored."""
    parsed: Parsed
    rows: pl.DataFrame
    digest: str
    file_sha: str
    validation: dict[str, Any]


def prepare(path: str | Path, fmt: str, kind: str | None, now: datetime, step: Step) -> Prepared:
    """Everything that needs no store: read, validate, digest."""
    path, now = Path(path), as_utc(now)
    step(f"reading {path.name}")
    parsed = read_input(path, fmt, kind=kind)
    step(f"validating {parsed.frame.height:,} rows")
    validation = validate(parsed, now)
    step("hashing")
    rows = normalised(parsed)
    # The raw text columns were only needed for the messages: let them go before hashing.
    parsed = dataclasses.replace(parsed, frame=parsed.frame.clear())
    return Prepared(parsed, rows, rows_digest(rows, parsed.batch_kind), file_sha256(path), validation)


def store_batch(con: duckdb.DuckDBPyConnection, prep: Prepared, now: datetime, step: Step) -> IngestResult:
    """Insert the batch, its rows and its log entry (inside the caller's transaction)."""
    parsed, rows, now = prep.parsed, prep.rows, as_utc(now)
    batch_id = short_id("b", prep.digest)
    same = dicts(con, f"SELECT {_STORED} FROM batch WHERE content_hash = ?", [prep.digest])
    if same:
        return IngestResult(**same[0], new=False)
    step("storing")
    validation = dict(prep.validation)
    with registered(con, "incoming", rows):
        if parsed.batch_kind == "interactions":
            stored_any = con.execute("SELECT count(*) FROM (SELECT 1 FROM interaction LIMIT 1)").fetchall()[0][0]
            dup = 0 if not stored_any else con.execute(
                "SELECT count(*) FROM incoming n WHERE EXISTS (SELECT 1 FROM interaction i WHERE "
                "i.source = n.source AND i.target = n.target AND i.kind::VARCHAR = n.kind AND i.ts = n.ts "
                "AND i.weight = n.weight)").fetchall()[0][0]
            con.execute("INSERT INTO interaction SELECT ?, source, target, kind, ts, weight, topic, event_id "
                        "FROM incoming", [batch_id])
            accounts, min_ts, max_ts = con.execute(
                "SELECT (SELECT count(*) FROM (SELECT source FROM incoming UNION SELECT target FROM incoming)), "
                "min(ts), max(ts) FROM incoming").fetchall()[0]
        else:
            dup = con.execute("SELECT count(*) FROM incoming n WHERE EXISTS (SELECT 1 FROM account a "
                              "WHERE a.account_id = n.account_id)").fetchall()[0][0]
            con.execute("INSERT INTO account SELECT ?, account_id, handle, followers, following, created_at "
                        "FROM incoming", [batch_id])
            accounts, min_ts, max_ts = rows.height, None, None
    validation["duplicates_of_stored"] = int(dup)
    if dup:
        what = "interactions" if parsed.batch_kind == "interactions" else "accounts"
        validation["warnings"] = validation["warnings"] + [{
            "code": "already_stored", "count": int(dup), "example_lines": [],
            "text": f"{dup:,} {what} of this file are already stored in an earlier batch"}]
    meta = {"batch_id": batch_id, "file_sha256": prep.file_sha, "source_name": str(parsed.path),
            "format": parsed.format, "batch_kind": parsed.batch_kind, "rows": rows.height,
            "accounts": int(accounts), "validation": validation, "ingested_at": now}
    con.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch_id, prep.digest, prep.file_sha, str(parsed.path), parsed.format, parsed.batch_kind,
                 rows.height, accounts, min_ts, max_ts, json.dumps(validation, sort_keys=True), now])
    append_log(con, "batch", batch_id, batch_hash(meta, prep.digest), now)
    return IngestResult(batch_id=batch_id, path=str(parsed.path), format=parsed.format,
                        batch_kind=parsed.batch_kind, rows=rows.height, accounts=int(accounts), new=True,
                        warnings=validation["warnings"], duplicates_of_stored=int(dup))


def stored_rows(con: duckdb.DuckDBPyConnection, batch_id: str, batch_kind: str) -> pl.DataFrame:
    """A batch's rows as stored, in the dtypes its digest was computed on."""
    if batch_kind == "interactions":
        sql = ("SELECT source, target, kind::VARCHAR AS kind, ts, weight, topic, event_id "
               "FROM interaction WHERE batch_id = ?")
    else:
        sql = ("SELECT account_id, handle, followers, following, created_at "
               "FROM account WHERE batch_id = ?")
    return frame(con, sql, [batch_id])
