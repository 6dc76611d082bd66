"""Topics, influence relative to one account, and engagers (issue 18), on the real
quantumcomputing Stack Exchange dump: every number the README shows is recomputed here from the
raw file, by networkx (PageRank per topic, personalised PageRank) or by SQL over the CSV.

The README's tour of these commands is checked twice: its text is what the CLI prints on a fresh
store (ids are content hashes, so they are the same everywhere), and each number in that output
equals the independent computation.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from audit import api
from audit.algorithms import network_v3, topics_v1
from audit.cli import cli
from audit.store.db import connect

from conftest import SHARED_DATA, START, Clock, audit_main, store_state

QC = SHARED_DATA / "se-quantumcomputing"
README = Path(__file__).resolve().parent.parent / "README.md"
# The documented constants (README "Topics"), written out: a changed constant fails the references.
KIND_WEIGHTS = {"retweet": 1.0, "reply": 0.75, "mention": 0.5, "like": 0.25, "message": 0.25, "follow": 0.1,
                "rating": 0.1}
DAMPING = 0.85
MIN_INTERACTIONS, MIN_ACCOUNTS = 20, 10
AS_OF = "2018-09-02T00:00:00Z"          # --as-of 2018-09-01: the end of that day
PREVIOUS_AS_OF = "2018-08-01T00:00:00Z"
ME = "1837"                             # @DaftWullie


def run_cli(store: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def raw() -> pl.DataFrame:
    if not (QC / "interactions.csv").is_file():
        pytest.skip(f"needs the shared dataset {QC}")
    return pl.read_csv(QC / "interactions.csv", schema_overrides={"source": pl.String, "target": pl.String}).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC"))


@pytest.fixture(scope="module")
def qc(tmp_path_factory, raw) -> dict:
    """The README's store: both files, two snapshots (July, August), network@3 and topics@1 on August."""
    store = tmp_path_factory.mktemp("topics") / "audit.duckdb"
    clock = Clock(START)
    for name in ("accounts.csv", "interactions.csv"):
        api.ingest(store, QC / name, now=clock())
    api.snapshot(store, as_of="2018-07-31", label="2018-07", now=clock())
    snap = api.snapshot(store, as_of="2018-09-01", label="2018-08", now=clock())
    network = api.score(store, snap.snapshot_id, "network@3", now=clock())
    topics = api.score(store, snap.snapshot_id, "topics@1", now=clock())
    return {"store": store, "clock": clock, "snapshot": snap, "network": network.run_id, "topics": topics.run_id}


def graph(rows: pl.DataFrame) -> nx.DiGraph:
    """The engager -> author graph of ROWS with the documented kind weights, self-interactions left out."""
    g = nx.DiGraph()
    g.add_nodes_from(set(rows["source"].to_list()) | set(rows["target"].to_list()))
    for s, t, k in rows.select("source", "target", "kind").iter_rows():
        if s != t:
            w = KIND_WEIGHTS[k]
            g.add_edge(s, t, weight=g[s][t]["weight"] + w if g.has_edge(s, t) else w)
    return g


def in_topic(raw: pl.DataFrame, topic: str) -> pl.DataFrame:
    return raw.filter(pl.col("topic").str.split("|").list.contains(topic))


def mapped(pr: float, n: int) -> float:
    return min(100.0, max(1.0, 20.0 + 10.0 * math.log(pr * n)))


def nx_scores(g: nx.DiGraph) -> dict[str, tuple[float, float, int]]:
    """account -> (pagerank, score, rank: 1 + accounts scoring strictly higher, scores rounded to 1e-9)."""
    pr = nx.pagerank(g, alpha=DAMPING, weight="weight", tol=1e-15, max_iter=1000)
    n = g.number_of_nodes()
    scores = {a: mapped(p, n) for a, p in pr.items()}
    ordered = np.sort(np.round(np.array(list(scores.values())), 9))[::-1]
    return {a: (pr[a], s, int(np.searchsorted(-ordered, -round(s, 9), side="left")) + 1) for a, s in scores.items()}


@pytest.fixture(scope="module")
def whole(raw, qc) -> nx.DiGraph:
    """The August snapshot's graph: every interaction before the as-of, and every delivered account
    created by then (accounts without interactions are nodes that engage nobody)."""
    g = graph(raw.filter(pl.col("ts") < pl.lit(AS_OF).str.to_datetime(time_zone="UTC")))
    accounts = pl.read_csv(QC / "accounts.csv", schema_overrides={"account_id": pl.String})
    g.add_nodes_from(accounts.filter(pl.col("created_at") < "2018-09-02")["account_id"].to_list())
    return g


