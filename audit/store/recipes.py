"""Hash recipes: the content hash of every kind of stored record, computed the same way when the
record is written and when `verify` recomputes it from what the store holds. Each recipe takes
plain values and frames; ids are short prefixes of these hashes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from .hashing import as_utc, frame_digest, sha256_json, sha256_text, short_id

INTERACTION_KEY = ["ts", "source", "target", "kind", "weight", "topic", "event_id"]
ACCOUNT_KEY = ["account_id", "handle", "followers", "following", "created_at"]


def rows_digest(rows: pl.DataFrame, batch_kind: str) -> str:
    """Digest of a batch's rows in canonical order (identical rows are kept and counted)."""
    key = INTERACTION_KEY if batch_kind == "interactions" else ACCOUNT_KEY
    # The sort order as row positions; frame_digest then gathers one column at a time, so a
    # sorted copy of the whole batch never exists at once.
    order = rows.select(pl.arg_sort_by(key, nulls_last=True, maintain_order=True)).to_series()
    return frame_digest(rows.select(key), order)


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
    if sorted(meta) != sorted(BATCH_FIELDS):
        raise ValueError(f"a batch record has the fields {sorted(BATCH_FIELDS)}, not {sorted(meta)}")
    return sha256_json({"meta": meta, "rows": digest})


def snapshot_definition(as_of: datetime, window_seconds: int | None, batches: list[tuple[str, str]],
                        accounts_rule: int | None) -> dict[str, Any]:
    """What a snapshot is: the as-of instant, the window, the content hashes of its batches, and
    (from rule 2 on) which delivered accounts it takes."""
    definition = {"as_of": as_of.isoformat(), "window_seconds": window_seconds,
                  "batches": [list(b) for b in sorted(batches)]}
    if accounts_rule is not None:
        definition["accounts_rule"] = accounts_rule
    return definition


def snapshot_hash(definition: dict[str, Any], interactions: int, accounts: int) -> str:
    return sha256_json({"definition": definition, "interactions": interactions, "accounts": accounts})


def algorithm_hash(name: str, version: int, source: str, params: dict[str, Any]) -> str:
    """An algorithm version: its name@version, the sha256 of its source text and of its parameters."""
    return sha256_json({"name": name, "version": version, "source_sha256": sha256_text(source),
                        "params_sha256": sha256_json(params)})


LOCAL = "local"     # the reference engine; the one every run before schema migration 6 used


def run_id_for(snapshot_hash: str, algorithm_hash: str, engine: str = LOCAL) -> str:
    """A run is named by what it computes: the snapshot's and the algorithm's content hashes, and
    the engine when it is not the local one (so local run ids are what they always were)."""
    named = {"snapshot": snapshot_hash, "algorithm": algorithm_hash}
    return short_id("r", sha256_json(named if engine == LOCAL else named | {"engine": engine}))


def run_hash(run_id: str, snapshot_id: str, algorithm_id: str, accounts: int, result: str,
             engine_versions: dict[str, Any], seconds: float, counterfactual: bool, engine: str = LOCAL) -> str:
    """A run record (its scores enter through the result hash; its engine when not local)."""
    content = {"run_id": run_id, "snapshot_id": snapshot_id, "algorithm_id": algorithm_id,
               "accounts": accounts, "result_hash": result, "engines": engine_versions,
               "seconds": seconds, "counterfactual": counterfactual}
    return sha256_json(content if engine == LOCAL else content | {"engine": engine})


def result_hash(stored: pl.DataFrame) -> str:
    """A run's score rows in account order: account_id, raw, score, then the components c_0.."""
    return frame_digest(stored)


def publication_hash(run_id: str, period: str, restates: str | None, published_at: datetime) -> str:
    """A publication: which run, for which period, what it restates and when."""
    return sha256_json({"run_id": run_id, "period": period, "restates": restates,
                        "published_at": published_at.isoformat()})


def derived_definition(parent_hash: str, parts: list[list[str]]) -> dict[str, Any]:
    """A derived snapshot: its parent's content hash and the parts of accounts whose interactions
    with each other it leaves out (each part sorted, parts in order of their first account)."""
    return {"parent": parent_hash, "leave_out_within": [sorted(p) for p in sorted(parts, key=min)]}


def detector_hash(name: str, version: int, source: str, params: dict[str, Any]) -> str:
    """A gaming detector version: its name@version, the sha256 of its source text and of its parameters
    (tagged, so that a detector never shares an id with an algorithm of the same text)."""
    return sha256_json({"detector": name, "version": version, "source_sha256": sha256_text(source),
                        "params_sha256": sha256_json(params)})


def gaming_id_for(run_hash_: str, detector_hash_: str) -> str:
    """A gaming audit is named by what it examines: the run's and the detector's content hashes."""
    return short_id("g", sha256_json({"run": run_hash_, "detector": detector_hash_}))


def gaming_hash(gaming_id: str, run_id: str, detector_id: str, snapshot_id: str | None,
                counterfactual_run_id: str | None, groups: int, flagged: int, groups_digest: str,
                findings_digest: str, seconds: float) -> str:
    """A gaming audit record (its groups, members and findings enter through their digests)."""
    return sha256_json({"gaming_id": gaming_id, "run_id": run_id, "detector_id": detector_id,
                        "snapshot_id": snapshot_id, "counterfactual_run_id": counterfactual_run_id,
                        "groups": groups, "flagged": flagged, "groups_hash": groups_digest,
                        "findings_hash": findings_digest, "seconds": seconds})


def groups_digest(groups: pl.DataFrame, members: pl.DataFrame) -> str:
    """The groups (number, pattern, size, evidence as canonical JSON) and their members, in order."""
    return sha256_json({"groups": frame_digest(groups), "members": frame_digest(members)})


def findings_digest(findings: pl.DataFrame) -> str:
    """The findings in order: account, group, pattern, score, score without the group, points."""
    return frame_digest(findings)


FEATURES_RECIPE = 1     # the definitions of the derived features (schema migration 9)


def features_id_for(snapshot_hash_: str, recipe: int) -> str:
    """Derived features are named by what they derive from: the snapshot's content hash and the recipe."""
    return short_id("f", sha256_json({"features": snapshot_hash_, "recipe": recipe}))


def features_digest(accounts: pl.DataFrame, out: pl.DataFrame) -> str:
    """The feature rows in order: per account, then per (account, kind, sign)."""
    return sha256_json({"accounts": frame_digest(accounts), "out": frame_digest(out)})


def features_hash(features_id: str, snapshot_id: str, recipe: int, accounts: int, out_rows: int,
                  rows_digest_: str) -> str:
    """A derived-features record (its rows enter through their digest)."""
    return sha256_json({"features_id": features_id, "snapshot_id": snapshot_id, "recipe": recipe,
                        "accounts": accounts, "out_rows": out_rows, "rows_hash": rows_digest_})
