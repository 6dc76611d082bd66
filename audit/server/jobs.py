"""Write jobs: one worker thread runs them one at a time, each through the same facade function
(and so the same validation and the one transaction) as the CLI command of the same name.

A job's result is that command's `--json` document; a failed job records the command's error
message, and its transaction stored nothing. Jobs live in memory (the last KEEP of them).
"""
from __future__ import annotations

import queue
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from .. import api, present
from ..errors import AuditError

KEEP = 1000

Clock = Callable[[], datetime]


@dataclass
class Job:
    """One write job and what became of it."""
    job_id: str
    op: str
    args: dict[str, Any]
    submitted_at: datetime
    state: str = "queued"               # queued, running, done, failed
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    private: dict[str, Any] = field(default_factory=dict)   # arguments not shown (an upload's path)
    upload: Path | None = None          # a folder holding an uploaded file, removed after the job


def run_op(con: duckdb.DuckDBPyConnection, op: str, args: dict[str, Any], now: datetime,
           step: Callable[[str], None]) -> Any:
    """Run one operation as its CLI command would, on the service's connection; its --json document."""
    if op == "ingest":
        r = api.ingest(con, args["path"], now=now, fmt=args.get("format") or "auto", kind=args.get("kind"),
                       step=step, name=args.get("name"))
        return present.ingest_json(r)
    if op == "snapshot":
        s = api.snapshot(con, as_of=args["as_of"], window=args.get("window"), label=args.get("label"), now=now)
        return present.snapshot_created_json(s)
    if op == "score":
        step(f"scoring {args['snapshot']} with {args['algorithm']}")
        return present.scored_json(api.score(con, args["snapshot"], args["algorithm"], now=now))
    if op == "publish":
        return present.published_json(api.publish(con, args["run"], period=args["period"], now=now))
    if op == "explain":
        e = api.explain(con, args["account"], from_run=args["from"], to_run=args["to"], now=now, step=step,
                        release=args.get("release"))
        return present.explanation_json(e)
    raise AuditError(f'unknown operation "{op}"')


class Jobs:
    """The queue and its one worker."""

    def __init__(self, con: duckdb.DuckDBPyConnection, clock: Clock, after: Callable[[Job], None]) -> None:
        self._con = con
        self._clock = clock
        self._after = after                 # called after each job (the cache refreshes)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="audit-jobs", daemon=True)
        self._thread.start()

    def submit(self, op: str, args: dict[str, Any], *, private: dict[str, Any] | None = None,
               upload: Path | None = None) -> Job:
        job = Job("j_" + secrets.token_hex(8), op, args, self._clock(), private=private or {}, upload=upload)
        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > KEEP:
                old_id, old = next(iter(self._jobs.items()))
                if old.state in ("queued", "running"):
                    break
                self._jobs.pop(old_id)
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        job.state, job.started_at = "running", self._clock()
        t0 = [time.perf_counter()]

        def step(label: str) -> None:
            now = time.perf_counter()
            if job.steps:
                job.steps[-1]["seconds"] = round(now - t0[0], 3)
            t0[0] = now
            job.steps.append({"step": label, "seconds": None})
        try:
            job.result = run_op(self._con, job.op, job.args | job.private, self._clock(), step)
            job.state = "done"
        except AuditError as exc:
            message = str(exc)
            if job.upload is not None:          # name the file as uploaded, not where it waited
                message = message.replace(str(job.private["path"]), job.args.get("name", "upload"))
            job.error, job.state = message, "failed"
        except Exception as exc:                # a defect: say so, keep serving
            job.error, job.state = f"internal error: {type(exc).__name__}: {exc}", "failed"
        finally:
            if job.steps and job.steps[-1]["seconds"] is None:
                job.steps[-1]["seconds"] = round(time.perf_counter() - t0[0], 3)
            job.finished_at = self._clock()
            if job.upload is not None:
                shutil.rmtree(job.upload, ignore_errors=True)
            try:
                self._after(job)
            except Exception:                   # a refresh that fails must not stop the worker
                pass