# ---------------------------------------------------------------- topic scores

def test_each_topic_is_networkx_pagerank_on_its_own_interactions(qc, raw):
    for topic in ("quantum-gate", "cryptography", "qubit"):
        ref = nx_scores(graph(in_topic(raw, topic)))
        got = api.scores(qc["store"], qc["topics"], topic=topic, top=10_000)
        assert got.height == len(ref)
        for a, s, r, x in got.select("account_id", "score", "rank", "raw").iter_rows():
            assert abs(x - ref[a][0]) < 1e-9 and abs(s - ref[a][1]) < 1e-9 and r == ref[a][2], (topic, a)


def test_topics_below_the_minimum_activity_get_no_score(qc, raw):
    exploded = raw.with_columns(pl.col("topic").str.split("|")).explode("topic")
    sizes = exploded.group_by("topic").agg(
        pl.len().alias("n"), pl.concat_list("source", "target").list.explode().n_unique().alias("accounts"))
    expected = sorted(sizes.filter((pl.col("n") >= MIN_INTERACTIONS) & (pl.col("accounts") >= MIN_ACCOUNTS))["topic"])
    with connect(qc["store"]) as con:
        stored = [r[0] for r in con.execute("SELECT DISTINCT topic FROM score WHERE run_id = ? ORDER BY topic",
                                            [qc["topics"]]).fetchall()]
    assert stored == expected and len(expected) == 79 and sizes.height == 151


def test_topic_run_equals_network_v3_on_each_topic_and_components_add_up(qc, raw):
    result = topics_v1.score(raw.with_columns(pl.lit(1.0).alias("weight")), pl.DataFrame(
        schema={"account_id": pl.String}), topics_v1.PARAMS)
    parts = result.select(list(topics_v1.COMPONENTS)).to_numpy().sum(axis=1)
    assert np.abs(parts - result["raw"].to_numpy()).max() < 1e-15
    alone = network_v3.score(in_topic(raw, "quantum-computer").with_columns(pl.lit(1.0).alias("weight")),
                             pl.DataFrame(schema={"account_id": pl.String}), network_v3.PARAMS)
    mine = result.filter(pl.col("topic") == "quantum-computer")
    assert mine["account_id"].equals(alone["account_id"])
    assert np.abs(mine["raw"].to_numpy() - alone["raw"].to_numpy()).max() < 1e-12


def test_account_topics_are_its_topic_scores_best_first(qc, raw):
    t = api.account_topics(qc["store"], "@DaftWullie", run=qc["topics"])
    assert t.account_id == ME and t.topics_scored == 79
    assert t.rows["score"].to_list() == sorted(t.rows["score"].to_list(), reverse=True)
    for topic, score, rank, accounts in t.rows.select("topic", "score", "rank", "accounts").head(8).iter_rows():
        ref = nx_scores(graph(in_topic(raw, topic)))
        assert abs(score - ref[ME][1]) < 1e-9 and rank == ref[ME][2] and accounts == len(ref), topic


# ---------------------------------------------------------------- influence

def test_relative_view_equals_networkx_personalised_pagerank(qc, whole):
    inf = api.influence(qc["store"], ME, run=qc["network"], top=400, relative=True)
    ref = nx.pagerank(whole, alpha=DAMPING, personalization={ME: 1.0}, weight="weight", tol=1e-15, max_iter=1000)
    assert inf.relative.height == sum(1 for a, p in ref.items() if p > 0 and a != ME)
    for a, p in inf.relative.select("account_id", "pagerank").iter_rows():
        assert abs(p - ref[a]) < 1e-9, a


