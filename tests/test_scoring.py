"""Versioned algorithms and runs, on the real Higgs week: scores in range, components adding
up, reruns reproducing stored results bit for bit, tampering pinpointed, stored source (not
the file on disk) executed, one transaction per run, the output contract enforced, ranks.

One store is built per session (`build_real_store`, shared with test_publications): all
563,069 interactions, daily 7d snapshots 2012-07-01..07, each scored with activity@1 and
network@2 under a clock that ticks one second per write from 2026-01-01 UTC. Tests that
write copy it first.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import platform
import re
import subprocess
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit import api
from audit.store import recipes
from audit.records import runs as scoring
from audit.records import verify
from audit.algorithms import activity_v1, network_v2, network_v3
from audit.records import algorithms as registry
from audit.errors import AuditError
from audit.records.snapshots import get as get_snapshot
from audit.records.snapshots import load_inputs
from audit.store.db import connect

from conftest import DAYS, Clock, query, read_frame, run_audit

ROOT = Path(__file__).resolve().parent.parent
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
INDEGREE = ROOT / "tests" / "algorithms" / "indegree_v1.py"
ALGORITHMS = ("activity@1", "network@2")
MODULES = {"activity@1": activity_v1, "network@2": network_v2, "network@3": network_v3}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
HIGGS_ACCOUNTS = 304_691




def tamper(store: Path, sql: str, params: list | None = None) -> None:
    """Raw SQL on the store file, as a careless script would do it."""
    con = duckdb.connect(str(store))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def counts(store: Path) -> dict[str, int]:
    return {t: query(store, f"SELECT count(*) FROM {t}")[0][0] for t in ("algorithm", "run", "score", "log")}


def file_state(store: Path) -> tuple[str, bool]:
    return hashlib.sha256(store.read_bytes()).hexdigest(), store.with_name(store.name + ".wal").exists()


def audit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_audit(*args, cwd=cwd)


def load_file_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot_inputs(store: Path, snapshot_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    with connect(store) as con:
        return load_inputs(con, get_snapshot(con, snapshot_id))


# ---------------------------------------------------------------- what every run holds

def test_the_store_holds_one_run_per_day_and_version(real):
    runs = api.runs(real.path)
    assert len(runs) == len(DAYS) * len(ALGORITHMS) == 14
    assert {(r.snapshot_id, r.algorithm) for r in runs} == {
        (real.snapshots[day], a) for day in DAYS for a in ALGORITHMS}
    assert {r.run_id for r in runs} == set(real.runs.values())
    assert not any(r.counterfactual for r in runs)
    last = {r.algorithm: r.accounts for r in runs if r.snapshot_id == real.snapshots["2012-07-07"]}
    assert last == {"activity@1": HIGGS_ACCOUNTS, "network@2": HIGGS_ACCOUNTS}


def test_every_score_is_in_range_and_components_add_up_to_raw(real):
    per_run = query(real.path, """
        SELECT r.run_id, a.name || '@' || a.version, r.accounts, s.snapshot_accounts,
               count(*), count(DISTINCT sc.account_id), min(sc.score), max(sc.score),
               max(abs(list_sum(sc.components) - sc.raw)),
               count(*) FILTER (WHERE len(sc.components) <> json_array_length(a.components))
        FROM score sc JOIN run r USING (run_id) JOIN algorithm a USING (algorithm_id)
        JOIN (SELECT snapshot_id, accounts AS snapshot_accounts FROM snapshot) s USING (snapshot_id)
        GROUP BY ALL ORDER BY 1""")
    assert len(per_run) == 14
    for run_id, algorithm, accounts, snapshot_accounts, rows, distinct, low, high, gap, bad_len in per_run:
        assert rows == distinct == accounts == snapshot_accounts, run_id     # one row per account
        assert 1.0 <= low <= high <= 100.0, (run_id, low, high)
        assert gap <= 1e-12, (run_id, algorithm, gap)
        assert bad_len == 0, run_id
    # the stored component names are the algorithm's COMPONENTS, in declared order
    from audit.records.algorithms import SHIPPED
    for algo in api.algorithms(real.path):      # registered and shipped
        module = importlib.import_module(f"audit.algorithms.{SHIPPED[algo.label][:-3]}")
        assert [c for c, _ in algo.components] == list(module.COMPONENTS)


def test_components_add_up_in_declared_order_over_the_whole_store(real):
    """The same check in polars, summing left to right as the algorithms do."""
    rows = read_frame(real.path, "SELECT run_id, raw, components FROM score")
    summed = rows.with_columns(
        pl.col("components").list.eval(pl.element().cum_sum()).list.last().alias("summed"))
    worst = summed.select((pl.col("summed") - pl.col("raw")).abs().max()).item()
    assert summed.height == query(real.path, "SELECT sum(accounts) FROM run")[0][0]
    assert worst <= 1e-12


def test_engine_versions_are_recorded(real):
    expected = {"python": platform.python_version(),
                **{name: metadata.version(name) for name in ("duckdb", "polars", "numpy", "scipy")}}
    for run in api.runs(real.path):
        assert run.engines == expected
    stored = {json.loads(e)["scipy"] for (e,) in query(real.path, "SELECT engines FROM run")}
    assert stored == {expected["scipy"]}


# ---------------------------------------------------------------- reproducible

@pytest.mark.slow
def test_rerun_reproduces_every_result_hash(real):
    result = api.verify(real.path, rerun=True)
    assert result.problems == []
    assert result.ok
    assert result.reran == len(api.runs(real.path)) == 14
    assert result.notes == []                 # same engines: nothing to say
    assert result.entries == 1 + 7 + 2 + 14   # batch, snapshots, two shipped versions, runs


def test_rerun_of_one_run_equals_its_stored_rows(real):
    """Executing the stored source again gives the stored rows themselves, not only the hash."""
    run_id = real.runs[("2012-07-03", "network@2")]
    with connect(real.path) as con:
        run = scoring.get(con, run_id)
        fresh, _ = scoring.compute(con, get_snapshot(con, run.snapshot_id), registry.get(con, run.algorithm_id))
        stored = scoring.stored_scores(con, run_id)
    assert_frame_equal(fresh, stored, check_exact=True)
    assert recipes.result_hash(fresh) == run.result_hash


def test_scoring_the_same_snapshot_again_returns_the_stored_run(real, tmp_path):
    store = real.copy_to(tmp_path)
    before = counts(store)
    stored = api.get_run(store, real.runs[("2012-07-05", "activity@1")])
    again = api.score(store, real.snapshots["2012-07-05"], "activity@1", now=START + timedelta(days=30))
    assert again.new is False
    assert again == stored
    assert counts(store) == before


# ---------------------------------------------------------------- tampering

@pytest.mark.slow
def test_one_tampered_score_is_pinpointed(real, tmp_path):
    store = real.copy_to(tmp_path)
    run_id = real.runs[("2012-07-06", "network@2")]
    account = api.scores(store, run_id, top=1)["account_id"][0]
    tamper(store, "UPDATE score SET score = score + 1 WHERE run_id = ? AND account_id = ?", [run_id, account])

    result = api.verify(store)
    assert not result.ok
    assert [(p["kind"], p["record_id"]) for p in result.problems] == [("run", run_id)]
    assert result.problems[0]["problem"] == (
        f"run {run_id} changed after it was stored (its content hash no longer matches the log)")

    proc = audit("--store", str(store), "verify", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    seq = result.problems[0]["seq"]
    assert lines[0] == (f"FAIL log entry {seq}: run {run_id} changed after it was stored "
                        "(its content hash no longer matches the log)")
    assert re.fullmatch(r"1 problem\(s\): 24 log entries checked, head [0-9a-f]{16}", lines[1])
    assert len(lines) == 2


def test_tampered_algorithm_source_is_detected_and_refused(real, tmp_path):
    store = real.copy_to(tmp_path)
    activity = api.get_algorithm(store, "activity@1")
    # double the retweet weight in the stored source, as someone "fixing" it in place would
    assert '"retweets": 1.0,' in activity.source
    tamper(store, "UPDATE algorithm SET source = replace(source, '\"retweets\": 1.0,', '\"retweets\": 2.0,') "
                  "WHERE algorithm_id = ?", [activity.algorithm_id])

    result = api.verify(store)
    assert not result.ok
    assert [(p["kind"], p["record_id"]) for p in result.problems] == [("algorithm", activity.algorithm_id)]
    assert activity.algorithm_id in result.problems[0]["problem"]

    # the stored runs stay readable; a new run with the tampered source is refused before it executes
    snap = api.snapshot(store, as_of="2012-07-04T12:00:00Z", window="1d", now=START + timedelta(days=30))
    before = counts(store)
    with pytest.raises(AuditError) as exc:
        api.score(store, snap.snapshot_id, "activity@1", now=START + timedelta(days=30, seconds=1))
    assert str(exc.value) == (
        f"algorithm activity@1 ({activity.algorithm_id}): stored source does not match its registered "
        "sha256; refusing to run it (audit verify names the change)")
    assert counts(store) == before
    # network@2, untouched, still scores the new snapshot
    assert api.score(store, snap.snapshot_id, "network@2", now=START + timedelta(days=30, seconds=2)).new


def test_tampered_algorithm_parameters_are_refused(real, tmp_path):
    """The parameters a run is given come from the store: changed there, they must not be used."""
    store = real.copy_to(tmp_path)
    activity = api.get_algorithm(store, "activity@1")
    assert '"retweets":1.0' in query(store, "SELECT params FROM algorithm WHERE algorithm_id = ?",
                                     [activity.algorithm_id])[0][0]
    tamper(store, "UPDATE algorithm SET params = replace(params, '\"retweets\":1.0', '\"retweets\":2.0') "
                  "WHERE algorithm_id = ?", [activity.algorithm_id])
    assert api.get_algorithm(store, "activity@1").params["weights"]["retweets"] == 2.0
    snap = api.snapshot(store, as_of="2012-07-04T12:00:00Z", window="1d", now=START + timedelta(days=30))
    before = counts(store)
    with pytest.raises(AuditError) as exc:
        api.score(store, snap.snapshot_id, "activity@1", now=START + timedelta(days=30, seconds=1))
    assert str(exc.value) == (
        f"algorithm activity@1 ({activity.algorithm_id}): stored parameters do not match its registration; "
        "refusing to run it (audit verify names the change)")
    assert counts(store) == before
    with connect(store) as con:        # verify's check of that one record
        logged = con.execute("SELECT content_hash FROM log WHERE record_id = ?", [activity.algorithm_id]).fetchall()
        assert verify.recompute_algorithm(con, activity.algorithm_id) != logged[0][0]


def small_store_with(tmp_path: Path, source: str) -> tuple[Path, str]:
    """A store holding just one registered algorithm (no inputs): verify on it is instant."""
    path = tmp_path / "algo.py"
    path.write_text(source)
    store = tmp_path / "small.duckdb"
    algo, new = api.register(store, path, now=START)
    assert new
    return store, algo.algorithm_id


def test_verify_reports_stored_source_that_no_longer_loads(tmp_path):
    store, algorithm_id = small_store_with(tmp_path, INDEGREE.read_text())
    tamper(store, "UPDATE algorithm SET source = 'this is not python' WHERE algorithm_id = ?", [algorithm_id])
    result = api.verify(store)
    assert not result.ok
    assert [(p["kind"], p["record_id"]) for p in result.problems] == [("algorithm", algorithm_id)]


# ---------------------------------------------------------------- the stored source is what runs

def test_the_stored_source_runs_not_the_file_on_disk(real, tmp_path):
    store = real.copy_to(tmp_path)
    clock = Clock(START + timedelta(days=30))
    original = INDEGREE.read_text()
    mine = tmp_path / "indegree.py"
    mine.write_text(original)
    algo, new = api.register(store, mine, now=clock())
    assert new and algo.label == "indegree@1" and algo.source == original

    reference = load_file_module(INDEGREE, "indegree_reference")

    def expected(snapshot_id: str) -> pl.DataFrame:
        interactions, accounts = snapshot_inputs(store, snapshot_id)
        return reference.score(interactions, accounts, reference.PARAMS)

    def got(run_id: str) -> pl.DataFrame:
        return api.scores(store, run_id).select("account_id", "raw", "score", "received").sort("account_id")

    first = api.score(store, real.snapshots["2012-07-01"], "indegree@1", now=clock())
    assert_frame_equal(got(first.run_id), expected(real.snapshots["2012-07-01"]), check_exact=True)

    # someone edits the file on disk: a different scale, and raw no longer log-scaled
    changed = original.replace('PARAMS = {"scale": 99.0}', 'PARAMS = {"scale": 50.0}').replace(
        '.log1p().alias("received")', '.alias("received")')
    assert changed.count("50.0") == 1 and ".log1p()" not in changed
    mine.write_text(changed)

    snap = api.snapshot(store, as_of="2012-07-02T06:00:00Z", window="6h", now=clock())
    second = api.score(store, snap.snapshot_id, "indegree@1", now=clock())
    assert second.new and second.algorithm_id == algo.algorithm_id
    want = expected(snap.snapshot_id)
    assert_frame_equal(got(second.run_id), want, check_exact=True)
    edited = load_file_module(mine, "indegree_edited")
    interactions, accounts = snapshot_inputs(store, snap.snapshot_id)
    assert not edited.score(interactions, accounts, edited.PARAMS).equals(want)

    # the edited file cannot take the registered name@version
    log_before = counts(store)["log"]
    with pytest.raises(AuditError) as exc:
        api.register(store, mine, now=clock())
    bump = (f"indegree@1 is already registered with different source ({algo.algorithm_id}); stored "
            "versions never change: bump VERSION (e.g. indegree@2) to register the new one")
    assert str(exc.value) == bump
    proc = audit("--store", str(store), "register", str(mine), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"error: {bump}\n")
    assert counts(store)["log"] == log_before

    # the same file as registered is a no-op; with VERSION bumped it is a new version beside the old
    mine.write_text(original)
    assert api.register(store, mine, now=clock()) == (algo, False)
    mine.write_text(changed.replace("VERSION = 1", "VERSION = 2"))
    bumped, new = api.register(store, mine, now=clock())
    assert new and bumped.label == "indegree@2" and bumped.params == {"scale": 50.0}
    assert api.get_algorithm(store, "indegree@1").source == original


# ---------------------------------------------------------------- one transaction per run

FAILING = '''"""boom@1: counts what it receives, then fails before returning."""
import polars as pl

NAME = "boom"
VERSION = 1
DESCRIPTION = "Fails midway."
CHANGELOG = "First version."
PARAMS = {}
COMPONENTS = {"received": "Interactions received"}


def score(interactions, accounts, params):
    received = interactions.group_by("target").agg(pl.len().alias("n"))
    raise RuntimeError(f"lost the connection after {received.height} targets")
'''


def test_a_failing_algorithm_stores_nothing(real, tmp_path):
    store = real.copy_to(tmp_path)
    path = tmp_path / "boom.py"
    path.write_text(FAILING)
    algo, _ = api.register(store, path, now=START + timedelta(days=30))
    snapshot_id = real.snapshots["2012-07-02"]
    targets = snapshot_inputs(store, snapshot_id)[0]["target"].n_unique()
    before_counts, before_bytes = counts(store), file_state(store)
    with pytest.raises(AuditError) as exc:
        api.score(store, snapshot_id, "boom@1", now=START + timedelta(days=30, seconds=1))
    assert str(exc.value) == (f"algorithm boom@1 failed on snapshot {snapshot_id}: "
                              f"RuntimeError: lost the connection after {targets} targets")
    assert counts(store) == before_counts
    assert file_state(store) == before_bytes
    assert query(store, "SELECT count(*) FROM run WHERE algorithm_id = ?", [algo.algorithm_id]) == [(0,)]


# ---------------------------------------------------------------- the output contract

def indegree_variant(name: str, old: str, new: str) -> str:
    source = INDEGREE.read_text()
    assert source.count(old) == 1, old
    return source.replace(old, new).replace('NAME = "indegree"', f'NAME = "{name}"')


VARIANTS = {
    "unsorted": indegree_variant("unsorted", '.sort("account_id"))', '.sort("account_id", descending=True))'),
    # the most engaged account's raw gets 0.001 its components do not have
    "leaky": indegree_variant(
        "leaky", 'pl.col("received").alias("raw")',
        '(pl.col("received") + pl.when(pl.col("received") == pl.col("received").max())'
        '.then(0.001).otherwise(0.0)).alias("raw")'),
    # ids as numbers: they would be stored as text, so the stored rows would no longer hash as computed
    "intids": indegree_variant("intids", 'return out.select("account_id", "raw", "score", "received")',
                               'return out.select(pl.col("account_id").cast(pl.Int64), "raw", "score", '
                               '"received").sort("account_id")'),
    # only the accounts that receive something: the contract is one row per account of the snapshot
    "subset": indegree_variant("subset", 'return out.select("account_id", "raw", "score", "received")',
                               'return out.filter(pl.col("raw") > 0).select("account_id", "raw", "score", '
                               '"received")'),
    # an account nobody engages with scores 0
    "zero": indegree_variant("zero", 'np.clip(1.0 + params["scale"] * raw / top, 1.0, 100.0)',
                             'np.where(raw > 0, np.clip(1.0 + params["scale"] * raw / top, 1.0, 100.0), 0.0)'),
}


@pytest.fixture(scope="module")
def contract_store(real, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("contract")
    store = real.copy_to(folder)
    for i, (name, source) in enumerate(VARIANTS.items()):
        path = folder / f"{name}.py"
        path.write_text(source)
        api.register(store, path, now=START + timedelta(days=30, seconds=i))
    return store


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_output_contract_is_enforced(name, real, contract_store):
    snapshot_id = real.snapshots["2012-07-01"]
    interactions, accounts = snapshot_inputs(contract_store, snapshot_id)
    reference = load_file_module(INDEGREE, "indegree_reference").score(interactions, accounts, {"scale": 99.0})
    top = reference.filter(pl.col("received") == pl.col("received").max())["account_id"]
    assert top.len() == 1 and reference["received"].min() == 0
    receiving = reference.filter(pl.col("received") > 0).height
    expected = {
        "intids": "algorithm intids@1: account_id must be a String column, not Int64",
        "subset": (f"algorithm subset@1: score() returned {receiving:,} rows for the snapshot's "
                   f"{reference.height:,} accounts; the contract is one row per account"),
        "unsorted": "algorithm unsorted@1: output must be sorted by account_id",
        "leaky": f"algorithm leaky@1: components do not add up to raw for account {top[0]} (off by 0.001)",
        "zero": f"algorithm zero@1: score must lie in 1..100 (found 0.0..{reference['score'].max()})",
    }[name]
    before = counts(contract_store)
    with pytest.raises(AuditError) as exc:
        api.score(contract_store, snapshot_id, f"{name}@1", now=START + timedelta(days=31))
    assert str(exc.value) == expected
    assert counts(contract_store) == before


# ---------------------------------------------------------------- reading scores

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_scores_of_many_accounts_rank_against_the_whole_run(algorithm, real):
    run_id = real.runs[("2012-07-07", algorithm)]
    full = read_frame(real.path, "SELECT account_id, score, raw FROM score WHERE run_id = ?", [run_id])
    full = full.with_columns(pl.col("score").rank("min", descending=True).cast(pl.Int64).alias("rank"))
    assert full["score"].is_duplicated().any()                 # ties are real: rank must handle them
    rng = np.random.default_rng(7)
    picked = sorted(rng.choice(full["account_id"].to_numpy(), size=5_000, replace=False).tolist())
    unknown = ["no-such-account", "0000000"]
    got = api.scores(real.path, run_id, accounts=picked + unknown)
    assert got.columns == ["account_id", "handle", "score", "raw", "rank", *MODULES[algorithm].COMPONENTS]
    assert got["handle"].null_count() == got.height          # the Higgs data has no accounts file
    assert got.height == 5_000 and set(got["account_id"]) == set(picked)
    want = full.filter(pl.col("account_id").is_in(picked)).sort(["rank", "account_id"])
    assert_frame_equal(got.select("account_id", "score", "raw", "rank"), want, check_exact=True)
    # a few accounts take the other path (a count per account): the same frame
    few = api.scores(real.path, run_id, accounts=picked[:7] + picked[-3:] + unknown)
    assert_frame_equal(few, got.filter(pl.col("account_id").is_in(picked[:7] + picked[-3:])), check_exact=True)
    # rank = 1 + the number of accounts with a strictly higher score, spelled out for a few
    scores = full["score"].to_numpy()
    for row in got.head(3).vstack(got.tail(3)).iter_rows(named=True):
        assert row["rank"] == 1 + int((scores > row["score"]).sum())

    top = api.scores(real.path, run_id, top=25)
    expected_top = full.sort(["score", "account_id"], descending=[True, False]).head(25)
    assert_frame_equal(top.select("account_id", "score", "raw", "rank"), expected_top, check_exact=True)
    assert api.scores(real.path, run_id, accounts=[]).height == 0


def test_a_shipped_label_cannot_be_taken_by_other_source(tmp_path):
    """Registering different source as activity@1 is refused, so the shipped label always means
    the shipped module (even before its first use registers it)."""
    from audit.records import algorithms as registry
    src = registry.shipped_source("activity@1").replace('"ref_quantile": 0.99', '"ref_quantile": 0.5')
    path = tmp_path / "mine.py"
    path.write_text(src)
    with pytest.raises(AuditError, match=r"activity@1 is a shipped version of audit; give your algorithm another NAME"):
        api.register(tmp_path / "s.duckdb", path, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert not (tmp_path / "s.duckdb").exists()
    (tmp_path / "same.py").write_text(registry.shipped_source("activity@1"))
    algo, new = api.register(tmp_path / "s.duckdb", tmp_path / "same.py", now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert (algo.label, new) == ("activity@1", True)
