"""Verify the store: walk the hash chain, recompute every record's content hash from what the
store holds, and (with rerun) re-execute every run from its stored inputs and stored source.

A record kind registers a recompute function in RECOMPUTE; verify knows nothing else about it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from ..errors import AuditError
from ..inputs.batches import stored_rows
from ..progress import Step, quiet
from ..store.db import GENESIS, dicts, entry_hash
from ..store.recipes import (LOCAL, batch_hash, derived_definition, logged, publication_hash, result_hash, rows_digest,
                             run_hash, snapshot_definition, snapshot_hash)
from . import algorithms, features, gaming, publications, runs, snapshots

Recompute = Callable[[duckdb.DuckDBPyConnection, str], "str | None"]
RECOMPUTE: dict[str, Recompute] = {}
_HASH = re.compile(r"^[0-9a-f]{64}$")
TABLES: dict[str, str] = {"batch": "batch", "snapshot": "snapshot"}


@dataclass
class Verification:
    """The outcome of `verify`: ok when the chain and every content hash hold."""
    ok: bool
    entries: int
    head: str
    problems: list[dict] = field(default_factory=list)
    reran: int = 0
    notes: list[str] = field(default_factory=list)


def recompute_batch(con: duckdb.DuckDBPyConnection, batch_id: str) -> str | None:
    rows = dicts(con, "SELECT batch_id, file_sha256, source_name, format, batch_kind, rows, accounts, "
                      "validation, ingested_at, content_hash, min_ts, max_ts FROM batch WHERE batch_id = ?",
                 [batch_id])
    if not rows:
        return None
    r = rows[0]
    stored = stored_rows(con, batch_id, r["batch_kind"])
    digest = rows_digest(stored, r["batch_kind"])
    # Columns outside the logged hash must still agree with the rows: content_hash decides what a
    # later ingest takes for "already stored", min_ts/max_ts are shown.
    span = (stored["ts"].min(), stored["ts"].max()) if r["batch_kind"] == "interactions" else (None, None)
    if r["content_hash"] != digest or (r["min_ts"], r["max_ts"]) != span:
        return f"stored content_hash/min_ts/max_ts disagree with the rows of {batch_id}"
    meta = {k: r[k] for k in ("batch_id", "file_sha256", "source_name", "format", "batch_kind", "rows",
                              "accounts", "ingested_at")}
    return batch_hash(meta | {"validation": json.loads(r["validation"])}, digest)


def recompute_snapshot(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> str | None:
    rows = dicts(con, "SELECT as_of, window_seconds, batch_ids, interactions, accounts, content_hash, label, "
                      "created_at, accounts_rule, parent_id FROM snapshot WHERE snapshot_id = ?", [snapshot_id])
    if not rows:
        return None
    r = rows[0]
    if r["parent_id"] is not None:
        # a derived snapshot: its parent's content and its exclusion, recounted; its window is its parent's
        parent = dicts(con, "SELECT content_hash, as_of, window_seconds, batch_ids, accounts_rule FROM snapshot "
                            "WHERE snapshot_id = ?", [r["parent_id"]])
        if not parent:
            return f"its parent snapshot {r['parent_id']} is missing"
        p = parent[0]
        if (p["as_of"], p["window_seconds"], list(p["batch_ids"]), p["accounts_rule"]) != (
                r["as_of"], r["window_seconds"], list(r["batch_ids"]), r["accounts_rule"]):
            return f"its as-of, window, batches or accounts rule differ from its parent {r['parent_id']}"
        definition = derived_definition(p["content_hash"], snapshots.exclusion(con, snapshot_id))
        interactions, accounts = snapshots.count_inputs(con, r["as_of"], r["window_seconds"], list(r["batch_ids"]),
                                                        r["accounts_rule"], derived=snapshot_id)
    else:
        batches = con.execute("SELECT batch_id, content_hash FROM batch WHERE batch_id IN (SELECT unnest(?)) "
                              "ORDER BY batch_id", [r["batch_ids"]]).fetchall()
        definition = snapshot_definition(r["as_of"], r["window_seconds"], [tuple(b) for b in batches],
                                         r["accounts_rule"])
        interactions, accounts = snapshots.count_inputs(con, r["as_of"], r["window_seconds"], list(r["batch_ids"]),
                                                        r["accounts_rule"])
    content = snapshot_hash(definition, interactions, accounts)
    # The stored counts are what `audit snapshots` shows: they must be the recounted ones.
    if (r["interactions"], r["accounts"], r["content_hash"]) != (interactions, accounts, content):
        return f"stored interactions/accounts/content_hash disagree with a recount of {snapshot_id}"
    return logged(content, label=r["label"], created_at=r["created_at"])


def recompute_algorithm(con: duckdb.DuckDBPyConnection, algorithm_id: str) -> str | None:
    stored = algorithms.find(con, algorithm_id)
    if stored is None:
        return None
    derived = algorithms.from_source(stored.source, stored.label)   # what the stored source declares
    if (derived.name, derived.version, derived.description, derived.changelog, derived.components,
            derived.reasons, derived.algorithm_id) != (stored.name, stored.version, stored.description,
                                                       stored.changelog, stored.components, stored.reasons,
                                                       stored.algorithm_id) or stored.params != derived.params:
        return "fields differ from what the stored source declares"
    return logged(algorithms.content_hash(stored), registered_at=stored.registered_at)


def recompute_run(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    run = runs.find(con, run_id)
    if run is None:
        return None
    digest = result_hash(runs.stored_scores(con, run_id))
    content = run_hash(run.run_id, run.snapshot_id, run.algorithm_id, run.accounts, digest, run.engines,
                       run.seconds, run.counterfactual, run.engine)
    return logged(content, created_at=run.created_at, normalisation=runs.stored_normalisation(con, run_id))


# A run of another engine is re-executed on the local engine, the reference, and must agree with
# it this closely (the tolerance of issue 16); the shipped versions' Spark implementations agree
# bit for bit, which the note then says.
RAW_RTOL = 1e-9
SCORE_STEP = 0.1


def within_tolerance(local: pl.DataFrame, stored: pl.DataFrame) -> str | None:
    """None when two results of one snapshot agree as runs of different engines must: the same
    accounts, raw within RAW_RTOL relative, components likewise, scores equal to SCORE_STEP and
    identical ranks; otherwise what disagrees first."""
    if not local["account_id"].equals(stored["account_id"]):
        return "the accounts differ"
    values = [c for c in local.columns if c != "account_id" and c != "score"]
    for c in values:
        a, b = local[c].to_numpy(), stored[c].to_numpy()
        off = np.abs(a - b) > RAW_RTOL * np.maximum(np.abs(a), np.abs(b))
        if off.any():
            i = int(np.argmax(off))
            what = "raw" if c == "raw" else f"component {c}"
            return f"{what} of account {local['account_id'][i]}: {b[i]!r} vs {a[i]!r} locally"
    a, b = local["score"].to_numpy(), stored["score"].to_numpy()
    steps_a, steps_b = np.round(a / SCORE_STEP), np.round(b / SCORE_STEP)
    if (steps_a != steps_b).any():
        i = int(np.argmax(steps_a != steps_b))
        return f"score of account {local['account_id'][i]}: {b[i]:.1f} vs {a[i]:.1f} locally"
    rank_a = np.searchsorted(np.sort(-a), -a, side="left") + 1     # 1 + accounts scoring strictly higher
    rank_b = np.searchsorted(np.sort(-b), -b, side="left") + 1
    if (rank_a != rank_b).any():
        i = int(np.argmax(rank_a != rank_b))
        return f"rank of account {local['account_id'][i]}: {int(rank_b[i])} vs {int(rank_a[i])} locally"
    return None


def rerun(con: duckdb.DuckDBPyConnection, step: Step = quiet) -> tuple[list[dict], list[str], int]:
    """Re-execute every run from its stored inputs and stored source on the local engine; compare
    result hashes (a run of another engine: within the tolerance, saying so)."""
    problems, notes = [], []
    now_engines = runs.engines()
    every = runs.list_all(con)
    for run in every:
        step(f"re-running {run.run_id} ({run.algorithm})")
        snap, algorithm = snapshots.find(con, run.snapshot_id), algorithms.find(con, run.algorithm_id)
        if snap is None or algorithm is None:
            problems.append({"seq": None, "kind": "run", "record_id": run.run_id,
                             "problem": "its snapshot or algorithm is missing"})
            continue
        try:
            rows, norm = runs.compute(con, snap, algorithm)
            fresh = result_hash(rows)
        except AuditError as exc:
            problems.append({"seq": None, "kind": "run", "record_id": run.run_id, "problem": f"re-run failed: {exc}"})
            continue
        stored_norm = runs.stored_normalisation(con, run.run_id)
        local = run.engine == LOCAL
        if fresh != run.result_hash and not local:
            gap = within_tolerance(rows, runs.stored_scores(con, run.run_id))
            if gap is None:
                notes.append(f"run {run.run_id} ({run.engine}) re-executed on the local engine: within the "
                             f"tolerance (raw {RAW_RTOL:g} relative, scores to {SCORE_STEP}, the same ranks), "
                             "not bit for bit")
            else:
                problems.append({"seq": None, "kind": "run", "record_id": run.run_id,
                                 "problem": f"re-running {run.algorithm} ({run.engine} run) on {run.snapshot_id} "
                                            f"on the local engine differs beyond the tolerance: {gap}"})
        elif not local:
            notes.append(f"run {run.run_id} ({run.engine}) re-executed on the local engine: identical bit for bit")
        if norm != stored_norm and (local or not _close(norm, stored_norm)):
            problems.append({"seq": None, "kind": "run", "record_id": run.run_id,
                             "problem": f"re-running {run.algorithm} on {run.snapshot_id} gives normalisation "
                                        f"{norm}, stored {stored_norm}"})
        if fresh != run.result_hash and local:
            problems.append({"seq": None, "kind": "run", "record_id": run.run_id,
                             "problem": f"re-running {run.algorithm} on {run.snapshot_id} gives result "
                                        f"{fresh[:16]}, stored {run.result_hash[:16]}"})
        changed = sorted(k for k in now_engines if run.engines.get(k) != now_engines[k])
        if changed:
            notes.append(f"run {run.run_id} was computed under " + ", ".join(
                f"{k} {run.engines.get(k)}" for k in changed) + "; re-run under " + ", ".join(
                f"{k} {now_engines[k]}" for k in changed))
    return problems, notes, len(every)


def _close(a: dict | None, b: dict | None) -> bool:
    """Two normalisations equal up to RAW_RTOL (population statistics of results within it)."""
    if a is None or b is None or sorted(a) != sorted(b):
        return a == b
    return all(isinstance(a[k], (int, float)) and isinstance(b[k], (int, float))
               and abs(a[k] - b[k]) <= RAW_RTOL * max(abs(a[k]), abs(b[k])) for k in a)


def recompute_publication(con: duckdb.DuckDBPyConnection, publication_id: str) -> str | None:
    pub = publications.find(con, publication_id)
    if pub is None:
        return None
    return publication_hash(pub.run_id, pub.period, pub.restates, pub.published_at)


RECOMPUTE.update(batch=recompute_batch, snapshot=recompute_snapshot, algorithm=recompute_algorithm,
                 run=recompute_run, publication=recompute_publication, detector=gaming.recompute_detector,
                 gaming=gaming.recompute, features=features.recompute)
TABLES.update(algorithm="algorithm", run="run", publication="publication", detector="detector", gaming="gaming",
              features="features")


def verify_log(con: duckdb.DuckDBPyConnection, step: Step = quiet) -> Verification:
    """Check the chain link by link, then each record's content, then that no record is unlogged."""
    entries = dicts(con, "SELECT seq, record_kind, record_id, content_hash, prev_hash, entry_hash, logged_at "
                         "FROM log ORDER BY seq")
    problems: list[dict] = []
    prev = GENESIS
    for e in entries:
        kind, record_id = e["record_kind"], e["record_id"]
        where = {"seq": e["seq"], "kind": kind, "record_id": record_id}
        if e["prev_hash"] != prev:
            problems.append({**where, "problem": "log entry does not link to the previous entry"})
        if entry_hash(e["seq"], kind, record_id, e["content_hash"], e["prev_hash"], e["logged_at"]) != e["entry_hash"]:
            problems.append({**where, "problem": "log entry hash does not match its fields"})
        prev = e["entry_hash"]
        step(f"{kind} {record_id}")
        recompute = RECOMPUTE.get(kind)
        if recompute is None:
            problems.append({**where, "problem": f"unknown record kind {kind!r}"})
            continue
        try:
            found = recompute(con, record_id)
        except AuditError as exc:           # e.g. stored source that no longer loads
            found = f"cannot be recomputed: {exc}"
        changed = f"{kind} {record_id} changed after it was stored"
        if found is None:
            problems.append({**where, "problem": f"{kind} {record_id} is missing from the store"})
        elif not _HASH.match(found):        # a recompute function names what disagrees
            problems.append({**where, "problem": f"{changed}: {found}"})
        elif found != e["content_hash"]:
            problems.append({**where, "problem": f"{changed} (its content hash no longer matches the log)"})
    for kind, table in sorted(TABLES.items()):
        # table names come from TABLES (code), never from input
        unlogged = con.execute(
            f"SELECT {table}_id FROM {table} WHERE {table}_id NOT IN "
            f"(SELECT record_id FROM log WHERE record_kind = ?) ORDER BY 1", [kind]).fetchall()
        problems += [{"seq": None, "kind": kind, "record_id": r[0],
                      "problem": f"{kind} {r[0]} is in the store but not in the log"} for r in unlogged]
    head = entries[-1]["entry_hash"] if entries else GENESIS
    return Verification(ok=not problems, entries=len(entries), head=head, problems=problems)


def verify(con: duckdb.DuckDBPyConnection, *, rerun_runs: bool = False, step: Step = quiet) -> Verification:
    """The log and every content hash; with rerun_runs, every run re-executed as well, its
    problems and notes merged into the one result."""
    result = verify_log(con, step)
    if rerun_runs:
        problems, notes, count = rerun(con, step)
        problems += gaming.rerun(con, step)[0]
        problems += features.rerun(con, step)[0]
        result.problems += problems
        result.notes += notes
        result.reran = count
        result.ok = not result.problems
    return result
