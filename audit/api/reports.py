"""Facade: what each report shows, gathered into result dataclasses. The `reports` package
renders them and runs no SQL. Everything here is read from stored records, so a report rebuilt
from the same records is the same."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl

from ..analysis.explain import Explanation
from ..analysis.gaming import GamingAudit
from ..errors import AuditError, NotComputed, NotFound
from ..records import accounts as accts
from ..records import algorithms as algos
from ..records import publications as pubs
from ..records import gaming as gaming_
from ..records import runs as runs_
from ..records import snapshots as snaps
from ..records.publications import Point
from ..records.algorithms import Algorithm
from ..records.runs import Run
from ..records.snapshots import Snapshot
from ..records.verify import Verification, verify
from ..store.db import dicts, frame
from ._store import Store, reading
from .analyses import compare_runs, explain
from .lookup import ScoreSource
from .publishing import history

if TYPE_CHECKING:
    from ..analysis.compare import Comparison, ParamChange

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
    param_changes: tuple[ParamChange, ...]  # against the previous version (none for a first one)
    source_diff: str                       # unified diff against the previous version ("" when none)
    restatements: tuple[Restatement, ...]
    superseded_by: str | None = None       # the next published version, over all of them
    gaming: GamingAudit | None = None      # the latest stored gaming audit of `run` (none: never audited)


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
    topics: tuple[TopicScoring, ...] = ()


@dataclass(frozen=True)
class TopicScoring:
    """A topic version's run: the topics it scored, those of its snapshot left out by its minimum
    activity rule, and that rule."""
    algorithm: str
    run_id: str
    snapshot_id: str
    published: bool
    rule: dict                             # the version's min_topic parameters ({} when it has none)
    scored: tuple[tuple[str, int], ...]    # (topic, accounts scored), by topic
    below: int                             # topics of the snapshot below the rule


@dataclass(frozen=True)
class AccountGaming:
    """An account flagged by a stored gaming audit of one of its published runs."""
    audit: GamingAudit
    period: str
    finding: dict                          # its row of audit.flagged


@dataclass(frozen=True)
class AccountStatement:
    account_id: str
    published: pl.DataFrame                # history as originally published
    restated: pl.DataFrame                 # history as restated
    explanation: Explanation | None        # the latest change, from the previous period as published
    note: str                              # why there is no explanation, when there is none
    gaming: tuple[AccountGaming, ...] = ()  # stored gaming audits of its published runs that flag it
    topics: Any = None                     # AccountTopics in the topic run of the latest period, if any
    influence: Any = None                  # Influence in the run on display now
    engagers: Any = None                   # Engagers in the run on display now, alerts at ALERT_SCORE


ALERT_SCORE = 50.0         # the statement's "high-score engagers": those scoring at least this


def histogram(scores: np.ndarray) -> tuple[Bin, ...]:
    width = 100.0 / BINS
    idx = np.minimum((scores // width).astype(np.int64), BINS - 1)
    counts = np.bincount(idx, minlength=BINS)
    return tuple(Bin(i * width, (i + 1) * width, int(n)) for i, n in enumerate(counts))


def shares(con: duckdb.DuckDBPyConnection, run_id: str, algo: Algorithm) -> tuple[Share, ...]:
    rows = dicts(con, "SELECT g.i, sum(components[g.i]) AS total FROM score CROSS JOIN range(1, ?) g(i) "
                      "WHERE run_id = ? GROUP BY g.i ORDER BY g.i", [len(algo.components) + 1, run_id])
    sums = [r["total"] for r in rows]
    total = sum(abs(v) for v in sums) or 1.0
    return tuple(Share(name, label, abs(v) / total) for (name, label), v in zip(algo.components, sums))


def base_name(path: str) -> str:
    """The file name of a path as given on any system: /srv/in/2012.csv, C:\\in\\2012.csv -> 2012.csv."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _releases(con: duckdb.DuckDBPyConnection, wanted: list[str] | None) -> list[tuple[Algorithm, datetime]]:
    rows = dicts(con, """
        SELECT r.algorithm_id, min(p.published_at) AS first FROM publication p JOIN run r USING (run_id)
        GROUP BY r.algorithm_id ORDER BY min(p.published_at), r.algorithm_id""")
    # topic versions are listed apart (TopicScoring): their runs hold (account, topic) rows
    found = [(a, r["first"]) for r in rows if not (a := algos.get(con, r["algorithm_id"])).by_topic]
    if wanted:
        labels = {a.label for a, _ in found}
        unknown = [w for w in wanted if w not in labels]
        if unknown:
            raise NotFound(f"release(s) {', '.join(unknown)} were never published; published: "
                           f"{', '.join(sorted(labels)) or 'none'}")
    return found


