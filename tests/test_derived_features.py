"""Derived features (schema migration 9): per-account facts of a snapshot stored once as a logged
record. Checked against an independent polars computation over the raw file, for identical compare
and explain output with and without them, for verify (tampered rows, --rerun), for ids that are
content hashes, and for a store made before the migration."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl
import pytest
from conftest import query
from explain_data import DATASETS, build, end_of, raw

from audit import api
from audit.api.analyses import _explain_runs, compare_runs
from audit.present.compare import comparison_json
from audit.present.explain import explanation_json
from audit.records import algorithms as algos
from audit.records import features as feats
from audit.records import runs as runs_
from audit.records import snapshots as snaps
from audit.store.db import connect, transaction
from audit.store.recipes import FEATURES_RECIPE, features_id_for

SEGMENTS = {"heavy": "CASE WHEN received >= 20 THEN 'heavy' ELSE 'light' END"}


@pytest.fixture(scope="module")
def alpha(tmp_path_factory):
    """The real Bitcoin Alpha trust network (signed whole-number ratings), dated snapshots, every version."""
    return build("alpha", tmp_path_factory.mktemp("derived-alpha"))


@pytest.fixture(scope="module")
def cm(tmp_path_factory):
    """The real CollegeMsg messages (self-messages included)."""
    return build("cm", tmp_path_factory.mktemp("derived-cm"))


def built_now() -> datetime:
    return datetime(2026, 3, 1, tzinfo=timezone.utc)


def store_all(path) -> dict[str, str]:
    """Store the features of every snapshot (one transaction); snapshot id -> features id."""
    with connect(path, write=True) as con, transaction(con):
        return {s.snapshot_id: feats.ensure(con, s, built_now())[0] for s in snaps.list_all(con)}


def copy(built, folder):
    target = folder / "copy.duckdb"
    target.write_bytes(built.path.read_bytes())
    wal = built.path.with_name(built.path.name + ".wal")
    if wal.exists():
        target.with_name(target.name + ".wal").write_bytes(wal.read_bytes())
    return target


# ---------------------------------------------------------------- the rows

def expected_rows(frame: pl.DataFrame, day: str, days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The features of a window of the raw file, computed with polars alone (no accounts file)."""
    end = end_of(day)
    w = frame.filter((pl.col("ts") >= end - timedelta(days=days)) & (pl.col("ts") < end))
    received = w.group_by(pl.col("target").alias("account_id")).agg(
        pl.len().cast(pl.Int64).alias("received"), pl.col("source").n_unique().cast(pl.Int64).alias("distinct_engagers"))
    given = w.group_by(pl.col("source").alias("account_id")).agg(
        pl.len().cast(pl.Int64).alias("given"),
        (pl.col("source") != pl.col("target")).sum().cast(pl.Int64).alias("given_others"))
    ids = pl.concat([w["source"], w["target"]]).unique().sort().to_frame("account_id")
    accounts = (ids.join(received, on="account_id", how="left").join(given, on="account_id", how="left")
                .with_columns(pl.col("received", "given", "distinct_engagers", "given_others").fill_null(0),
                              pl.lit(None, pl.Int64).alias("followers"), pl.lit(None, pl.Float64).alias("age_days"))
                .select(feats.ACCOUNT_COLUMNS))
    out = (w.filter(pl.col("source") != pl.col("target"))
           .group_by(pl.col("source").alias("account_id"), "kind", (pl.col("weight") < 0).alias("negative"))
           .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("weight").sum())
           .sort("account_id", "kind", "negative").select(feats.OUT_COLUMNS))
    return accounts, out


@pytest.mark.parametrize("name", ["alpha", "cm"])
def test_stored_features_equal_an_independent_computation(name, request, tmp_path):
    built = request.getfixturevalue(name)
    path = copy(built, tmp_path)
    ids = store_all(path)
    frame = raw(name)
    spec = DATASETS[name]
    with connect(path) as con:
        for day in spec.days:
            accounts, out = feats.stored(con, ids[built.snapshots[day]])
            want_accounts, want_out = expected_rows(frame, day, spec.window_days)
            assert accounts.height > 0
            assert accounts.cast({"followers": pl.Int64, "age_days": pl.Float64}).equals(want_accounts), day
            assert out.equals(want_out), day
            # and the segment features compare reads are the ones computed from the interactions
            snap = snaps.get(con, built.snapshots[day])
            assert feats.segment_features(con, snap).equals(snaps.features(con, snap))


# ---------------------------------------------------------------- the same output

