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
    generation: int = 0                 # write jobs finished: every answer below is of one generation
    answers: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    answers_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, store_path: Path, con: duckdb.DuckDBPyConnection, settings: Settings) -> Service:
        cache = PublishedCache(con, max_runs=settings.cache_runs)
        service: list[Service] = []

        def after(job: Job) -> None:
            s = service[0]
            with s.answers_lock:
                s.generation += 1
                s.answers.clear()
            if job.state == "done":
                cache.refresh()
                cache.warm()
        service.append(cls(store_path, con, settings, cache, Jobs(con, settings.clock, after)))
        return service[0]

    def remembered(self, key: tuple, make: Callable[[], Any]) -> Any:
        """An answer computed from stored records, kept until the next write job: only this
        process writes the store, so nothing else can change what it was computed from."""
        with self.answers_lock:
            key = (self.generation, *key)
            if key in self.answers:
                self.answers.move_to_end(key)
                return self.answers[key]
        value = make()
        with self.answers_lock:
            if key[0] == self.generation:
                self.answers[key] = value
                while len(self.answers) > ANSWERS:
                    self.answers.popitem(last=False)
        return value

    def stop(self) -> None:
        self.jobs.stop()


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