def _release(con: duckdb.DuckDBPyConnection, algo: Algorithm, first: datetime, previous: Algorithm | None) -> Release:
    from ..analysis.compare import diff_params, diff_source
    pubs = frame(con, """
        SELECT p.period, p.run_id, s.as_of, s.label FROM publication p JOIN run r USING (run_id)
        JOIN snapshot s USING (snapshot_id) WHERE r.algorithm_id = ? ORDER BY s.as_of, p.period""",
                 [algo.algorithm_id])
    run = runs_.get(con, pubs["run_id"][-1])
    scores = runs_.run_scores(con, run.run_id)["score"].to_numpy()
    comparison, changes, diff = None, (), ""
    if previous is not None:
        base = runs_.find_for(con, run.snapshot_id, previous.algorithm_id)
        if base is not None:
            comparison = compare_runs(con, base, run)
        changes = diff_params(previous.params, algo.params)
        diff = diff_source(previous.source, algo.source, previous.label, algo.label)
    rs = dicts(con, """
        SELECT p.period, o.publication_id AS original_publication, o.run_id AS original_run,
               oa.name || '@' || oa.version AS original_algorithm, p.publication_id AS publication,
               p.run_id AS run, na.name || '@' || na.version AS algorithm, p.published_at
        FROM publication p JOIN publication o ON o.publication_id = p.restates
        JOIN run nr ON nr.run_id = p.run_id JOIN algorithm na ON na.algorithm_id = nr.algorithm_id
        JOIN run orr ON orr.run_id = o.run_id JOIN algorithm oa ON oa.algorithm_id = orr.algorithm_id
        WHERE nr.algorithm_id = ? ORDER BY p.period, p.published_at""", [algo.algorithm_id])
    audits = gaming_.for_runs(con, [run.run_id])
    audit = gaming_.load(con, audits[-1]) if audits else None
    return Release(algo, previous, first, tuple(pubs["period"].to_list()), run, pubs["label"][-1],
                   histogram(scores), shares(con, run.run_id, algo), comparison, changes, diff,
                   tuple(Restatement(**r) for r in rs), gaming=audit)


def transparency(store: Store, releases: list[str] | None = None, *, rerun_runs: bool = True) -> TransparencyData:
    """Every published version (or those named), with what changed, who moved, data quality and proof."""
    with reading(store) as con:
        found = _releases(con, releases)
        if not found:
            raise AuditError('nothing is published yet; "audit publish RUN --period P" publishes a run')
        out, previous = [], None
        for algo, first in found:
            out.append(_release(con, algo, first, previous))
            previous = algo
        batch_rows = dicts(con, """
            SELECT DISTINCT b.batch_id, b.source_name, b.format, b.rows, b.accounts, b.ingested_at, b.validation
            FROM publication p JOIN run r USING (run_id) JOIN snapshot s USING (snapshot_id)
            JOIN batch b ON list_contains(s.batch_ids, b.batch_id) ORDER BY b.batch_id""")
        # a public report names a file by its base name (and batch id), never the operator's folders
        batches = tuple(BatchQuality(**{**r, "source_name": base_name(r["source_name"]),
                                        "validation": json.loads(r["validation"])}) for r in batch_rows)
        check = verify(con, rerun_runs=rerun_runs)
        topics = _topic_scoring(con)
    wanted = set(releases or [])
    labels = [r.algorithm.label for r in out] + [None]
    out = [dataclasses.replace(r, superseded_by=labels[i + 1]) for i, r in enumerate(out)]
    return TransparencyData(tuple(r for r in out if not wanted or r.algorithm.label in wanted), batches, check,
                            topics)


def _topic_scoring(con: duckdb.DuckDBPyConnection) -> tuple[TopicScoring, ...]:
    """The latest run of each topic version (published ones first), with its topics and rule."""
    rows = dicts(con, f"""
        SELECT r.run_id, r.snapshot_id, a.name || '@' || a.version AS algorithm, a.params,
               EXISTS (SELECT 1 FROM publication p WHERE p.run_id = r.run_id) AS published
        FROM run r JOIN algorithm a USING (algorithm_id) JOIN snapshot s USING (snapshot_id)
        WHERE NOT r.counterfactual AND {pubs.TOPICAL}
        ORDER BY a.name, a.version, published DESC, s.as_of DESC, r.run_id""")
    out, seen = [], set()
    for r in rows:
        if r["algorithm"] in seen:
            continue
        seen.add(r["algorithm"])
        scored = tuple((t, int(n)) for t, n in runs_.topics(con, r["run_id"]).iter_rows())
        rows_sql, params = snaps.selection(snaps.get(con, r["snapshot_id"]))
        every = dicts(con, f"""SELECT count(DISTINCT t) AS n FROM (SELECT unnest(string_split(topic, '|')) AS t
                               FROM ({rows_sql}) WHERE topic IS NOT NULL) WHERE t <> ''""", params)[0]["n"]
        rule = json.loads(r["params"]).get("min_topic", {})
        out.append(TopicScoring(r["algorithm"], r["run_id"], r["snapshot_id"], bool(r["published"]), rule, scored,
                                int(every) - len(scored)))
    return tuple(out)


