"""The Python API: the same verbs as the CLI, returning dataclasses and polars frames.

Every function takes the store path first. Writing functions take `now` (the CLI fills it in;
the library never reads a clock) and run in one transaction.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import polars as pl

from . import explainer, publications, scoring
from . import snapshots as snaps
from .algorithms import registry
from .algorithms.registry import Algorithm
from .errors import AuditError
from .ingest import IngestResult, file_sha256, find_by_file, prepare, store_batch
from .explain import Explanation
from .publications import Publication
from .scoring import Run
from .snapshots import Snapshot
from .store import connect, frame, resolve, transaction
from .verify import Verification, verify_log
from .verify import rerun as rerun_runs

Step = Callable[[str], None]

if TYPE_CHECKING:   # compare pulls in scipy.stats; only compare and reports need it at run time
    from .compare import Comparison, RunInfo


def quiet(_: str) -> None:
    """A progress callback that shows nothing."""


def ingest(store: str | Path, path: str | Path, *, now: datetime, fmt: str = "auto",
           kind: str | None = None, step: Step = quiet) -> IngestResult:
    """Validate PATH and store it as one batch; the same content again is a no-op."""
    if Path(store).exists() and Path(path).is_file():
        with connect(store, write=True) as con:      # a writer: migrates a store of an older schema
            known = find_by_file(con, file_sha256(Path(path)))
        if known is not None:
            return known
    prep = prepare(path, fmt, kind, now, step)      # the store is not touched until this passed
    with connect(store, write=True, create=True) as con, transaction(con):
        return store_batch(con, prep, now, step)


def snapshot(store: str | Path, *, as_of: datetime | str, now: datetime, window: str | int | None = None,
             label: str | None = None) -> Snapshot:
    """Freeze the batches stored so far as of AS_OF, over WINDOW (e.g. "7d"; None: everything)."""
    instant = snaps.parse_instant(as_of) if isinstance(as_of, str) else as_of
    seconds = snaps.parse_window(window) if isinstance(window, str) or window is None else int(window)
    with connect(store, write=True) as con, transaction(con):
        return snaps.create(con, instant, seconds, label, now)


def snapshots(store: str | Path) -> list[Snapshot]:
    """Every snapshot, oldest as-of first."""
    with connect(store) as con:
        return snaps.list_all(con)


def get_snapshot(store: str | Path, ref: str) -> Snapshot:
    """One snapshot by id, unique prefix, or `latest`."""
    with connect(store) as con:
        found = snaps.get(con, resolve(con, "snapshot", ref, what="snapshot", listing="audit snapshots"))
        assert found is not None
        return found


def verify(store: str | Path, *, rerun: bool = False, step: Step = quiet) -> Verification:
    """Walk the log and recompute every record's content hash; with rerun, re-execute every run."""
    with connect(store) as con:
        result = verify_log(con, step)
        if rerun:
            problems, notes, count = rerun_runs(con, step)
            result.problems += problems
            result.notes += notes
            result.reran = count
            result.ok = not result.problems
        return result