def test_influencers_and_influencees_are_pagerank_shares_in_points(qc, whole):
    pr = nx.pagerank(whole, alpha=DAMPING, weight="weight", tol=1e-15, max_iter=1000)
    n = whole.number_of_nodes()
    out = {a: sum(d["weight"] for _, _, d in whole.out_edges(a, data=True)) for a in whole}
    inf = api.influence(qc["store"], ME, run=qc["network"], top=1000)
    me = pr[ME]
    for a, c, points in inf.influencers.select("account_id", "contribution", "points").iter_rows():
        ref = DAMPING * pr[a] * whole[a][ME]["weight"] / out[a]
        assert abs(c - ref) < 1e-9
        assert abs(points - (mapped(me, n) - mapped(me - ref, n))) < 1e-6
    assert len(inf.influencers) == whole.in_degree(ME)
    for a, c, points in inf.influencees.select("account_id", "contribution", "points").iter_rows():
        ref = DAMPING * me * whole[ME][a]["weight"] / out[ME]
        assert abs(c - ref) < 1e-9
        assert abs(points - (mapped(pr[a], n) - mapped(pr[a] - ref, n))) < 1e-6
    assert len(inf.influencees) == whole.out_degree(ME)


# ---------------------------------------------------------------- engagers

def test_engagers_counts_equal_sql_over_the_raw_file(qc, whole):
    e = api.engagers(qc["store"], "@DaftWullie", run=qc["network"], since="2018-08-01", min_score=50)
    sql = duckdb.sql(f"""
        SELECT source, kind, count(*) AS n, min(ts) AS first, max(ts) AS last
        FROM read_csv('{QC / "interactions.csv"}', types={{'source': 'VARCHAR', 'target': 'VARCHAR'}})
        WHERE target = '{ME}' AND source <> '{ME}' AND ts >= TIMESTAMPTZ '2018-08-01 00:00:00+00'
          AND ts < TIMESTAMPTZ '{AS_OF}'
        GROUP BY source, kind ORDER BY source, kind""").pl()
    before = set(duckdb.sql(f"""SELECT DISTINCT source FROM read_csv('{QC / "interactions.csv"}',
        types={{'source': 'VARCHAR', 'target': 'VARCHAR'}}) WHERE target = '{ME}' AND source <> '{ME}'
        AND ts < TIMESTAMPTZ '{PREVIOUS_AS_OF}'""").pl()["source"].to_list())
    ref = nx_scores(whole)
    got = {r["engager"]: r for r in e.rows.iter_rows(named=True)}
    assert sorted(got) == sorted(set(sql["source"]))
    for source, rows in sql.group_by("source"):
        r = got[source[0]]
        assert {k["kind"]: k["n"] for k in r["kinds"]} == dict(zip(rows["kind"], rows["n"]))
        assert r["interactions"] == rows["n"].sum()
        assert r["first"] == rows["first"].min() and r["last"] == rows["last"].max()
        assert r["new"] == (source[0] not in before)
        assert abs(r["score"] - ref[source[0]][1]) < 1e-9 and r["rank"] == ref[source[0]][2]
        assert r["alert"] == (r["score"] >= 50)
    assert e.previous_snapshot_id is not None and e.alerts.height == sum(1 for r in got.values() if r["score"] >= 50)


# ---------------------------------------------------------------- --topic through the other commands

def test_compare_explain_publish_history_and_verify_work_per_topic(qc, raw):
    store, clock = qc["store"], qc["clock"]
    july = api.snapshots(store)[0]
    earlier = api.score(store, july.snapshot_id, "topics@1", now=clock()).run_id
    topic = "quantum-gate"
    cut = pl.lit(PREVIOUS_AS_OF).str.to_datetime(time_zone="UTC")
    before_rows, after_rows = in_topic(raw.filter(pl.col("ts") < cut), topic), in_topic(raw, topic)
    before, after = nx_scores(graph(before_rows)), nx_scores(graph(after_rows))
    c = api.compare(store, earlier, qc["topics"], topic=topic)
    assert (c.coverage.both, c.coverage.only_baseline, c.coverage.only_candidate) == (
        len(set(before) & set(after)), len(set(before) - set(after)), len(set(after) - set(before)))
    e = api.explain(store, ME, from_run=earlier, to_run=qc["topics"], now=clock(), topic=topic)
    assert e.status == "changed" and abs(e.total - (after[ME][1] - before[ME][1])) < 1e-6
    assert abs(sum(e.parts.values()) - e.total) < 1e-9
    assert e.baseline.rank == before[ME][2] and e.candidate.rank == after[ME][2]
    assert e.candidate.accounts == len(after)
    engaged = set(after_rows.filter((pl.col("target") == ME) & (pl.col("source") != ME))["source"].to_list())
    assert set(e.engagers["engager"].to_list()) <= engaged | set(
        before_rows.filter(pl.col("target") == ME)["source"].to_list())
    network_pub = api.publish(store, qc["network"], period="2018-08", now=clock())
    topic_pub = api.publish(store, qc["topics"], period="2018-08", now=clock())
    assert topic_pub.restates is None and network_pub.restates is None      # two views: neither restates the other
    h = api.history(store, [ME], topic=topic)
    assert h["run_id"].to_list() == [qc["topics"]] and h["rank"].to_list() == [after[ME][2]]
    assert api.history(store, [ME])["run_id"].to_list() == [qc["network"]]
    card = api.account_score(store, ME, topic=topic)
    assert card.run_id == qc["topics"] and abs(card.score - after[ME][1]) < 1e-9 and card.rank == after[ME][2]
    assert api.account_score(store, ME).run_id == qc["network"]
    v = api.verify(store, rerun=True)
    assert v.ok, v.problems
    with pytest.raises(Exception, match="scores topics: give --topic"):
        api.scores(store, qc["topics"])
    with pytest.raises(Exception, match="has no topics"):
        api.scores(store, qc["network"], topic="qubit")
    with pytest.raises(Exception, match='topic "no-such-topic" has no scores'):
        api.scores(store, qc["topics"], topic="no-such-topic")