def account_gaming(store: Store, account: str, published: pl.DataFrame, restated: pl.DataFrame
                   ) -> tuple[AccountGaming, ...]:
    """The stored gaming audits of the account's published runs (as published or restated) that flag
    it, by period then audit."""
    periods = {}
    for frame_ in (published, restated):
        for r in frame_.iter_rows(named=True):
            periods.setdefault(r["run_id"], r["period"])
    out = []
    with reading(store) as con:
        hits = dicts(con, "SELECT DISTINCT g.gaming_id, g.run_id, g.created_at FROM gaming g JOIN gaming_finding f "
                          "USING (gaming_id) WHERE f.account_id = ? AND g.run_id IN (SELECT unnest(?)) "
                          "ORDER BY g.created_at, g.gaming_id", [account, list(periods)])
        for h in hits:
            audit = gaming_.load(con, gaming_.find(con, h["gaming_id"]))
            row = audit.flagged.filter(pl.col("account_id") == account).row(0, named=True)
            out.append(AccountGaming(audit, periods[h["run_id"]], row))
    return tuple(sorted(out, key=lambda a: (a.period, a.audit.created_at, a.audit.gaming_id)))


def account_statement(store: Store, account: str, *, now: datetime, compute: bool = True,
                      source: ScoreSource | None = None) -> AccountStatement:
    """History as published and restated, the latest change explained, and gaming findings. With `compute=False`
    nothing is written: a change whose counterfactual runs are not stored is left unexplained
    with a note saying so."""
    with reading(store) as con:
        account = accts.resolve_one(con, account)
    published = history(store, account, source=source)
    restated = history(store, account, restated=True, source=source)
    if published.height == 0:
        raise NotFound(f'account "{account}" has no published score; "audit history {account}" shows none either')
    flagged = account_gaming(store, account, published, restated)
    extra = _influence_parts(store, account, restated)
    if published.height < 2 and restated.height < 2 and published.equals(restated):
        return AccountStatement(account, published, restated, None, "only one published score so far", flagged, **extra)
    # The latest change as the account saw it: the previous period as first published, then the
    # latest period as it stands now.
    before = published.row(published.height - 2 if published.height >= 2 else 0, named=True)
    after = restated.row(restated.height - 1, named=True)
    if before["run_id"] == after["run_id"]:
        return AccountStatement(account, published, restated, None, "no change to explain", flagged, **extra)
    try:
        e = explain(store, account, from_run=before["run_id"], to_run=after["run_id"], now=now, compute=compute)
    except NotComputed:
        return AccountStatement(account, published, restated, None,
                                "the counterfactual runs the latest change needs are not stored yet "
                                f"(an explain job from {before['run_id']} to {after['run_id']} stores them)",
                                flagged, **extra)
    return AccountStatement(account, published, restated, e, "", flagged, **extra)


def _influence_parts(store: Store, account: str, restated: pl.DataFrame) -> dict[str, Any]:
    """The account's top topics (the topic run published for the latest period, else a topic run of its
    snapshot), its influencers and influencees and its engagers scoring ALERT_SCORE or more, in the run
    on display now; each left out where the store cannot answer it."""
    from .topics import account_topics, engagers, influence
    if restated.height == 0:
        return {}
    run_id = restated.row(restated.height - 1, named=True)["run_id"]
    out: dict[str, Any] = {}
    with reading(store) as con:
        topical = pubs.points(con, topical=True)
        run = runs_.get(con, run_id)
        same = dicts(con, f"SELECT r.run_id FROM run r JOIN algorithm a USING (algorithm_id) WHERE r.snapshot_id = ? "
                          f"AND NOT r.counterfactual AND {pubs.TOPICAL} ORDER BY a.name, a.version DESC, r.run_id",
                     [run.snapshot_id])
    topic_run = ([p for p, _ in pubs.shown(topical, latest=True)] or [None])[-1]
    topic_run = topic_run.run_id if topic_run is not None else (same[0]["run_id"] if same else None)
    if topic_run is not None:
        out["topics"] = account_topics(store, account, run=topic_run, top=10)
    try:
        out["influence"] = influence(store, account, run=run_id, top=5)
    except AuditError:
        pass                            # a version without engagers(): no split by engager
    out["engagers"] = engagers(store, account, run=run_id, min_score=ALERT_SCORE)
    return out


@dataclass(frozen=True)
class StoreOverview:
    """What the store holds, for its index page: every snapshot, run, version and publication,
    and the head of the log (which changes with every record appended)."""
    snapshots: tuple[Snapshot, ...]
    runs: tuple[Run, ...]
    algorithms: tuple[Algorithm, ...]
    publications: tuple[Point, ...]
    entries: int
    head: str


def log_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """(entries, hash of the last entry) of the log: equal heads mean equal records."""
    rows = con.execute("SELECT seq, entry_hash FROM log ORDER BY seq DESC LIMIT 1").fetchall()
    return (rows[0][0], rows[0][1]) if rows else (0, "")


def store_overview(store: Store) -> StoreOverview:
    """Snapshots, runs, algorithm versions and publications, each in its listing order."""
    with reading(store) as con:
        return StoreOverview(tuple(snaps.list_all(con)), tuple(runs_.list_all(con)), tuple(algos.list_all(con)),
                             tuple(pubs.points(con)), *log_head(con))
