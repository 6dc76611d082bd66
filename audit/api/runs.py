"""Facade: algorithm versions, runs and their scores."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from ..errors import AuditError
from ..records import accounts as accts
from ..records import algorithms as algos
from ..records import runs as runs_
from ..records import snapshots as snaps
from ..records.algorithms import Algorithm
from ..records.runs import Run
from ._store import Store, is_path, reading, writing


def register(store: Store, path: str | Path, *, now: datetime) -> tuple[Algorithm, bool]:
    """Register the algorithm module at PATH; (algorithm, new)."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f'{path}: no such file')
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AuditError(f"{path}: not UTF-8 Python source") from None
    candidate = algos.from_source(source, str(path))
    if candidate.label in algos.SHIPPED and source != algos.shipped_source(candidate.label):
        raise AuditError(f"{path}: {candidate.label} is a shipped version of audit; give your algorithm "
                         "another NAME (or a VERSION that audit does not ship)")
    with writing(store, create=True) as con:
        return algos.register(con, candidate, now)


def algorithms(store: Store) -> list[Algorithm]:
    """Every registered algorithm version, and the shipped ones not registered in this store yet
    (registered_at None: a shipped version is registered when it first scores), by name and version."""
    with reading(store) as con:
        registered = algos.list_all(con)
    known = {a.label for a in registered}
    shipped = [algos.from_source(algos.shipped_source(label), label) for label in algos.SHIPPED if label not in known]
    return sorted(registered + shipped, key=lambda a: (a.name, a.version))


def get_algorithm(store: Store, ref: str) -> Algorithm:
    """One registered version by name@version or id prefix."""
    with reading(store) as con:
        return algos.resolve(con, ref, None)


def score(store: Store, snapshot: str, algorithm: str, *, now: datetime, counterfactual: bool = False,
          engine: str = "local", master: str | None = None, conf: Sequence[str] = (),
          data_dir: str | Path | None = None) -> Run:
    """Score SNAPSHOT with ALGORITHM (name@version) and store the run; an existing run is returned.

    engine "spark" runs the version's compute_spark on Apache Spark (`master`, default local[2];
    `conf`, KEY=VALUE settings) from the snapshot exported to Parquet under `data_dir` (default: the
    folder `<store name>-parquet` beside a store file)."""
    options = None
    if engine == runs_.SPARK:
        from ..records.spark import DEFAULT_MASTER, SparkOptions, check_master, parse_conf
        if data_dir is None and is_path(store):
            data_dir = Path(store).with_name(Path(store).stem + "-parquet")
        options = SparkOptions(master=check_master(master or DEFAULT_MASTER), conf=parse_conf(conf),
                               data_dir=None if data_dir is None else Path(data_dir))
    elif master is not None or conf:
        raise AuditError("--master and --conf are settings of --engine spark")
    with writing(store) as con:
        snap = snaps.resolve(con, snapshot)
        algo = algos.resolve(con, algorithm, now)
        return runs_.score_snapshot(con, snap, algo, now, counterfactual=counterfactual, engine=engine,
                                    spark=options)


def runs(store: Store) -> list[Run]:
    """Every run, by snapshot as-of, then algorithm."""
    with reading(store) as con:
        return runs_.list_all(con)


def get_run(store: Store, ref: str) -> Run:
    """One run by id or unique prefix."""
    with reading(store) as con:
        return runs_.resolve(con, ref)


def scores(store: Store, run: str, *, accounts: list[str] | None = None, top: int | None = None,
           topic: str | None = None) -> pl.DataFrame:
    """Scores of a run with their rank (1 = highest; ties share the best rank), best first, and
    one column per component. `accounts` picks many accounts at once (unknown ones are absent);
    `top` keeps the best N; `topic` is required for a topic run (ranks within the topic)."""
    from .topics import check_topic
    with reading(store) as con:
        r = runs_.resolve(con, run)
        topic = check_topic(con, r, topic)
        names = [c for c, _ in algos.get(con, r.algorithm_id).components]
        if accounts is not None:
            accounts = accts.resolve(con, accounts).ids      # ids and @handles (unknown handles: absent)
        df = runs_.ranked(con, r.run_id, accounts=accounts, top=top, topic=topic)
        df = accts.with_handles(df, accts.handles(con, df["account_id"].to_list()))
    return df.with_columns(
        [pl.col("components").list.get(i).alias(n) for i, n in enumerate(names)]).drop("components")