def engaged_accounts(path, snapshot_id: str, k: int) -> list[str]:
    """The k accounts that received the most interactions in the snapshot, and the k-th from the end."""
    with connect(path) as con:
        f = snaps.features(con, snaps.get(con, snapshot_id)).sort(["received", "account_id"], descending=[True, False])
    top = f.filter(pl.col("received") > 0)["account_id"].to_list()
    return top[:k] + top[-k:]


def outputs(path, pairs, accounts) -> str:
    with connect(path) as con:
        out = []
        for a, b in pairs:
            r1, r2 = runs_.get(con, a), runs_.get(con, b)
            out.append(comparison_json(compare_runs(con, r1, r2, segments=SEGMENTS)))
            for account in accounts:
                if runs_.has(con, r1.run_id, account) or runs_.has(con, r2.run_id, account):
                    out.append(explanation_json(_explain_runs(con, account, r1, r2), engagers=10**6))
    return json.dumps(out, sort_keys=True, default=str)


@pytest.mark.parametrize("name", ["alpha", "cm"])
def test_compare_and_explain_are_the_same_with_and_without_stored_features(name, request, tmp_path):
    built = request.getfixturevalue(name)
    path = copy(built, tmp_path)
    days = DATASETS[name].days
    d1, d2 = days[-2], days[-1]
    pairs = [(built.run(d1, "network@3"), built.run(d2, "network@3")),      # data only
             (built.run(d1, "activity@1"), built.run(d2, "network@2")),     # both: counterfactuals
             (built.run(d1, "network@2"), built.run(d2, "network@3")),
             (built.run(d2, "network@2"), built.run(d2, "network@3"))]      # algorithm only
    for a, b in pairs[1:3]:      # the counterfactual runs, stored before either explanation
        with connect(path, write=True) as con, transaction(con):
            r1, r2 = runs_.get(con, a), runs_.get(con, b)
            for snap_id, algo_id in ((r2.snapshot_id, r1.algorithm_id), (r1.snapshot_id, r2.algorithm_id)):
                if runs_.find_for(con, snap_id, algo_id) is None:
                    runs_.score_snapshot(con, snaps.get(con, snap_id), algos.get(con, algo_id), built_now(),
                                         counterfactual=True)
    accounts = engaged_accounts(path, built.snapshots[d2], 3)
    assert query(path, "SELECT count(*) FROM features") == [(0,)]
    before = outputs(path, pairs, accounts)                 # from the interactions
    with connect(path) as con:
        reference = explanation_json(_explain_runs(con, accounts[0], runs_.get(con, pairs[1][0]),
                                                   runs_.get(con, pairs[1][1])), engagers=10**6)
    store_all(path)
    assert query(path, "SELECT count(*) FROM features")[0][0] == len(built.snapshots)
    after = outputs(path, pairs, accounts)                  # from the stored features
    assert after == before
    # the facade stores nothing more and says the same
    e = api.explain(path, accounts[0], from_run=pairs[1][0], to_run=pairs[1][1], now=built_now())
    assert explanation_json(e, engagers=10**6) == reference
    assert query(path, "SELECT count(*) FROM features")[0][0] == len(built.snapshots)


def test_explain_and_compare_store_the_features_they_need_once(alpha, tmp_path):
    path = copy(alpha, tmp_path)
    d1, d2 = DATASETS["alpha"].days[-2:]
    a, b = alpha.run(d1, "network@2"), alpha.run(d2, "network@3")
    account = engaged_accounts(path, alpha.snapshots[d2], 1)[0]
    api.compare(path, a, b)                                    # without now: nothing stored
    assert query(path, "SELECT count(*) FROM features") == [(0,)]
    first = api.compare(path, a, b, now=built_now())           # with now: the baseline's features
    assert query(path, "SELECT snapshot_id FROM features") == [(alpha.snapshots[d1],)]
    assert comparison_json(api.compare(path, a, b)) == comparison_json(first)
    e1 = api.explain(path, account, from_run=a, to_run=b, now=built_now())
    assert sorted(r[0] for r in query(path, "SELECT snapshot_id FROM features")) == sorted(
        [alpha.snapshots[d1], alpha.snapshots[d2]])
    entries = query(path, "SELECT count(*) FROM log")
    e2 = api.explain(path, account, from_run=a, to_run=b, now=built_now())
    assert query(path, "SELECT count(*) FROM log") == entries
    assert explanation_json(e1) == explanation_json(e2)
    assert query(path, "SELECT record_kind, count(*) FROM log WHERE record_kind = 'features' GROUP BY 1") == [
        ("features", 2)]


# ---------------------------------------------------------------- ids, verify