def test_a_changed_topic_is_detected_by_verify(qc, tmp_path):
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(qc["store"].read_bytes())
    con = duckdb.connect(str(copy))
    con.execute("UPDATE score SET topic = 'qubit' WHERE run_id = ? AND topic = 'quantum-gate' AND account_id = ?",
                [qc["topics"], "26"])
    con.close()
    v = api.verify(copy)
    assert not v.ok and any(p["record_id"] == qc["topics"] for p in v.problems)


# ---------------------------------------------------------------- input and handles

@pytest.mark.parametrize("topic, shown", [("a||b", "'a||b'"), ("x" * 101, "'xxx"), ("ok\x07bad", "'ok\\x07bad'"),
                                          ("|", "'|'")])
def test_a_bad_topic_is_exit_2_naming_the_row_and_stores_nothing(tmp_path, topic, shown):
    store = tmp_path / "s.duckdb"
    good = tmp_path / "good.csv"
    good.write_text("source,target,kind,ts,topic\n1,2,reply,1341100972,x|y\n")
    assert audit_main("--store", str(store), "ingest", str(good))[0] == 0
    before = store_state(store)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"source,target,kind,ts,topic\n1,2,reply,1341100973,fine\n3,4,mention,1341100974,{topic}\n",
                   encoding="utf-8")
    code, out, err = audit_main("--store", str(store), "ingest", str(bad))
    assert code == 2 and out == ""
    assert "bad.csv: rejected, nothing was stored" in err and "on column topic" in err
    assert f"line 3: topic={shown}" in err
    assert store_state(store) == before


def test_each_event_counts_once_in_each_of_its_topics_and_once_globally(tmp_path):
    rows = pl.DataFrame({"source": ["a", "b", "c"], "target": ["b", "c", "a"], "kind": ["reply"] * 3,
                         "ts": ["2018-01-01T00:00:00Z"] * 3, "topic": ["x|y|x", "x", None], "weight": [1.0] * 3})
    result = topics_v1.score(rows.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC")),
                             pl.DataFrame(schema={"account_id": pl.String}),
                             topics_v1.PARAMS | {"min_topic": {"interactions": 1, "accounts": 1}})
    assert result.select("topic", "account_id").rows() == [("x", "a"), ("x", "b"), ("x", "c"), ("y", "a"), ("y", "b")]
    exploded = topics_v1.topics_of(rows)
    assert exploded.height == 3 and exploded["topic"].to_list() == ["x", "y", "x"]


def test_an_ambiguous_handle_is_exit_2_listing_its_holders(qc):
    for args in (["topics", "@Martin", "--run", qc["topics"]], ["influence", "@Martin", "--run", qc["network"]],
                 ["engagers", "@Martin", "--run", qc["network"]]):
        code, out, err = audit_main("--store", str(qc["store"]), *args)
        assert code == 2 and out == ""
        assert 'handle "Martin" was held by 3 accounts' in err and all(i in err for i in ("395", "905", "1854"))


# ---------------------------------------------------------------- the README

