"""The `--json` contract of every result type, without click: each `present.*_json` document,
encoded by `present.dumps` and decoded again, holds the values of the result it was made from,
field by field, and those values agree with the store (SQL) and the raw file (polars).

The results are real: a small store holding the first two days of the bundled Higgs file (20,244
interactions), a 7-day snapshot as of the end of each day, both shipped versions on each,
activity@1 published for both days and network@2 restating day 2.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
import scipy.stats

from audit import api, present
from audit.algorithms import activity_v1, network_v2
from conftest import HIGGS, Clock, query, read_frame

DAYS = ("2012-07-01", "2012-07-02")
LINES = 20_244                                  # the file's interactions of 2012-07-01 and 07-02
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
MODULES = {"activity@1": activity_v1, "network@2": network_v2}
KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}


def jsonish(value: Any) -> Any:
    """What a JSON document holds for a Python value after encoding and decoding: NaN and inf
    become null, tuples lists, mapping keys strings, instants ISO 8601 text."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return jsonish(value.item())
    if isinstance(value, dict):
        return {str(k): jsonish(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonish(v) for v in value]
    if isinstance(value, pl.DataFrame):
        return [jsonish(r) for r in value.to_dicts()]
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonish(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def decoded(doc: Any) -> Any:
    """A document as every door prints it (`present.dumps`), read back."""
    text = present.dumps(doc)
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2)          # sorted keys, one encoding
    return json.loads(text)


def rank_of(store: Path, run_id: str) -> pl.DataFrame:
    """Every stored score of a run with its rank computed here: 1 + the number of accounts of
    the run with a strictly higher score."""
    frame = read_frame(store, "SELECT account_id, score, raw FROM score WHERE run_id = ?", [run_id])
    ordered = np.sort(frame["score"].to_numpy())
    higher = ordered.size - np.searchsorted(ordered, frame["score"].to_numpy(), side="right")
    return frame.with_columns(pl.Series("rank", 1 + higher, dtype=pl.Int64))


def raw_lines() -> pl.DataFrame:
    """The first LINES lines of the Higgs file read with polars: source, target, kind, ts."""
    raw = pl.read_csv(HIGGS, separator=" ", has_header=False, infer_schema=False, n_rows=LINES,
                      new_columns=["source", "target", "epoch", "code"])
    return raw.select("source", "target", pl.col("code").replace_strict(KINDS).alias("kind"),
                      pl.from_epoch(pl.col("epoch").cast(pl.Int64), time_unit="s").dt.replace_time_zone("UTC")
                      .dt.cast_time_unit("us").alias("ts"))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("present")
    src = folder / "higgs-2-days.txt"
    with gzip.open(HIGGS, "rt") as fh:
        src.write_text("".join(next(fh) for _ in range(LINES)))
    store, clock = folder / "audit.duckdb", Clock(START)
    ingested = api.ingest(store, src, now=clock())
    again = api.ingest(store, src, now=clock())
    snaps = {day: api.snapshot(store, as_of=day, window="7d", label=day, now=clock()) for day in DAYS}
    runs = {(day, a): api.score(store, snaps[day].snapshot_id, a, now=clock()) for day in DAYS for a in MODULES}
    published = [api.publish(store, runs[(day, "activity@1")].run_id, period=day, now=clock()) for day in DAYS]
    published.append(api.publish(store, runs[(DAYS[1], "network@2")].run_id, period=DAYS[1], now=clock()))
    return {"store": store, "src": src, "ingested": ingested, "again": again, "snapshots": snaps, "runs": runs,
            "published": published, "raw": raw_lines()}


# ---------------------------------------------------------------- compare

PAIRS = {"new version, same snapshot": ((DAYS[1], "activity@1"), (DAYS[1], "network@2")),
         "same version, next day": ((DAYS[0], "activity@1"), (DAYS[1], "activity@1"))}


@pytest.mark.parametrize("pair", PAIRS)
def test_comparison_json_holds_the_comparison(small, pair):
    store = small["store"]
    b_key, c_key = PAIRS[pair]
    baseline, candidate = small["runs"][b_key], small["runs"][c_key]
    c = api.compare(store, baseline.run_id, candidate.run_id, top=15)
    doc = decoded(present.comparison_json(c))

    # the two headline statistics, each under its own name (they differ on these runs)
    assert math.isfinite(c.spearman) and math.isfinite(c.kendall_tau_b) and c.spearman != c.kendall_tau_b
    assert doc["spearman"] == c.spearman == c.agreement[0].spearman
    assert doc["kendall_tau_b"] == c.kendall_tau_b == c.agreement[0].kendall_tau_b
    # ... and they are scipy's on the stored scores of the accounts in both runs
    pair_scores = read_frame(store, """
        SELECT b.score AS b, c.score AS c FROM score b JOIN score c USING (account_id)
        WHERE b.run_id = ? AND c.run_id = ? ORDER BY account_id""", [baseline.run_id, candidate.run_id])
    assert doc["spearman"] == pytest.approx(scipy.stats.spearmanr(pair_scores["b"], pair_scores["c"]).statistic,
                                            abs=1e-12)
    assert doc["kendall_tau_b"] == pytest.approx(
        scipy.stats.kendalltau(pair_scores["b"], pair_scores["c"]).statistic, abs=1e-12)

    # which side is which
    for side, info, run in (("baseline", c.baseline, baseline), ("candidate", c.candidate, candidate)):
        assert doc[side] == {"run_id": info.run_id, "snapshot_id": info.snapshot_id,
                             "snapshot_label": info.snapshot_label, "algorithm": info.algorithm,
                             "params": jsonish(dict(info.params))}
        assert (doc[side]["run_id"], doc[side]["snapshot_id"], doc[side]["algorithm"]) == (
            run.run_id, run.snapshot_id, run.algorithm)
        assert doc[side]["params"] == MODULES[run.algorithm].PARAMS
    assert doc["coverage"] == {"both": c.coverage.both, "only_baseline": c.coverage.only_baseline,
                               "only_candidate": c.coverage.only_candidate}
    assert doc["coverage"]["both"] == pair_scores.height
    assert doc["deltas"] == {f.name: jsonish(getattr(c.deltas, f.name)) for f in dataclasses.fields(c.deltas)}
    delta = (pair_scores["c"] - pair_scores["b"]).to_numpy()
    assert doc["deltas"]["mean"] == pytest.approx(delta.mean(), abs=1e-9)
    assert doc["deltas"]["accounts"] == pair_scores.height
    assert doc["agreement"] == [{"scope": a.scope, "accounts": a.accounts, "spearman": jsonish(a.spearman),
                                 "kendall_tau_b": jsonish(a.kendall_tau_b)} for a in c.agreement]
    assert [a["scope"] for a in doc["agreement"]] == ["all", "top_10pct", "top_1pct"]
    assert doc["rbo"] == {str(p): jsonish(v) for p, v in c.rbo.items()} and len(doc["rbo"]) == 2
    assert doc["top_k_overlap"] == {str(k): jsonish(v) for k, v in c.top_k_overlap.items()}
    assert doc["top_k_accounts"] == {str(k): n for k, n in c.top_k_accounts.items()}
    assert all(n == min(k, c.coverage.both + min(c.coverage.only_baseline, c.coverage.only_candidate))
               for k, n in c.top_k_accounts.items())
    assert doc["bands"] == {"labels": list(c.band_labels), "matrix": [list(row) for row in c.bands]}
    assert sum(map(sum, doc["bands"]["matrix"])) == c.coverage.both
    assert doc["segments"] == jsonish(c.segments) and len(doc["segments"]) == c.segments.height > 0
    assert doc["movers"] == {"risers": jsonish(c.risers), "fallers": jsonish(c.fallers)}
    assert len(doc["movers"]["risers"]) == len(doc["movers"]["fallers"]) == 15
    assert doc["param_changes"] == [{"path": p.path, "kind": p.kind, "baseline": jsonish(p.baseline),
                                     "candidate": jsonish(p.candidate)} for p in c.param_changes]
    assert doc["source_diff"] == c.source_diff
    assert doc["any_difference"] is c.any_difference is True
    assert set(doc) == {"baseline", "candidate", "coverage", "deltas", "spearman", "kendall_tau_b", "agreement",
                        "rbo", "top_k_overlap", "top_k_accounts", "bands", "segments", "movers", "param_changes", "source_diff",
                        "any_difference"}
    if b_key[1] == c_key[1]:
        assert (doc["param_changes"], doc["source_diff"]) == ([], "")
    else:
        assert {p["path"] for p in doc["param_changes"]} >= {"damping", "kind_weights", "weights"}
        assert doc["source_diff"].startswith("---")


# ---------------------------------------------------------------- records

def test_ingest_json(small):
    raw = small["raw"]
    accounts = pl.concat([raw["source"], raw["target"]]).n_unique()
    (batch_id,), = query(small["store"], "SELECT batch_id FROM batch")
    for result, new in ((small["ingested"], True), (small["again"], False)):
        doc = decoded(present.ingest_json(result))
        assert doc == {"batch_id": result.batch_id, "rows": result.rows, "accounts": result.accounts,
                       "new": result.new, "format": result.format, "kind": result.batch_kind,
                       "warnings": jsonish(result.warnings), "duplicates_of_stored": result.duplicates_of_stored}
        assert (doc["batch_id"], doc["rows"], doc["accounts"], doc["new"], doc["format"], doc["kind"]) == (
            batch_id, raw.height, accounts, new, "snap-higgs", "interactions")
    assert raw.height == LINES
    assert decoded(present.ingest_json(small["ingested"]))["warnings"] == []


def test_snapshot_json(small):
    store, raw = small["store"], small["raw"]
    listed = api.snapshots(store)
    docs = decoded(present.snapshots_json(listed))
    assert len(docs) == len(listed) == len(DAYS)
    for doc, s, day in zip(docs, listed, DAYS):
        assert doc == {"snapshot_id": s.snapshot_id, "label": s.label, "as_of": s.as_of.isoformat(),
                       "window": "7d", "batches": list(s.batch_ids), "interactions": s.interactions,
                       "accounts": s.accounts, "parent_id": None}
        as_of = datetime.fromisoformat(day).replace(tzinfo=timezone.utc) + timedelta(days=1)   # end of the day
        window = raw.filter((pl.col("ts") >= as_of - timedelta(days=7)) & (pl.col("ts") < as_of))
        assert (doc["label"], doc["as_of"], doc["batches"]) == (day, as_of.isoformat(), [small["ingested"].batch_id])
        assert (doc["interactions"], doc["accounts"]) == (
            window.height, pl.concat([window["source"], window["target"]]).n_unique())
        created = decoded(present.snapshot_created_json(small["snapshots"][day]))
        assert created == doc | {"new": True}
        assert decoded(present.snapshot_json(s)) == doc


def test_algorithm_json(small):
    store = small["store"]
    listed = [a for a in api.algorithms(store) if a.registered_at is not None]    # shipped ones too; these scored
    docs = decoded(present.algorithms_json(listed))
    assert [(d["name"], d["version"], d["registered"]) for d in docs] == [("activity", 1, True), ("network", 2, True)]
    for doc, a in zip(docs, listed):
        module = MODULES[a.label]
        assert doc == {"algorithm_id": a.algorithm_id, "name": a.name, "version": a.version,
                       "params": jsonish(a.params), "description": a.description, "changelog": a.changelog,
                       "components": [c for c, _ in a.components], "source_sha256": a.source_sha256,
                       "registered": True}
        assert (doc["params"], doc["components"], doc["description"], doc["changelog"]) == (
            module.PARAMS, list(module.COMPONENTS), module.DESCRIPTION, module.CHANGELOG)
        assert doc["source_sha256"] == hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()
        assert query(store, "SELECT algorithm_id FROM algorithm WHERE name = ? AND version = ?",
                     [doc["name"], doc["version"]]) == [(doc["algorithm_id"],)]
        assert decoded(present.registered_json(a, False)) == {
            "algorithm_id": a.algorithm_id, "name": a.name, "version": a.version, "new": False}


def test_run_json(small):
    store = small["store"]
    listed = api.runs(store)
    docs = decoded(present.runs_json(listed))
    assert len(docs) == len(small["runs"]) == 4
    for doc, r in zip(docs, listed):
        assert doc == {"run_id": r.run_id, "snapshot_id": r.snapshot_id, "algorithm": r.algorithm,
                       "algorithm_id": r.algorithm_id, "accounts": r.accounts, "result_hash": r.result_hash,
                       "engines": r.engines, "seconds": r.seconds, "counterfactual": r.counterfactual,
                       "engine": "local"}
        (accounts, result_hash, snapshot_accounts), = query(store, """
            SELECT count(*), any_value(r.result_hash), any_value(s.accounts)
            FROM score sc JOIN run r USING (run_id) JOIN snapshot s USING (snapshot_id) WHERE run_id = ?""",
                                                            [r.run_id])
        assert (doc["accounts"], doc["result_hash"]) == (accounts, result_hash)
        assert doc["accounts"] == snapshot_accounts and doc["counterfactual"] is False
        scored = decoded(present.scored_json(small["runs"][(api.get_snapshot(store, r.snapshot_id).label,
                                                            r.algorithm)]))
        assert scored == doc | {"new": True}


def test_scores_json(small):
    store = small["store"]
    run = small["runs"][(DAYS[1], "network@2")]
    ranked = rank_of(store, run.run_id)
    top = api.scores(store, run.run_id, top=25)
    docs = decoded(present.scores_json(top))
    assert docs == jsonish(top)
    best = ranked.sort(["score", "account_id"], descending=[True, False]).head(25)
    assert [(d["account_id"], d["score"], d["raw"], d["rank"]) for d in docs] == list(best.iter_rows())
    components = list(network_v2.COMPONENTS)
    assert all(set(d) == {"account_id", "handle", "score", "raw", "rank", *components} for d in docs)
    assert all(d["handle"] is None for d in docs)            # the Higgs data has no accounts file
    assert all(sum(d[c] for c in components) == pytest.approx(d["raw"], abs=1e-12) for d in docs)


def test_publication_and_history_json(small):
    store = small["store"]
    pubs = api.publications(store)
    docs = decoded(present.publications_json(pubs))
    assert len(docs) == 3
    for doc, p, made in zip(docs, pubs, small["published"]):
        assert doc == {"publication_id": p.publication_id, "run_id": p.run_id, "period": p.period,
                       "restates": p.restates, "published_at": p.published_at.isoformat()}
        assert decoded(present.published_json(made)) == doc | {"new": True}
    first, second, restatement = docs
    runs = small["runs"]
    assert [(d["run_id"], d["period"]) for d in docs] == [
        (runs[(DAYS[0], "activity@1")].run_id, DAYS[0]), (runs[(DAYS[1], "activity@1")].run_id, DAYS[1]),
        (runs[(DAYS[1], "network@2")].run_id, DAYS[1])]
    assert (first["restates"], second["restates"], restatement["restates"]) == (None, None, second["publication_id"])
    stored = dict(query(store, "SELECT publication_id, published_at FROM publication"))
    assert all(d["published_at"] == stored[d["publication_id"]].isoformat() for d in docs)

    # history: accounts scored on both days, and one scored only on day 2
    day1 = rank_of(store, runs[(DAYS[0], "activity@1")].run_id)
    day2 = {a: rank_of(store, runs[(DAYS[1], a)].run_id) for a in MODULES}
    both = day1.sort(["score", "account_id"], descending=[True, False])["account_id"].head(5).to_list()
    late = day2["activity@1"].join(day1, on="account_id", how="anti").sort("account_id")["account_id"][0]
    for restated, day2_algorithm in ((False, "activity@1"), (True, "network@2")):
        frame = api.history(store, both + [late], restated=restated)
        docs = decoded(present.history_json(frame))
        assert docs == jsonish(frame) and len(docs) == 2 * len(both) + 1
        for doc in docs:
            ranked = day1 if doc["period"] == DAYS[0] else day2[day2_algorithm]
            point = ranked.filter(pl.col("account_id") == doc["account_id"]).row(0, named=True)
            assert (doc["score"], doc["rank"]) == (point["score"], point["rank"])
            assert doc["algorithm"] == ("activity@1" if doc["period"] == DAYS[0] else day2_algorithm)
            assert doc["restated"] is (doc["period"] == DAYS[1])
            assert doc["published_at"] == stored[doc["publication_id"]].isoformat()


# ---------------------------------------------------------------- verify and explain

def test_verification_json(small, tmp_path):
    store = small["store"]
    (entries, head), = query(store, "SELECT count(*), arg_max(entry_hash, seq) FROM log")
    (runs,), = query(store, "SELECT count(*) FROM run")
    for rerun in (False, True):
        v = api.verify(store, rerun=rerun)
        doc = decoded(present.verification_json(v))
        assert doc == {"ok": v.ok, "entries": v.entries, "head": v.head, "problems": jsonish(v.problems),
                       "reran": v.reran, "notes": jsonish(v.notes)}
        assert doc == {"ok": True, "entries": entries, "head": head, "problems": [],
                       "reran": runs if rerun else 0, "notes": []}
    # a tampered copy: the problems are listed as the verification found them
    copy = tmp_path / "audit.duckdb"
    shutil.copy(store, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("UPDATE snapshot SET interactions = interactions + 1 WHERE label = ?", [DAYS[0]])
    finally:
        con.close()
    v = api.verify(copy)
    doc = decoded(present.verification_json(v))
    assert doc["ok"] is False and doc["problems"] == jsonish(v.problems) and len(doc["problems"]) == 1
    assert doc["problems"][0]["record_id"] == small["snapshots"][DAYS[0]].snapshot_id


def test_explanation_json(small):
    store = small["store"]
    runs = small["runs"]
    before, after = runs[(DAYS[0], "activity@1")].run_id, runs[(DAYS[1], "network@2")].run_id
    # the account whose score fell most (ties: smallest id), read from the store
    drop = read_frame(store, """
        SELECT b.account_id, c.score - b.score AS d FROM score b JOIN score c USING (account_id)
        WHERE b.run_id = ? AND c.run_id = ? ORDER BY d, account_id LIMIT 1""", [before, after]).row(0)
    account = drop[0]
    e = api.explain(store, account, from_run=before, to_run=after, now=START + timedelta(days=1))
    doc = decoded(present.explanation_json(e))
    # every field of the Explanation, as JSON (engagers: the 50 that moved the score most)
    for f in dataclasses.fields(e):
        value = getattr(e, f.name)
        expected = jsonish(value.head(50) if f.name == "engagers" else value)
        assert doc[f.name] == expected, f.name
    assert set(doc) == {f.name for f in dataclasses.fields(e)}
    assert doc["engagers_total"] == e.engagers["engager"].n_unique()         # engagers counted once
    # the parts, total and reasons, against the Explanation and the store
    assert doc["account_id"] == account
    assert doc["parts"] == e.parts and set(doc["parts"]) == {"own_activity", "population", "algorithm"}
    assert doc["total"] == e.total == pytest.approx(drop[1], abs=1e-9) and e.total < 0
    assert sum(doc["parts"].values()) == pytest.approx(doc["total"], abs=1e-9)
    assert doc["reasons"] == [jsonish(r) for r in e.reasons] and 0 < len(doc["reasons"]) <= 4
    assert all(r["text"] and math.isfinite(r["points"]) for r in doc["reasons"])
    assert doc["baseline"]["run_id"] == before and doc["candidate"]["run_id"] == after
    for side, run in (("baseline", before), ("candidate", after)):
        point = rank_of(store, run).filter(pl.col("account_id") == account).row(0, named=True)
        assert (doc[side]["score"], doc[side]["rank"]) == (point["score"], point["rank"])
