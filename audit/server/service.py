"""The state one service process holds: its one connection to the store, the published scores
in memory, the job worker, the token and the limits. Routes reach it through `service(request)`.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
from fastapi import Request

from ..errors import AuditError, InvalidArgument, NotComputed, NotFound, StoreBusy, ValidationError
from .cache import PublishedCache
from .jobs import Job, Jobs

MAX_TEXT = 256              # an id, handle, period or release longer than this is malformed
BULK_LIMIT = 10_000         # accounts in one bulk lookup
BODY_LIMIT = 2 << 20        # bytes of a JSON request body
UPLOAD_LIMIT = 1 << 30      # bytes of a file uploaded to an ingest job
ANSWERS = 4096              # explanations and pages kept between write jobs
OPS = ("ingest", "snapshot", "score", "publish", "explain")     # what a write job does


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Settings:
    token: str | None = None            # None: every write is refused (403)
    ingest_root: Path | None = None     # server-side files an ingest job may name
    body_limit: int = BODY_LIMIT
    upload_limit: int = UPLOAD_LIMIT
    cache_runs: int = 16
    clock: Callable[[], datetime] = utc_now


@dataclass
class Service:
    store_path: Path
    con: duckdb.DuckDBPyConnection
    settings: Settings
    cache: PublishedCache
    jobs: Jobs
    writes: dict[str, int] = field(default_factory=dict)     # write jobs done, by operation
    answers: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    answers_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, store_path: Path, con: duckdb.DuckDBPyConnection, settings: Settings) -> Service:
        cache = PublishedCache(con, max_runs=settings.cache_runs)
        service: list[Service] = []

        def after(job: Job) -> None:
            if job.state != "done":             # a failed job stored nothing
                return
            s = service[0]
            with s.answers_lock:
                s.writes[job.op] = s.writes.get(job.op, 0) + 1
            cache.refresh()
            cache.warm()
        service.append(cls(store_path, con, settings, cache, Jobs(con, settings.clock, after)))
        return service[0]

    def stop(self) -> None:
        self.jobs.stop()

    def recall(self, key: tuple, depends: tuple[str, ...] = OPS) -> Any:
        """The answer remembered under KEY (see remembered), or None."""
        with self.answers_lock:
            return self.answers.get((tuple(self.writes.get(op, 0) for op in depends), *key))

    def remembered(self, key: tuple, make: Callable[[], Any], depends: tuple[str, ...] = OPS) -> Any:
        """An answer computed from stored records, kept until a write job of one of the
        operations it `depends` on is done: only this process writes the store, so nothing else
        can change what it was computed from. Answers that fail are not kept."""
        with self.answers_lock:
            key = (tuple(self.writes.get(op, 0) for op in depends), *key)
            if key in self.answers:
                self.answers.move_to_end(key)
                return self.answers[key]
        value = make()
        with self.answers_lock:
            if key[0] == tuple(self.writes.get(op, 0) for op in depends):
                self.answers[key] = value
                while len(self.answers) > ANSWERS:
                    self.answers.popitem(last=False)
        return value


_FULL_RUN = re.compile(r"r_[0-9a-f]{12}")
_RUN_PREFIX = re.compile(r"r(_[0-9a-f]{0,11})?")


def depends_on(*run_refs: str | None, account: str | None = None) -> tuple[str, ...]:
    """The write operations that can change what run refs (a full run id: none; a period: a
    publication; a prefix or `latest`: any new run too) and an account ref (a handle: an
    ingest of accounts) resolve to."""
    out: set[str] = set()
    for ref in run_refs:
        if ref is None or _FULL_RUN.fullmatch(ref):
            continue
        out.add("publish")
        if ref == "latest" or _RUN_PREFIX.fullmatch(ref):
            out.update(("score", "explain"))
    if account is not None and account.startswith("@"):
        out.add("ingest")
    return tuple(op for op in OPS if op in out)


def service(request: Request) -> Service:
    return request.app.state.service


# The one mapping of the error family to HTTP: a 500 is a defect, never an answer.
STATUS: tuple[tuple[type[AuditError], int], ...] = (
    (NotFound, 404), (NotComputed, 409), (StoreBusy, 503), (InvalidArgument, 422), (ValidationError, 422),
    (AuditError, 400))


def status_of(exc: AuditError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text(value: str | None, what: str) -> str | None:
    """A user-given id, handle, period or label: refused (422) when empty, over MAX_TEXT
    characters, or holding control characters (NUL included)."""
    if value is None:
        return None
    if not value or len(value) > MAX_TEXT or _CONTROL.search(value):
        shown = value[:40] + ("..." if len(value) > 40 else "")
        raise InvalidArgument(f"{what} {shown!r} is malformed: 1 to {MAX_TEXT} characters, no control characters")
    return value
