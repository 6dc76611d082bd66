"""Gaming detector versions: the algorithm registry's model for detectors. A detector version is a
self-contained module stored with its parameters (`name@version`, id `d_` + the hash of source and
parameters), executed only from its stored text after its sha256 matches the registration, so a
flag can be recomputed and audited later. Stored source never changes: a change is a new version.

The shipped versions live in `audit.detectors` and are registered from there on first use.
"""
from __future__ import annotations

import json
import types
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import duckdb

from ..detectors import DEFAULT  # noqa: F401  (the default version, also read as records.detectors.DEFAULT)
from ..errors import AuditError, NotFound
from ..store.db import append_log, dicts, required
from ..store.hashing import canonical_json, sha256_json, sha256_text, short_id
from ..store.recipes import detector_hash, logged
from . import stored_source

SHIPPED = {"rings@1": "rings_v1.py"}
REQUIRED = ("NAME", "VERSION", "DESCRIPTION", "CHANGELOG", "PARAMS", "detect")


@dataclass(frozen=True)
class Detector:
    """A registered detector version as stored."""
    detector_id: str
    content_hash: str
    name: str
    version: int
    description: str
    changelog: str
    params: dict[str, Any]
    source: str
    source_sha256: str
    registered_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def load_module(source: str, label: str) -> types.ModuleType:
    """Execute module source in a fresh namespace and check it declares the contract."""
    return stored_source.load_module(source, label, kind="detector", required=REQUIRED, contract="the gaming audit")


def from_source(source: str, origin: str) -> Detector:
    """The Detector a module's source text declares (not yet stored)."""
    module = load_module(source, origin)
    name, version, params = stored_source.declared(module, origin, "rings")
    content = detector_hash(name, version, source, params)
    return Detector(detector_id=short_id("d", content), content_hash=content, name=name, version=version,
                    description=str(module.DESCRIPTION).strip(), changelog=str(module.CHANGELOG).strip(),
                    params=params, source=source, source_sha256=sha256_text(source))


def content_hash(d: Detector) -> str:
    """The content hash of a version as its stored fields give it (verify recomputes it)."""
    return detector_hash(d.name, d.version, d.source, d.params)


_COLUMNS = ("detector_id, content_hash, name, version, description, changelog, params, source, source_sha256, "
            "registered_at")


def _detector(row: dict) -> Detector:
    return Detector(**{**row, "params": json.loads(row["params"])})


def find(con: duckdb.DuckDBPyConnection, detector_id: str) -> Detector | None:
    """The version with this exact id, or None."""
    rows = dicts(con, f"SELECT {_COLUMNS} FROM detector WHERE detector_id = ?", [detector_id])
    return _detector(rows[0]) if rows else None


def get(con: duckdb.DuckDBPyConnection, detector_id: str) -> Detector:
    """The version with this exact id; NotFound when the store does not hold it."""
    return required(find(con, detector_id), "detector", detector_id, "audit gaming --help")


def register(con: duckdb.DuckDBPyConnection, candidate: Detector, now: datetime) -> tuple[Detector, bool]:
    """Store a version; the same one again is a no-op, changed source under its name@version is refused."""
    rows = dicts(con, f"SELECT {_COLUMNS} FROM detector WHERE name = ? AND version = ?",
                 [candidate.name, candidate.version])
    if rows:
        stored = _detector(rows[0])
        if stored.content_hash == candidate.content_hash:
            return stored, False
        raise AuditError(f"detector {candidate.label} is already registered with other source or parameters "
                         f"({stored.detector_id}); stored versions never change: bump VERSION")
    con.execute(f"INSERT INTO detector ({_COLUMNS}, params_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        candidate.detector_id, candidate.content_hash, candidate.name, candidate.version, candidate.description,
        candidate.changelog, canonical_json(candidate.params), candidate.source, candidate.source_sha256, now,
        sha256_json(candidate.params)])
    append_log(con, "detector", candidate.detector_id, logged(candidate.content_hash, registered_at=now), now)
    return get(con, candidate.detector_id), True


def shipped_source(label: str) -> str:
    """The source text of a shipped version, as installed (what registering it stores)."""
    return resources.files("audit.detectors").joinpath(SHIPPED[label]).read_text(encoding="utf-8")


def resolve(con: duckdb.DuckDBPyConnection, ref: str, now: datetime | None) -> Detector:
    """`name@version` or a `d_` id prefix. A shipped version is registered on first use (needs `now`)."""
    name, sep, version = ref.partition("@")
    if sep:
        rows = dicts(con, f"SELECT {_COLUMNS} FROM detector WHERE name = ? AND version = ?",
                     [name, int(version) if version.isdigit() else -1])
        if rows:
            return _detector(rows[0])
        if ref in SHIPPED and now is not None:
            return register(con, from_source(shipped_source(ref), ref), now)[0]
    else:
        rows = dicts(con, f"SELECT {_COLUMNS} FROM detector WHERE starts_with(detector_id, ?) "
                          "ORDER BY detector_id LIMIT 2", [ref])
        if len(rows) == 1:
            return _detector(rows[0])
    raise NotFound(f'detector "{ref}" is not registered; shipped: {", ".join(SHIPPED)}')


def find_by_label(con: duckdb.DuckDBPyConnection, ref: str) -> Detector | None:
    """A registered version by name@version or exact id, or None (registers nothing)."""
    name, sep, version = ref.partition("@")
    if sep:
        rows = dicts(con, f"SELECT {_COLUMNS} FROM detector WHERE name = ? AND version = ?",
                     [name, int(version) if version.isdigit() else -1])
        return _detector(rows[0]) if rows else None
    return find(con, ref)


def verified_module(d: Detector) -> types.ModuleType:
    """The stored source, loaded only after its hash matches the registration and the stored parameters
    are the ones registered and declared by that source."""
    module = load_module(d.source, d.label)
    stored_source.check_stored(kind="detector", label=d.label, record_id=d.detector_id, source=d.source,
                               source_sha256=d.source_sha256, hash_ok=content_hash(d) == d.content_hash,
                               module_params=module.PARAMS, params=d.params)
    return module
