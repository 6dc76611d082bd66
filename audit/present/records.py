"""JSON and text of the records: batches, snapshots, algorithm versions, runs, scores,
publications and history. One `*_json` (the `--json` contract) and one `*_text` per result."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import polars as pl

from ..records.algorithms import Algorithm
from ..records.publications import Publication
from ..records.runs import Run
from ..records.snapshots import Snapshot
from .common import frame_text, named, plural, window

if TYPE_CHECKING:       # annotations only: printing a run does not import the ingest path
    from ..inputs.batches import IngestResult
    from ..records.exports import Export


# ---------------------------------------------------------------- batches

def ingest_json(r: IngestResult) -> dict[str, Any]:
    return {"batch_id": r.batch_id, "rows": r.rows, "accounts": r.accounts, "new": r.new, "format": r.format,
            "kind": r.batch_kind, "warnings": r.warnings, "duplicates_of_stored": r.duplicates_of_stored}


def ingest_text(r: IngestResult) -> str:
    what = plural(r.rows, "interaction" if r.batch_kind == "interactions" else "account")
    if not r.new:
        if r.given is not None and r.given != r.path:
            return f"{r.given} holds what batch {r.batch_id} stored from {r.path}: nothing new ({what})"
        return f"already stored as batch {r.batch_id}: nothing new ({what} from {r.path})"
    among = f" among {plural(r.accounts, 'account')}" if r.batch_kind == "interactions" else ""
    return f"stored batch {r.batch_id} ({r.format}): {what}{among}"


def ingest_warnings(r: IngestResult) -> list[str]:
    """What the CLI prints on stderr after storing a batch."""
    return [f"warning: {w['text']}" for w in r.warnings]


# ---------------------------------------------------------------- snapshots

def snapshot_json(s: Snapshot) -> dict[str, Any]:
    return {"snapshot_id": s.snapshot_id, "label": s.label, "as_of": s.as_of.isoformat(),
            "window": window(s.window_seconds), "batches": list(s.batch_ids),
            "interactions": s.interactions, "accounts": s.accounts, "parent_id": s.parent_id}


def snapshot_created_json(s: Snapshot) -> dict[str, Any]:
    return snapshot_json(s) | {"new": s.new}


def snapshot_text(s: Snapshot) -> str:
    verb = "created" if s.new else "already exists:"
    return (f"{verb} snapshot {s.snapshot_id} as of {s.as_of.isoformat()}"
            f"{' (' + window(s.window_seconds) + ' window)' if s.window_seconds else ''}: "
            f"{plural(s.interactions, 'interaction')}, {plural(s.accounts, 'account')}")


def snapshots_json(items: list[Snapshot]) -> list[dict[str, Any]]:
    return [snapshot_json(s) for s in items]


def snapshots_text(items: list[Snapshot]) -> str:
    if not items:
        return 'no snapshots yet; "audit snapshot --as-of DATE" creates one'
    lines = [f"{'snapshot':<15} {'as of':<26} {'window':>6} {'interactions':>12} {'accounts':>9}  label"]
    lines += [f"{s.snapshot_id:<15} {s.as_of.isoformat():<26} {window(s.window_seconds):>6} "
              f"{s.interactions:>12,} {s.accounts:>9,}  {s.label or ''}" for s in items]
    return "\n".join(lines)


# ---------------------------------------------------------------- algorithms

def registered_json(a: Algorithm, new: bool) -> dict[str, Any]:
    return {"algorithm_id": a.algorithm_id, "name": a.name, "version": a.version, "new": new}


def registered_text(a: Algorithm, new: bool) -> str:
    return f"{'registered' if new else 'already registered:'} {a.label} as {a.algorithm_id}"


def algorithm_json(a: Algorithm) -> dict[str, Any]:
    return {"algorithm_id": a.algorithm_id, "name": a.name, "version": a.version, "params": a.params,
            "description": a.description, "changelog": a.changelog,
            "components": [c for c, _ in a.components], "source_sha256": a.source_sha256,
            "registered": a.registered_at is not None}


def algorithms_json(items: list[Algorithm]) -> list[dict[str, Any]]:
    return [algorithm_json(a) for a in items]


def algorithms_text(items: list[Algorithm]) -> str:
    lines = []
    for a in items:
        where = "" if a.registered_at is not None else "  (shipped; registered in this store when it first scores)"
        lines.append(f"{a.label:<14} {a.algorithm_id}  {a.changelog}{where}")
        lines.append(f"{'':<14} params {json.dumps(a.params, sort_keys=True)}")
    return "\n".join(lines)


def export_json(e: Export) -> dict[str, Any]:
    return {"snapshot_id": e.snapshot_id, "content_hash": e.content_hash, "folder": str(e.folder),
            "interactions": e.interactions, "accounts": e.accounts, "files": e.files, "reused": e.reused}


def export_text(e: Export) -> str:
    verb = "reused" if e.reused else "exported"
    return (f"{verb} snapshot {e.snapshot_id} as Parquet in {e.folder}: {e.interactions:,} interactions, "
            f"{e.accounts:,} account rows (sha256 " + ", ".join(f"{n} {h[:12]}" for n, h in sorted(e.files.items()))
            + ")")


# ---------------------------------------------------------------- runs and scores

def run_json(r: Run) -> dict[str, Any]:
    return {"run_id": r.run_id, "snapshot_id": r.snapshot_id, "algorithm": r.algorithm,
            "algorithm_id": r.algorithm_id, "accounts": r.accounts, "result_hash": r.result_hash,
            "engine": r.engine, "engines": r.engines, "seconds": r.seconds, "counterfactual": r.counterfactual}


def engine_text(r: Run) -> str:
    """Which engine made a run: "" for the local one, else e.g. " on spark (local[2], 4 partitions)"."""
    if r.engine == "local":
        return ""
    where = ", ".join(x for x in (r.engines.get("master"), r.engines.get("partitions") and
                                  f"{r.engines['partitions']} partitions") if x)
    return f" on {r.engine}" + (f" ({where})" if where else "")


def scored_json(r: Run) -> dict[str, Any]:
    return run_json(r) | {"new": r.new}


def scored_text(r: Run) -> str:
    verb = "run" if r.new else "already scored: run"
    return (f"{verb} {r.run_id}: {plural(r.accounts, 'account')} of {r.snapshot_id} scored with "
            f"{r.algorithm}{engine_text(r)} in {r.seconds:.2f}s (result {r.result_hash[:12]})")


def runs_json(items: list[Run]) -> list[dict[str, Any]]:
    return [run_json(r) for r in items]


def runs_text(items: list[Run]) -> str:
    if not items:
        return 'no runs yet; "audit score latest network@3" makes one'
    lines = [f"{'run':<15} {'snapshot':<15} {'algorithm':<12} {'engine':<6} {'accounts':>9} {'seconds':>8}  note"]
    lines += [f"{r.run_id:<15} {r.snapshot_id:<15} {r.algorithm:<12} {r.engine:<6} {r.accounts:>9,} {r.seconds:>8.2f}"
              f"  {'counterfactual' if r.counterfactual else ''}".rstrip() for r in items]
    return "\n".join(lines)


def scores_json(df: pl.DataFrame) -> list[dict[str, Any]]:
    return df.to_dicts()


def scores_text(df: pl.DataFrame) -> str:
    return frame_text(df)


def missing_warnings(wanted: list[str], found: pl.DataFrame, where: str) -> list[str]:
    """One stderr line per account asked for (id or @handle) and not in FOUND (a frame with
    account_id and handle), `where` saying where it was not found ("is not in this run", ...)."""
    seen = set(found["account_id"].to_list())
    if "handle" in found.columns:
        seen |= {f"@{h}" for h in found["handle"].drop_nulls().to_list()}
    return [f"warning: account {m!r} {where}" for m in sorted(set(wanted) - seen)]


# ---------------------------------------------------------------- publications and history

def publication_json(p: Publication) -> dict[str, Any]:
    return {"publication_id": p.publication_id, "run_id": p.run_id, "period": p.period,
            "restates": p.restates, "published_at": p.published_at.isoformat()}


def published_json(p: Publication) -> dict[str, Any]:
    return publication_json(p) | {"new": p.new}


def published_text(p: Publication) -> str:
    if not p.new:
        return f"already published: {p.run_id} for {p.period} ({p.publication_id}); nothing new"
    if p.restates:
        return (f"restated {p.period}: {p.publication_id} publishes {p.run_id} beside {p.restates}, "
                "which stays as published")
    return f"published {p.run_id} for {p.period} as {p.publication_id}"


def publications_json(items: list[Publication]) -> list[dict[str, Any]]:
    return [publication_json(p) for p in items]


def publications_text(items: list[Publication]) -> str:
    if not items:
        return 'nothing published yet; "audit publish RUN --period P" publishes a run'
    lines = []
    for p in items:
        note = f"restates {p.restates}" if p.restates else ""
        lines.append(f"{p.publication_id}  {p.period:<12} {p.run_id}  {p.published_at.isoformat()}  {note}".rstrip())
    return "\n".join(lines)


def history_json(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{**r, "published_at": r["published_at"].isoformat()} for r in df.to_dicts()]


def history_text(df: pl.DataFrame) -> str:
    lines = []
    for account, rows in df.group_by("account_id", maintain_order=True):
        lines.append(f"account {named(account[0], rows['handle'][0] if 'handle' in rows.columns else None)}")
        for r in rows.iter_rows(named=True):
            mark = "*" if r["algorithm_changed"] else " "
            note = "superseded" if r["superseded"] else "restatement" if r["restatement"] else ""
            lines.append(f"  {r['period']:<12} {r['score']:6.1f}  rank {r['rank']:>7,}  {mark}{r['algorithm']:<12} "
                         f"{r['run_id']}  {note}".rstrip())
    return "\n".join(lines)
