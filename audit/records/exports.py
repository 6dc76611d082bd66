"""Snapshot exports: a snapshot's inputs as Parquet, in a folder named by the snapshot's content hash.

The files hold exactly the rows `snapshots.load_inputs` gives an algorithm, in the same order.
A manifest records the sha256 of each file; files already in the folder are reused only when
the manifest names this snapshot and every file's sha256 still matches it, otherwise the folder
is written again. Exports are a cache beside the store, not records: nothing here writes to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..errors import AuditError
from ..store.db import dicts
from .snapshots import Snapshot, load_inputs

FILES = ("interactions.parquet", "accounts.parquet")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Export:
    """A snapshot's inputs on disk as Parquet."""
    snapshot_id: str
    content_hash: str
    folder: Path
    interactions: int
    accounts: int
    files: dict[str, str]       # file name -> sha256 of its bytes
    reused: bool


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reusable(folder: Path, content_hash: str) -> dict | None:
    """The manifest of FOLDER when it names this snapshot and every file still has its recorded hash."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("content_hash") != content_hash or not isinstance(files, dict) or sorted(files) != sorted(FILES):
        return None
    for name, sha in files.items():
        path = folder / name
        if not path.is_file() or file_sha256(path) != sha:
            return None
    return manifest


def export_snapshot(con: duckdb.DuckDBPyConnection, snap: Snapshot, root: str | Path) -> Export:
    """Write (or reuse) ROOT/<snapshot content hash>/ with the snapshot's interactions and accounts."""
    content_hash = dicts(con, "SELECT content_hash FROM snapshot WHERE snapshot_id = ?",
                         [snap.snapshot_id])[0]["content_hash"]
    root = Path(root)
    folder = root / content_hash
    manifest = _reusable(folder, content_hash)
    reused = manifest is not None
    if manifest is None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditError(f'cannot write exports under "{root}": {exc.strerror}') from None
        interactions, accounts = load_inputs(con, snap)
        partial = root / f".{content_hash}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        interactions.write_parquet(partial / FILES[0])
        accounts.write_parquet(partial / FILES[1])
        manifest = {"snapshot_id": snap.snapshot_id, "content_hash": content_hash,
                    "interactions": interactions.height, "accounts": accounts.height,
                    "files": {name: file_sha256(partial / name) for name in FILES}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)     # a stale or tampered export of the same snapshot
        partial.rename(folder)
    return Export(snapshot_id=snap.snapshot_id, content_hash=content_hash, folder=folder,
                  interactions=manifest["interactions"], accounts=manifest["accounts"],
                  files=dict(manifest["files"]), reused=reused)
