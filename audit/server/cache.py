"""The service's scores in memory: a ScoreSource (`audit.api.lookup`) that answers from RAM.

A run's scores never change once stored, so a run held here needs no invalidation; only the
list of publications grows (a publication only adds), and `refresh()` reads it again after a
write job. Runs are loaded on first use and the least recently used are let go beyond
`max_runs` (loading one again gives the same arrays). Account ids are interned once for all
runs; each run holds score, raw and rank arrays and, per interned id, its row (-1: absent).

The rank is the store's (`records.runs.RANK`): 1 + the number of the run's scores strictly
higher; a test holds the two equal.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import duckdb
import numpy as np

from ..api._store import reading
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
        self.refresh()

    # ------------------------------------------------------------ ScoreSource

    def points(self) -> list[Point]:
        return self._points

    def ranked(self, run_id: str, accounts: list[str]) -> list[tuple[str, float, float, int]]:
        r = self.run(run_id)
        out = []
        size = len(r.row)
        for account in sorted(set(accounts)):
            g = self._ids.get(account)
            if g is None or g >= size:
                continue
            i = r.row[g]
            if i >= 0:
                out.append((account, float(r.score[i]), float(r.raw[i]), int(r.rank[i])))
        return out

    # ------------------------------------------------------------ upkeep

    def refresh(self) -> None:
        """Read the publications again (after a write job)."""
        with reading(self._con) as con:
            self._points = pubs.points(con)

    def warm(self) -> None:
        """Load the run on display of each release and overall (the lookups' default answers)."""
        latest: dict[str | None, Point] = {}
        for release in [None, *sorted({p.algorithm for p in self._points})]:
            view = pubs.shown(self._points, latest=True, release=release)
            if view:
                latest[release] = view[-1][0]
        for p in latest.values():
            self.run(p.run_id)

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
                while len(self._runs) > self._max_runs:
                    self._runs.popitem(last=False)
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
