"""Read, validate, hash and store one batch. Validation runs before the store is touched, so a
rejected file leaves the store byte for byte as it was."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import duckdb
import polars as pl

from .formats import Parsed, read_input
from .hashing import short_id
from .records import as_utc, batch_hash, rows_digest
from .store import append_log
from .validate import validate

Step = Callable[[str], None]


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
    rows = con.execute("SELECT batch_id, source_name, format, batch_kind, rows, accounts "
                       "FROM batch WHERE file_sha256 = ? AND format <> 'uvt' ORDER BY batch_id LIMIT 1",
                       [sha]).fetchall()
    return _existing(rows[0]) if rows else None


def _existing(row: tuple) -> IngestResult:
    return IngestResult(batch_id=row[0], path=row[1], format=row[2], batch_kind=row[3],
                        rows=row[4], accounts=row[5], new=False)


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
    same = con.execute("SELECT batch_id, source_name, format, batch_kind, rows, accounts FROM batch "
                       "WHERE content_hash = ?", [prep.digest]).fetchall()
    if same:
        return _existing(same[0])
    step("storing")
    con.register("incoming", rows)
    validation = dict(prep.validation)
    if parsed.batch_kind == "interactions":
        stored_any = con.execute("SELECT count(*) FROM (SELECT 1 FROM interaction LIMIT 1)").fetchall()[0][0]
        dup = 0 if not stored_any else con.execute(
            "SELECT count(*) FROM incoming n WHERE EXISTS (SELECT 1 FROM interaction i WHERE "
            "i.source = n.source AND i.target = n.target AND i.kind::VARCHAR = n.kind AND i.ts = n.ts "
            "AND i.weight = n.weight)").fetchall()[0][0]
        con.execute(f"INSERT INTO interaction SELECT '{batch_id}', source, target, kind, ts, weight, topic, "
                    "event_id FROM incoming")
        accounts, min_ts, max_ts = con.execute(
            "SELECT (SELECT count(*) FROM (SELECT source FROM incoming UNION SELECT target FROM incoming)), "
            "min(ts), max(ts) FROM incoming").fetchall()[0]
    else:
        dup = con.execute("SELECT count(*) FROM incoming n WHERE EXISTS (SELECT 1 FROM account a "
                          "WHERE a.account_id = n.account_id)").fetchall()[0][0]
        con.execute(f"INSERT INTO account SELECT '{batch_id}', account_id, handle, followers, following, "
                    "created_at FROM incoming")
        accounts, min_ts, max_ts = rows.height, None, None
    con.unregister("incoming")
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
