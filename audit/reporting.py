"""Gather what each report shows into result dataclasses. The `reports` package renders them;
it runs no SQL. Everything here is read from stored records, so a report rebuilt from the same
records is the same."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from . import api, scoring
from .algorithms import registry
from .algorithms.registry import Algorithm
from .compare import Comparison
from .errors import AuditError, NotFound
from .explain import Explanation
from .scoring import Run
from .store import connect, frame
from .verify import Verification, rerun, verify_log

BINS = 20


@dataclass(frozen=True)
class Bin:
    """One histogram bar: scores in [low, high) (the last bin includes 100)."""
    low: float
    high: float
    accounts: int


@dataclass(frozen=True)
class Share:
    """A component's share of all score mass in a run: its relative weight in plain numbers."""
    component: str
    label: str
    share: float


@dataclass(frozen=True)
class Restatement:
    """A period republished with another run; the original stays as it was."""
    period: str
    original_publication: str
    original_run: str
    original_algorithm: str
    publication: str
    run: str
    algorithm: str
    published_at: datetime


@dataclass(frozen=True)
class Release:
    """One published algorithm version, as the transparency report shows it."""
    algorithm: Algorithm
    previous: Algorithm | None
    first_published: datetime
    periods: tuple[str, ...]
    run: Run                               # its run for the latest period, whose scores are shown
    snapshot_label: str | None
    histogram: tuple[Bin, ...]
    shares: tuple[Share, ...]
    comparison: Comparison | None          # against the previous version on the same snapshot
    restatements: tuple[Restatement, ...]
    superseded_by: str | None = None       # the next published version, over all of them


@dataclass(frozen=True)
class BatchQuality:
    """A batch behind the published runs and its stored validation result."""
    batch_id: str
    source_name: str
    format: str
    rows: int
    accounts: int
    ingested_at: datetime
    validation: dict


@dataclass(frozen=True)
class TransparencyData:
    releases: tuple[Release, ...]
    batches: tuple[BatchQuality, ...]
    verification: Verification


@dataclass(frozen=True)
class AccountStatement:
    account_id: str
    published: pl.DataFrame                # history as originally published
    restated: pl.DataFrame                 # history as restated
    explanation: Explanation | None        # the latest change, from the previous period as published
    note: str                              # why there is no explanation, when there is none


