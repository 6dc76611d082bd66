"""Facade: input batches and snapshots."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..progress import Step, quiet
from ..records import snapshots as snaps
from ..records.exports import Export
from ..records.exports import export_snapshot as export_to
from ..records.snapshots import Snapshot
from ..store.db import check_folder
from ._store import Store, is_path, reading, writing

if TYPE_CHECKING:
    from ..inputs.batches import IngestResult


def ingest(store: Store, path: str | Path, *, now: datetime, fmt: str = "auto",
           kind: str | None = None, step: Step = quiet, name: str | None = None) -> IngestResult:
    """Validate PATH and store it as one batch; the same content again is a no-op. `name` is
    the file name recorded for the batch when it is not PATH (a file uploaded to the service)."""
    from ..inputs.batches import file_sha256, find_by_file, prepare, store_batch  # not for reading snapshots
    if is_path(store):
        check_folder(store)                          # before minutes of reading and validating
    if (not is_path(store) or Path(store).exists()) and Path(path).is_file():
        with writing(store) as con:      # a writer: migrates a store of an older schema
            known = find_by_file(con, file_sha256(Path(path)))
        if known is not None:
            return dataclasses.replace(known, given=str(path))
    prep = prepare(path, fmt, kind, now, step)      # the store is not touched until this passed
    if name is not None:
        prep = dataclasses.replace(prep, parsed=dataclasses.replace(prep.parsed, path=Path(name)))
    with writing(store, create=True) as con:
        result = store_batch(con, prep, now, step)
    return result if result.new else dataclasses.replace(result, given=str(path))


def snapshot(store: Store, *, as_of: datetime | str, now: datetime, window: str | int | None = None,
             label: str | None = None) -> Snapshot:
    """Freeze the batches stored so far as of AS_OF, over WINDOW (e.g. "7d"; None: everything)."""
    instant = snaps.parse_instant(as_of) if isinstance(as_of, str) else as_of
    seconds = snaps.parse_window(window) if isinstance(window, str) or window is None else int(window)
    with writing(store) as con:
        return snaps.create(con, instant, seconds, label, now)


def snapshots(store: Store) -> list[Snapshot]:
    """Every snapshot, oldest as-of first."""
    with reading(store) as con:
        return snaps.list_all(con)


def get_snapshot(store: Store, ref: str) -> Snapshot:
    """One snapshot by id, unique prefix, or `latest`."""
    with reading(store) as con:
        return snaps.resolve(con, ref)


def export_snapshot(store: Store, snapshot: str, out: str | Path) -> Export:
    """Write SNAPSHOT's inputs as Parquet to OUT/<snapshot content hash>/ (files already there are
    reused when their recorded sha256 matches); what --engine spark reads."""
    with reading(store) as con:
        return export_to(con, snaps.resolve(con, snapshot), out)