def register(store: str | Path, path: str | Path, *, now: datetime) -> tuple[Algorithm, bool]:
    """Register the algorithm module at PATH; (algorithm, new)."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f'{path}: no such file')
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AuditError(f"{path}: not UTF-8 Python source") from None
    candidate = registry.from_source(source, str(path))
    if candidate.label in registry.SHIPPED and source != registry.shipped_source(candidate.label):
        raise AuditError(f"{path}: {candidate.label} is a shipped version of audit; give your algorithm "
                         "another NAME (or a VERSION that audit does not ship)")
    with connect(store, write=True, create=True) as con, transaction(con):
        return registry.register(con, candidate, now)


def algorithms(store: str | Path) -> list[Algorithm]:
    """Every registered algorithm version, by name and version."""
    with connect(store) as con:
        return registry.list_all(con)


def get_algorithm(store: str | Path, ref: str) -> Algorithm:
    """One registered version by name@version or id prefix."""
    with connect(store) as con:
        return registry.resolve(con, ref, None)


def score(store: str | Path, snapshot: str, algorithm: str, *, now: datetime,
          counterfactual: bool = False) -> Run:
    """Score SNAPSHOT with ALGORITHM (name@version) and store the run; an existing run is returned."""
    with connect(store, write=True) as con, transaction(con):
        snap = snaps.get(con, resolve(con, "snapshot", snapshot, what="snapshot", listing="audit snapshots"))
        assert snap is not None
        algo = registry.resolve(con, algorithm, now)
        return scoring.score_snapshot(con, snap, algo, now,
                                      counterfactual=counterfactual)


def runs(store: str | Path) -> list[Run]:
    """Every run, by snapshot as-of, then algorithm."""
    with connect(store) as con:
        return scoring.list_all(con)


def get_run(store: str | Path, ref: str) -> Run:
    """One run by id or unique prefix."""
    with connect(store) as con:
        return _run(con, ref)


def _run(con, ref: str) -> Run:
    run = scoring.get(con, resolve(con, "run", ref, what="run", listing="audit runs"))
    assert run is not None
    return run


def scores(store: str | Path, run: str, *, accounts: list[str] | None = None,
           top: int | None = None) -> pl.DataFrame:
    """Scores of a run with their rank (1 = highest; ties share the best rank), best first.

    `accounts` picks many accounts at once (unknown ones are absent); `top` keeps the best N.
    """
    with connect(store) as con:
        r = _run(con, run)
        algo = registry.get(con, r.algorithm_id)
        assert algo is not None
        names = [c for c, _ in algo.components]
        picked = "" if accounts is None else "WHERE account_id IN (SELECT unnest($accounts))"
        limit = "" if top is None else f"LIMIT {int(top)}"
        params: dict = {"run": r.run_id}
        if accounts is not None:
            params["accounts"] = list(accounts)
        df = frame(con, f"""
            WITH ranked AS (
                SELECT account_id, score, raw, components,
                       rank() OVER (ORDER BY score DESC) AS rank
                FROM score WHERE run_id = $run)
            SELECT * FROM ranked {picked} ORDER BY rank, account_id {limit}""", params)
    return df.with_columns(
        [pl.col("components").list.get(i).alias(n) for i, n in enumerate(names)]).drop("components")


def publish(store: str | Path, run: str, *, period: str, now: datetime) -> Publication:
    """Publish RUN for PERIOD; a period that already has a publication gets a restatement beside it."""
    with connect(store, write=True) as con, transaction(con):
        return publications.publish(con, _run(con, run).run_id, period, now)


def publications_list(store: str | Path) -> list[Publication]:
    """Every publication, in the order they were made."""
    with connect(store) as con:
        return publications.list_all(con)


def history(store: str | Path, accounts: str | list[str], *, restated: bool = False,
            as_of: datetime | str | None = None) -> pl.DataFrame:
    """Score history of one or many accounts: as published (default), as restated, or as of an instant."""
    ids = [accounts] if isinstance(accounts, str) else list(accounts)
    instant = snaps.parse_instant(as_of) if isinstance(as_of, str) else as_of
    with connect(store) as con:
        return publications.history(con, ids, restated=restated, as_of=instant)


def explain(store: str | Path, account: str, *, from_run: str, to_run: str, now: datetime,
            step: Step = quiet) -> Explanation:
    """Explain ACCOUNT's score change from one run to another; computes and stores missing
    counterfactual runs first (a second explanation of the same change computes none)."""
    with connect(store) as con:
        r1, r2 = _run(con, from_run), _run(con, to_run)
        explainer.check_present(con, account, r1, r2)     # before any counterfactual is computed
        missing = explainer.needed_counterfactuals(con, r1, r2)
    if missing:
        with connect(store, write=True) as con, transaction(con):
            explainer.compute_counterfactuals(con, missing, now, step)
    with connect(store) as con:
        step(f"explaining {account}")
        return explainer.explain_runs(con, account, r1, r2)


def _run_info(con, run: Run) -> RunInfo:
    from .compare import RunInfo
    algo = registry.get(con, run.algorithm_id)
    assert algo is not None
    snap = snaps.get(con, run.snapshot_id)
    return RunInfo(run_id=run.run_id, snapshot_id=run.snapshot_id, algorithm=algo.label,
                   params=algo.params, source=algo.source, snapshot_label=snap.label if snap else None)


def compare_open(con, baseline: str, candidate: str, *, top: int = 20,
                 segments: dict[str, str] | None = None) -> Comparison:
    """compare() on an open connection (reports reuse it)."""
    from .compare import compare_runs
    b, c = _run(con, baseline), _run(con, candidate)
    snap = snaps.get(con, b.snapshot_id)
    assert snap is not None
    features = snaps.features(con, snap)
    try:
        return compare_runs(scoring.run_scores(con, b.run_id), scoring.run_scores(con, c.run_id),
                            features=features, baseline_info=_run_info(con, b), candidate_info=_run_info(con, c),
                            top=top, segments=segments)
    except ValueError as exc:
        raise AuditError(str(exc)) from None


def compare(store: str | Path, baseline: str, candidate: str, *, top: int = 20,
            segments: dict[str, str] | None = None) -> Comparison:
    """Compare two runs: coverage, deltas, rank agreement, bands, segments (over the baseline's
    snapshot inputs), movers, and the parameter and source diff of their algorithms."""
    with connect(store) as con:
        return compare_open(con, baseline, candidate, top=top, segments=segments)