def histogram(scores: np.ndarray) -> tuple[Bin, ...]:
    width = 100.0 / BINS
    idx = np.minimum((scores // width).astype(np.int64), BINS - 1)
    counts = np.bincount(idx, minlength=BINS)
    return tuple(Bin(i * width, (i + 1) * width, int(n)) for i, n in enumerate(counts))


def shares(con: duckdb.DuckDBPyConnection, run_id: str, algo: Algorithm) -> tuple[Share, ...]:
    rows = con.execute("SELECT g.i, sum(components[g.i]) FROM score CROSS JOIN range(1, ?) g(i) "
                       "WHERE run_id = ? GROUP BY g.i ORDER BY g.i", [len(algo.components) + 1, run_id]).fetchall()
    sums = [v for _, v in rows]
    total = sum(abs(v) for v in sums) or 1.0
    return tuple(Share(name, label, abs(v) / total) for (name, label), v in zip(algo.components, sums))


def _releases(con: duckdb.DuckDBPyConnection, wanted: list[str] | None) -> list[tuple[Algorithm, datetime]]:
    rows = con.execute("""
        SELECT r.algorithm_id, min(p.published_at) FROM publication p JOIN run r USING (run_id)
        GROUP BY r.algorithm_id ORDER BY min(p.published_at), r.algorithm_id""").fetchall()
    found = [(registry.get(con, a), t) for a, t in rows]
    if wanted:
        labels = {a.label for a, _ in found}
        unknown = [w for w in wanted if w not in labels]
        if unknown:
            raise NotFound(f"release(s) {', '.join(unknown)} were never published; published: "
                           f"{', '.join(sorted(labels)) or 'none'}")
    return found


def transparency(store: str | Path, releases: list[str] | None = None, *, rerun_runs: bool = True) -> TransparencyData:
    """Every published version (or those named), with what changed, who moved, data quality and proof."""
    with connect(store) as con:
        found = _releases(con, releases)
        if not found:
            raise AuditError('nothing is published yet; "audit publish RUN --period P" publishes a run')
        out, previous = [], None
        for algo, first in found:
            pubs = frame(con, """
                SELECT p.period, p.run_id, s.as_of, s.label FROM publication p JOIN run r USING (run_id)
                JOIN snapshot s USING (snapshot_id) WHERE r.algorithm_id = ? ORDER BY s.as_of, p.period""",
                         [algo.algorithm_id])
            run = scoring.get(con, pubs["run_id"][-1])
            assert run is not None
            scores = scoring.run_scores(con, run.run_id)["score"].to_numpy()
            comparison = None
            if previous is not None:
                base = scoring.find(con, run.snapshot_id, previous.algorithm_id)
                if base is not None:
                    comparison = api.compare_open(con, base.run_id, run.run_id)
            rs = frame(con, """
                SELECT p.period, o.publication_id AS op, o.run_id AS orun, oa.name || '@' || oa.version AS oalg,
                       p.publication_id AS np, p.run_id AS nrun, na.name || '@' || na.version AS nalg, p.published_at
                FROM publication p JOIN publication o ON o.publication_id = p.restates
                JOIN run nr ON nr.run_id = p.run_id JOIN algorithm na ON na.algorithm_id = nr.algorithm_id
                JOIN run orr ON orr.run_id = o.run_id JOIN algorithm oa ON oa.algorithm_id = orr.algorithm_id
                WHERE nr.algorithm_id = ? ORDER BY p.period, p.published_at""", [algo.algorithm_id])
            out.append(Release(algo, previous, first, tuple(pubs["period"].to_list()), run, pubs["label"][-1],
                               histogram(scores), shares(con, run.run_id, algo), comparison,
                               tuple(Restatement(*r) for r in rs.iter_rows())))
            previous = algo
        batch_rows = con.execute("""
            SELECT DISTINCT b.batch_id, b.source_name, b.format, b.rows, b.accounts, b.ingested_at, b.validation
            FROM publication p JOIN run r USING (run_id) JOIN snapshot s USING (snapshot_id)
            JOIN batch b ON list_contains(s.batch_ids, b.batch_id) ORDER BY b.batch_id""").fetchall()
        batches = tuple(BatchQuality(*r[:6], json.loads(r[6])) for r in batch_rows)
        check = verify_log(con)
        if rerun_runs:
            problems, notes, count = rerun(con)
            check.problems += problems
            check.notes += notes
            check.reran, check.ok = count, not check.problems
    wanted = set(releases or [])
    labels = [r.algorithm.label for r in out] + [None]
    out = [dataclasses.replace(r, superseded_by=labels[i + 1]) for i, r in enumerate(out)]
    return TransparencyData(tuple(r for r in out if not wanted or r.algorithm.label in wanted), batches, check)


def account_statement(store: str | Path, account: str, *, now: datetime) -> AccountStatement:
    """History as published and restated, and the latest change explained."""
    published = api.history(store, account)
    restated = api.history(store, account, restated=True)
    if published.height == 0:
        raise NotFound(f'account "{account}" has no published score; "audit history {account}" shows none either')
    if published.height < 2 and restated.height < 2 and published.equals(restated):
        return AccountStatement(account, published, restated, None, "only one published score so far")
    # The latest change as the account saw it: the previous period as first published, then the
    # latest period as it stands now.
    before = published.row(published.height - 2 if published.height >= 2 else 0, named=True)
    after = restated.row(restated.height - 1, named=True)
    if before["run_id"] == after["run_id"]:
        return AccountStatement(account, published, restated, None, "no change to explain")
    e = api.explain(store, account, from_run=before["run_id"], to_run=after["run_id"], now=now)
    return AccountStatement(account, published, restated, e, "")