def test_the_features_id_is_a_content_hash(alpha, tmp_path):
    path = copy(alpha, tmp_path)
    ids = store_all(path)
    counts = query(path, "SELECT (SELECT count(*) FROM features), (SELECT count(*) FROM account_feature), "
                         "(SELECT count(*) FROM account_out), (SELECT count(*) FROM log)")
    again = store_all(path)                                 # computed again: the same ids, nothing added
    assert again == ids
    assert query(path, "SELECT (SELECT count(*) FROM features), (SELECT count(*) FROM account_feature), "
                       "(SELECT count(*) FROM account_out), (SELECT count(*) FROM log)") == counts
    for snapshot_id, features_id in ids.items():
        (content,), = query(path, "SELECT content_hash FROM snapshot WHERE snapshot_id = ?", [snapshot_id])
        assert features_id == features_id_for(content, FEATURES_RECIPE)
    # another store of the same inputs names the same snapshot's features the same
    (tmp_path / "other").mkdir()
    other = build("alpha", tmp_path / "other")
    assert store_all(other.path)[other.snapshots[DATASETS["alpha"].days[0]]] == ids[alpha.snapshots[
        DATASETS["alpha"].days[0]]]


@pytest.mark.parametrize(("sql", "table"), [
    ("UPDATE account_feature SET received = received + 1 WHERE account_id = (SELECT min(account_id) FROM "
     "account_feature) AND features_id = ?", "account_feature"),
    ("UPDATE account_out SET weight = weight + 1 WHERE account_id = (SELECT min(account_id) FROM account_out) "
     "AND features_id = ?", "account_out"),
])
def test_verify_names_a_tampered_feature_row(alpha, tmp_path, sql, table):
    path = copy(alpha, tmp_path)
    ids = store_all(path)
    assert api.verify(path).ok
    target = ids[alpha.snapshots[DATASETS["alpha"].days[-1]]]
    con = duckdb.connect(str(path))
    con.execute(sql, [target])
    con.close()
    v = api.verify(path)
    assert not v.ok
    assert [p["record_id"] for p in v.problems] == [target]
    assert table in v.problems[0]["problem"] and target in v.problems[0]["problem"]


def test_verify_rerun_recomputes_the_features(alpha, tmp_path, monkeypatch):
    path = copy(alpha, tmp_path)
    ids = store_all(path)
    v = api.verify(path, rerun=True)
    assert (v.ok, v.problems) == (True, [])
    # a computation that gives other rows than the stored ones is found by the rerun only
    real = feats.compute

    def other(con, snap):
        accounts, out = real(con, snap)
        return accounts.with_columns(pl.col("given_others") * 2), out
    monkeypatch.setattr(feats, "compute", other)
    assert api.verify(path).ok
    v = api.verify(path, rerun=True)
    assert not v.ok
    assert sorted(p["record_id"] for p in v.problems) == sorted(ids.values())
    assert all("recomputing the features" in p["problem"] for p in v.problems)


# ---------------------------------------------------------------- migration 9

def test_a_store_at_migration_8_migrates_and_keeps_its_records(cm, tmp_path):
    path = copy(cm, tmp_path)
    con = duckdb.connect(str(path))        # undo migration 9, as a store made before it looks
    con.execute("DROP TABLE account_out; DROP TABLE account_feature; DROP TABLE features; "
                "DELETE FROM schema_migration WHERE version = 9")
    con.close()
    tables = ["batch", "snapshot", "algorithm", "run", "score", "run_normalisation", "log"]
    before = {t: query(path, f"SELECT * FROM {t} ORDER BY rowid") for t in tables}
    with pytest.raises(Exception, match="run a writing command"):
        api.compare(path, cm.run(DATASETS["cm"].days[0], "network@2"), cm.run(DATASETS["cm"].days[1], "network@2"))
    d1, d2 = DATASETS["cm"].days
    api.snapshot(path, as_of=d1, window=f"{DATASETS['cm'].window_days}d", now=built_now())  # a writer: migrates
    assert query(path, "SELECT max(version) FROM schema_migration") == [(9,)]
    assert query(path, "SELECT count(*) FROM features") == [(0,)]
    api.compare(path, cm.run(d1, "network@2"), cm.run(d2, "network@3"), now=built_now())
    after = {t: query(path, f"SELECT * FROM {t} ORDER BY rowid") for t in tables}
    for t in tables:
        if t == "log":
            assert after[t][:len(before[t])] == before[t]
            assert [r[1] for r in after[t][len(before[t]):]] == ["features"]
        else:
            assert after[t] == before[t], t
    v = api.verify(path, rerun=True)
    assert (v.ok, v.problems) == (True, [])
