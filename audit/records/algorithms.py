"""Algorithm versions: register a module's source into the store, and execute stored source.

Trust boundary: only source that was registered into the store is executed, and only after
its sha256 matches the one recorded at registration. The shipped versions live as
self-contained modules in `audit.algorithms` and are registered from there on first use.
"""
from __future__ import annotations

import functools
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
from ..store.recipes import algorithm_hash, logged
from . import stored_source

SHIPPED = {"activity@1": "activity_v1.py", "activity@2": "activity_v2.py", "network@2": "network_v2.py",
           "network@3": "network_v3.py", "topics@1": "topics_v1.py"}
REQUIRED = ("NAME", "VERSION", "DESCRIPTION", "CHANGELOG", "PARAMS", "COMPONENTS", "score")


@dataclass(frozen=True)
class Algorithm:
    """A registered algorithm version as stored."""
    algorithm_id: str
    content_hash: str
    name: str
    version: int
    description: str
    changelog: str
    params: dict[str, Any]
    source: str
    source_sha256: str
    components: tuple[tuple[str, str], ...]
    reasons: dict[str, str]
    registered_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def by_topic(self) -> bool:
        """Whether the version scores (account, topic) pairs (its module declares DIMENSION = "topic")."""
        return _declares_topics(self.source_sha256, self.source)


_TOPIC_DIMENSION = re.compile(r'^DIMENSION\s*=\s*["\']topic["\']\s*(#.*)?$', re.MULTILINE)


@functools.lru_cache(maxsize=256)
def _declares_topics(source_sha256: str, source: str) -> bool:
    # read from the text, not by executing it: reads must not run stored source (the output
    # contract checks the declared shape when a run executes it)
    return bool(_TOPIC_DIMENSION.search(source))


def load_module(source: str, label: str) -> types.ModuleType:
    """Execute module source in a fresh namespace and check it declares the contract."""
    return stored_source.load_module(source, label, kind="algorithm", required=REQUIRED, contract="the algorithm contract")


def from_source(source: str, origin: str) -> Algorithm:
    """The Algorithm a module's source text declares (not yet stored)."""
    module = load_module(source, origin)
    name, version, params = stored_source.declared(module, origin, "network")
    source_sha, content = sha256_text(source), algorithm_hash(name, version, source, params)
    return Algorithm(
        algorithm_id=short_id("a", content), content_hash=content, name=name, version=version,
        description=str(module.DESCRIPTION).strip(), changelog=str(module.CHANGELOG).strip(), params=params,
        source=source, source_sha256=source_sha,
        components=tuple((str(k), str(v)) for k, v in dict(module.COMPONENTS).items()),
        reasons={str(k): str(v) for k, v in dict(getattr(module, "REASONS", {})).items()})


def content_hash(a: Algorithm) -> str:
    """The content hash of a version as its stored fields give it (verify recomputes it)."""
    return algorithm_hash(a.name, a.version, a.source, a.params)


_COLUMNS = ("algorithm_id, content_hash, name, version, description, changelog, params, source, "
            "source_sha256, components, reasons, registered_at")


def _algorithm(row: dict) -> Algorithm:
    return Algorithm(**{**row, "params": json.loads(row["params"]),
                        "components": tuple(tuple(c) for c in json.loads(row["components"])),
                        "reasons": json.loads(row["reasons"])})


def find(con: duckdb.DuckDBPyConnection, algorithm_id: str) -> Algorithm | None:
    """The version with this exact id, or None."""
    rows = dicts(con, f"SELECT {_COLUMNS} FROM algorithm WHERE algorithm_id = ?", [algorithm_id])
    return _algorithm(rows[0]) if rows else None


def get(con: duckdb.DuckDBPyConnection, algorithm_id: str) -> Algorithm:
    """The version with this exact id; NotFound when the store does not hold it."""
    return required(find(con, algorithm_id), "algorithm", algorithm_id, "audit algorithms")


def list_all(con: duckdb.DuckDBPyConnection) -> list[Algorithm]:
    """Every registered version, by name and version."""
    return [_algorithm(r) for r in dicts(con, f"SELECT {_COLUMNS} FROM algorithm ORDER BY name, version")]


def register(con: duckdb.DuckDBPyConnection, candidate: Algorithm, now: datetime) -> tuple[Algorithm, bool]:
    """Store a version; the same one again is a no-op, changed source under its name@version is refused."""
    rows = dicts(con, f"SELECT {_COLUMNS} FROM algorithm WHERE name = ? AND version = ?",
                 [candidate.name, candidate.version])
    if rows:
        stored = _algorithm(rows[0])
        if stored.content_hash == candidate.content_hash:
            return stored, False
        what = "source" if stored.source_sha256 != candidate.source_sha256 else "parameters"
        raise AuditError(f"{candidate.label} is already registered with different {what} "
                         f"({stored.algorithm_id}); stored versions never change: bump VERSION "
                         f"(e.g. {candidate.name}@{candidate.version + 1}) to register the new one")
    con.execute("INSERT INTO algorithm VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        candidate.algorithm_id, candidate.content_hash, candidate.name, candidate.version,
        candidate.description, candidate.changelog, canonical_json(candidate.params),
        sha256_json(candidate.params), candidate.source,
        candidate.source_sha256, json.dumps([list(c) for c in candidate.components]),
        json.dumps(candidate.reasons, sort_keys=True), now])
    append_log(con, "algorithm", candidate.algorithm_id, logged(candidate.content_hash, registered_at=now), now)
    return get(con, candidate.algorithm_id), True


def shipped_source(label: str) -> str:
    """The source text of a shipped version, as installed (what registering it stores)."""
    return resources.files("audit.algorithms").joinpath(SHIPPED[label]).read_text(encoding="utf-8")


def resolve(con: duckdb.DuckDBPyConnection, ref: str, now: datetime | None) -> Algorithm:
    """`name@version`, or an `a_` id prefix. A shipped version is registered on first use (needs `now`)."""
    if "@" in ref:
        name, _, version = ref.partition("@")
        rows = dicts(con, f"SELECT {_COLUMNS} FROM algorithm WHERE name = ? AND version = ?",
                     [name, int(version) if version.isdigit() else -1])
        if rows:
            return _algorithm(rows[0])
        if ref in SHIPPED and now is not None:
            return register(con, from_source(shipped_source(ref), ref), now)[0]
        raise NotFound(f'algorithm "{ref}" is not registered; "audit algorithms" lists them, '
                       f"shipped: {', '.join(SHIPPED)}")
    rows = dicts(con, f"SELECT {_COLUMNS} FROM algorithm WHERE starts_with(algorithm_id, ?) "
                      "ORDER BY algorithm_id LIMIT 2", [ref])
    if len(rows) != 1:
        raise NotFound(f'algorithm "{ref}" {"is ambiguous" if rows else "not found"}; '
                       'give NAME@VERSION, e.g. network@2 ("audit algorithms" lists them)')
    return _algorithm(rows[0])


def verified_module(a: Algorithm) -> types.ModuleType:
    """The stored source, loaded only after its hash matches the registration, and only when the stored
    parameters (which the run is given) are the ones registered and declared by that source."""
    module = load_module(a.source, a.label)
    stored_source.check_stored(kind="algorithm", label=a.label, record_id=a.algorithm_id, source=a.source,
                               source_sha256=a.source_sha256, hash_ok=content_hash(a) == a.content_hash,
                               module_params=module.PARAMS, params=a.params)
    return module