def readme_tour() -> list[tuple[list[str], str]]:
    """The commands and outputs of the README's topic tour (section "Topics and influence")."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- topics-tour -->\n```\n(.*?)```", text, re.S).group(1)
    out: list[tuple[list[str], str]] = []
    for chunk in re.split(r"^\$ audit ", block, flags=re.M)[1:]:
        command, _, output = chunk.partition("\n")
        out.append((command.split(), output))
    return out


def test_readme_topic_tour_is_what_the_cli_prints(qc):
    tour = readme_tour()
    assert len(tour) >= 5
    for args, expected in tour:
        if args[0] in ("ingest", "snapshot", "score"):
            continue                    # done by the fixture (their timings differ)
        args = [a.strip("'") for a in args]
        assert run_cli(qc["store"], *args) == expected, args


def test_readme_numbers_are_the_independent_ones(qc, raw, whole):
    """The values in the README's outputs, as the JSON of the same commands gives them, recomputed."""
    for topic in ("quantum-gate", "cryptography"):
        ref = nx_scores(graph(in_topic(raw, topic)))
        doc = json.loads(run_cli(qc["store"], "scores", qc["topics"], "--topic", topic, "--top", "5", "--json"))
        for row in doc:
            assert abs(row["score"] - ref[row["account_id"]][1]) < 1e-9 and row["rank"] == ref[row["account_id"]][2]


# ---------------------------------------------------------------- migration 8

def test_migration_8_keeps_every_run_and_verify_rerun(tmp_path):
    """A store as it was before migration 8 (`score` without the topic column), made from real runs: a
    writer migrates it; every stored value, run id and result hash is unchanged and verify --rerun passes."""
    import gzip

    from conftest import HIGGS
    higgs = tmp_path / "higgs-5000.txt"
    with gzip.open(HIGGS, "rt") as fh:
        higgs.write_text("".join(next(fh) for _ in range(5000)))
    store = tmp_path / "audit.duckdb"
    clock = Clock(START)
    api.ingest(store, higgs, now=clock())
    snap = api.snapshot(store, as_of="2012-07-02", now=clock())
    ids = [api.score(store, snap.snapshot_id, a, now=clock()).run_id for a in ("activity@1", "network@2", "network@3")]
    con = duckdb.connect(str(store))        # undo migration 8, as a store made before it looks
    con.execute("ALTER TABLE score DROP COLUMN topic; DELETE FROM schema_migration WHERE version = 8")
    runs_before = con.execute("SELECT * FROM run ORDER BY rowid").fetchall()
    scores_before = con.execute("SELECT * FROM score ORDER BY rowid").fetchall()
    con.close()
    assert [r[0] for r in runs_before] == ids
    api.snapshot(store, as_of="2012-07-03", now=clock())      # a writer: migrates to 8
    with connect(store) as con:
        assert con.execute("SELECT count(*) FROM schema_migration WHERE version = 8").fetchall() == [(1,)]
        assert con.execute("SELECT * FROM run ORDER BY rowid").fetchall() == runs_before
        assert con.execute("SELECT * EXCLUDE (topic) FROM score ORDER BY rowid").fetchall() == scores_before
        assert con.execute("SELECT count(*) FROM score WHERE topic IS NOT NULL").fetchall() == [(0,)]
    result = api.verify(store, rerun=True)
    assert (result.ok, result.problems, result.reran) == (True, [], 3)


def test_the_output_contract_of_a_topic_version_is_enforced(raw):
    from audit.errors import AuditError
    from audit.records import algorithms as algos
    from audit.records.runs import check_output
    algo = algos.from_source(algos.shipped_source("topics@1"), "topics@1")
    assert algo.by_topic and not algos.from_source(algos.shipped_source("network@3"), "network@3").by_topic
    good = topics_v1.score(raw.with_columns(pl.lit(1.0).alias("weight")), pl.DataFrame(schema={"account_id": pl.String}),
                           topics_v1.PARAMS)
    assert check_output(good, algo) is good
    for bad, says in ((good.reverse(), "sorted by topic, then account_id"), (pl.concat([good.head(2), good.head(1)]),
                      "one row per (account, topic)"), (good.drop("topic"), "expected ['account_id', 'topic'"),
                      (good.with_columns(pl.lit(None, pl.String).alias("topic")), "must be non-null")):
        with pytest.raises(AuditError, match=re.escape(says)):
            check_output(bad, algo)
