"""The service's scores in memory: a ScoreSource (`audit.api.lookup`) that answers from RAM.

A run's scores never change once stored, so a run held here needs no invalidation; only the
list of publications grows (a publication only adds), and `refresh()` reads it again after a
write job. The runs the default questions need (what is on display per release, and what its
day, week and month changes compare with) are loaded by `warm()` and kept; others are loaded on
first use and the least recently used let go beyond `max_runs` (loading again gives the same).
Account ids are interned once for all runs; each run holds score, raw and rank arrays and, per
interned id, its row (-1: absent).

The rank is the store's (`records.runs.RANK`): 1 + the number of the run's scores strictly
higher; a test holds the two equal.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np

from ..api._store import reading
from ..api.lookup import HORIZONS
from ..records import accounts as accts
from ..records import publications as pubs
from ..records.publications import Point
from ..store.db import frame


@dataclass(frozen=True)
class RunScores:
    row: np.ndarray         # int32 per interned id: its row here, or -1
    score: np.ndarray
    raw: np.ndarray
    rank: np.ndarray


def ranks(score: np.ndarray) -> np.ndarray:
    """1 + the number of strictly higher scores (ties share the best rank)."""
    return np.searchsorted(np.sort(-score), -score, side="left").astype(np.int64) + 1


class PublishedCache:
    """Publications and run scores of one store, held in memory (see the module docstring)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, max_runs: int = 16) -> None:
        self._con = con
        self._max_runs = max_runs
        self._ids: dict[str, int] = {}
        self._runs: OrderedDict[str, RunScores] = OrderedDict()
        self._lock = threading.Lock()            # the LRU order
        self._loading = threading.Lock()         # one load at a time: a run is read once
        self._points: list[Point] = []
        self._warm = False
        self._pinned: set[str] = set()
        self._handles: dict[str, str] = {}
        self._account_batches = -1
        self.refresh()

    # ------------------------------------------------------------ ScoreSource

    def points(self) -> list[Point]:
        return self._points

    def ranked(self, run_id: str, accounts: list[str]) -> list[tuple[str, float, float, int]]:
        r = self.run(run_id)
        wanted = sorted(set(accounts))
        size = len(r.row)
        g = np.fromiter((self._ids.get(a, size) for a in wanted), dtype=np.int64, count=len(wanted))
        rows = np.full(len(wanted), -1, dtype=np.int64)
        inside = g < size
        rows[inside] = r.row[g[inside]]
        hit = rows >= 0
        at = rows[hit]
        found = [a for a, h in zip(wanted, hit.tolist()) if h]
        return list(zip(found, r.score[at].tolist(), r.raw[at].tolist(), r.rank[at].tolist()))

    def handles(self, accounts: list[str]) -> dict[str, str]:
        held = self._handles
        return {a: held[a] for a in accounts if a in held}

    # ------------------------------------------------------------ upkeep

    def refresh(self) -> None:
        """Read the publications again (after a write job), and the handles when an accounts file
        came in; warm() loads what they need."""
        with reading(self._con) as con:
            points = pubs.points(con)
            batches = con.execute("SELECT count(*) FROM batch WHERE batch_kind = 'accounts'").fetchall()[0][0]
            if batches != self._account_batches:
                self._handles, self._account_batches = accts.handles(con), batches
        if points != self._points:
            self._warm = False
            self._points = points

    def warm(self) -> None:
        """Load and keep what the default questions need: per release and overall, the run on
        display and those its day, week and month changes compare with; then, as far as they fit,
        the runs of both views of history."""
        needed: list[str] = []
        for release in [None, *sorted({p.algorithm for p in self._points})]:
            view = [p for p, _ in pubs.shown(self._points, latest=True, release=release)]
            if view:
                needed.append(view[-1].run_id)
                for _, days in HORIZONS:
                    earlier = [p for p in view if p.as_of <= view[-1].as_of - timedelta(days=days)]
                    if earlier:
                        needed.append(earlier[-1].run_id)
        needed = list(dict.fromkeys(needed))
        # then the runs of both views of history, as far as they fit in max_runs
        for latest in (False, True):
            for p, _ in pubs.shown(self._points, latest=latest):
                if p.run_id not in needed and len(needed) < self._max_runs:
                    needed.append(p.run_id)
        with self._lock:
            self._pinned = set(needed)
        for run_id in needed:
            self.run(run_id)
        self._warm = True

    def ready(self) -> bool:
        """Whether every run a default question needs is held (see warm; those are never let go)."""
        return self._warm

    def covers(self, *, latest: bool) -> bool:
        """Whether every run of a view of history is held (a history then touches no store)."""
        with self._lock:
            return self._warm and all(p.run_id in self._runs for p, _ in pubs.shown(self._points, latest=latest))

    def held(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def run(self, run_id: str) -> RunScores:
        """A run's scores, loaded on first use."""
        with self._lock:
            found = self._runs.get(run_id)
            if found is not None:
                self._runs.move_to_end(run_id)
                return found
        with self._loading:
            with self._lock:
                found = self._runs.get(run_id)
            if found is None:
                found = self._load(run_id)
            with self._lock:
                self._runs[run_id] = found
                self._runs.move_to_end(run_id)
                for old in [r for r in self._runs if r not in self._pinned][:max(0, len(self._runs) - self._max_runs)]:
                    del self._runs[old]
            return found

    def _load(self, run_id: str) -> RunScores:
        with reading(self._con) as con:
            df = frame(con, "SELECT account_id, score, raw FROM score WHERE run_id = ? ORDER BY account_id", [run_id])
        ids = self._ids
        for account in df["account_id"].to_list():
            if account not in ids:
                ids[account] = len(ids)
        positions = np.fromiter((ids[a] for a in df["account_id"].to_list()), dtype=np.int64, count=df.height)
        row = np.full(len(ids), -1, dtype=np.int32)
        row[positions] = np.arange(df.height, dtype=np.int32)
        score = df["score"].to_numpy().astype(np.float64, copy=True)
        return RunScores(row, score, df["raw"].to_numpy().astype(np.float64, copy=True), ranks(score))
