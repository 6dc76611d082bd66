"""Gaming detector versions: the algorithm registry's model for detectors. A detector version is a
self-contained module stored with its parameters (`name@version`, id `d_` + the hash of source and
parameters), executed only from its stored text after its sha256 matches the registration, so a
flag can be recomputed and audited later. Stored source never changes: a change is a new version.

The shipped versions live in `audit.detectors` and are registered from there on first use.
"""
from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import duckdb

from ..errors import AuditError, NotFound
from ..store.db import append_log, dicts, required
from ..store.hashing import canonical_json, sha256_json, sha256_text, short_id
from ..store.recipes import detector_hash, logged

SHIPPED = {"rings@1": "rings_v1.py"}
DEFAULT = "rings@1"
REQUIRED = ("NAME", "VERSION", "DESCRIPTION", "CHANGELOG", "PARAMS", "detect")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


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
    """Execute detector source in a fresh namespace and check it declares the contract."""
    module = types.ModuleType(f"audit_detector_{re.sub(r'[^a-z0-9]', '_', label.lower())}")
    try:
        exec(compile(source, f"<detector {label}>", "exec"), module.__dict__)
    except Exception as exc:
        raise AuditError(f"detector {label}: its source fails to load: {type(exc).__name__}: {exc}") from None
    missing = [n for n in REQUIRED if not hasattr(module, n)]
    if missing:
        raise AuditError(f"detector {label}: the module lacks {', '.join(missing)}; "
                         "see the gaming audit in the README")
    return module


def from_source(source: str, origin: str) -> Detector:
    """The Detector a module's source text declares (not yet stored)."""
    module = load_module(source, origin)
    name, version = module.NAME, module.VERSION
    if not isinstance(name, str) or not _NAME.match(name):
        raise AuditError(f"{origin}: NAME must be a lowercase identifier like 'rings', not {name!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AuditError(f"{origin}: VERSION must be a positive integer, not {version!r}")
    try:
        params = json.loads(canonical_json(module.PARAMS))
    except (TypeError, ValueError) as exc:
        raise AuditError(f"{origin}: PARAMS must be JSON-able ({exc})") from None
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
    if sha256_text(d.source) != d.source_sha256:
        raise AuditError(f"detector {d.label} ({d.detector_id}): stored source does not match its registered "
                         "sha256; refusing to run it (audit verify names the change)")
    module = load_module(d.source, d.label)
    if content_hash(d) != d.content_hash or json.loads(canonical_json(module.PARAMS)) != d.params:
        raise AuditError(f"detector {d.label} ({d.detector_id}): stored parameters do not match its "
                         "registration; refusing to run it (audit verify names the change)")
    return module
