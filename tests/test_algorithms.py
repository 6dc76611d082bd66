"""The shipped algorithms (activity@1, network@2) against their contract, on real data.

Invariants checked on all 563,069 Higgs interactions: one sorted row per account,
components adding up to raw, scores in 1..100, bit-identical reruns and raw -> score
mapping; network@2 against networkx.pagerank; activity@1 against counts taken by hand;
signed ratings on the real Bitcoin OTC file.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import math
import re
import string
import sys
import types
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit.algorithms import activity_v1, network_v2
from conftest import require_shared, shared_file

MODULES = {"activity@1": activity_v1, "network@2": network_v2}
README = Path(__file__).resolve().parent.parent / "README.md"
# The documented constants (README, "Algorithm contract"), written out here so that the reference
# computations below do not read them from the module under test: a changed constant fails them.
ACTIVITY_WEIGHTS = {"retweets": 1.0, "mentions": 0.8, "replies": 0.8, "other": 0.4, "engagers": 1.5,
                    "followers": 0.5, "ratings": 1.0}
ACTIVITY_REF_QUANTILE = 0.99
NETWORK_KIND_WEIGHTS = {"retweet": 1.0, "reply": 0.75, "mention": 0.5, "like": 0.25, "message": 0.25,
                        "follow": 0.1, "rating": 0.1}
NETWORK_DAMPING = 0.85
NETWORK_TOL = 1e-13
NETWORK_MAX_ITER = 500
NETWORK_SCALE = {"offset": 20.0, "slope": 10.0}
HIGGS_ACCOUNTS = 304_691
OTC = shared_file("soc-sign-bitcoinotc", "soc-sign-bitcoinotc.csv.gz")
REASON_FIELDS = {"before", "after", "points", "engager", "engager_score"}
ENGAGERS_SCHEMA = {"engager": pl.String, "kind": pl.String, "interactions": pl.Int64,
                   "weight": pl.Float64, "contribution": pl.Float64}


def universe(interactions: pl.DataFrame, accounts: pl.DataFrame) -> pl.Series:
    return pl.concat([interactions["source"], interactions["target"], accounts["account_id"]]).unique().sort()


def received(interactions: pl.DataFrame, account: str) -> pl.DataFrame:
    return interactions.filter((pl.col("target") == account) & (pl.col("source") != account))


@pytest.fixture(scope="module")
def activity_higgs(higgs_interactions, empty_accounts) -> pl.DataFrame:
    return activity_v1.score(higgs_interactions, empty_accounts, activity_v1.PARAMS)


@pytest.fixture(scope="module")
def network_higgs(higgs_interactions, empty_accounts) -> pl.DataFrame:
    return network_v2.score(higgs_interactions, empty_accounts, network_v2.PARAMS)


@pytest.fixture(scope="module")
def results(activity_higgs, network_higgs) -> dict[str, pl.DataFrame]:
    return {"activity@1": activity_higgs, "network@2": network_higgs}


@pytest.fixture(scope="module")
def otc_interactions() -> pl.DataFrame:
    """The real Bitcoin OTC signed ratings (35,592) as interactions: kind rating, weight = rating."""
    raw = pl.read_csv(require_shared(OTC), has_header=False, new_columns=["source", "target", "rating", "time"],
                      schema_overrides={"source": pl.String, "target": pl.String,
                                        "rating": pl.Float64, "time": pl.Float64})
    return raw.select(
        "source", "target", pl.lit("rating").alias("kind"),
        pl.from_epoch((pl.col("time") * 1e6).round().cast(pl.Int64), time_unit="us")
        .dt.replace_time_zone("UTC").alias("ts"),
        pl.col("rating").alias("weight"))


# --- the module contract ---------------------------------------------------------------

@pytest.mark.parametrize("label", MODULES)
def test_module_source_is_self_contained(label):
    source = Path(MODULES[label].__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{label} uses a relative import"
            imported.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"numpy", "polars", "scipy"}
    assert imported <= allowed, imported - allowed
    module = types.ModuleType("fresh")
    exec(compile(source, label, "exec"), module.__dict__)
    name, _, version = label.partition("@")
    assert (module.NAME, module.VERSION) == (name, int(version))
    assert json.loads(json.dumps(module.PARAMS)) == module.PARAMS
    for attr in ("score", "normalisation", "to_score", "engagers"):
        assert callable(getattr(module, attr))
    assert module.DESCRIPTION.strip() and "\n" not in module.CHANGELOG.strip()


@pytest.mark.parametrize("label", MODULES)
def test_reason_codes_cover_components_population_and_algorithm(label):
    module = MODULES[label]
    codes = module.REASONS
    for code, template in codes.items():
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        assert fields <= REASON_FIELDS, (code, fields)
        text = template.format(before=120, after=15, points=-9.3, engager="alice", engager_score=71)
        assert "-9.3 points" in text
    for component in module.COMPONENTS:
        if component in ("teleport", "dangling"):
            continue
        for way in ("ROSE", "FELL"):
            assert f"{component.upper()}_{way}" in codes
    assert {"POPULATION_ROSE", "POPULATION_FELL", "ALGORITHM_CHANGED"} <= set(codes)
    if label == "activity@1":
        assert (codes["RETWEETS_FELL"].format(before=120, after=15, points=-9.3)
                == "Retweets received fell from 120 to 15: -9.3 points")
        assert "now counts" in codes["ALGORITHM_CHANGED"]
    else:
        assert codes["ENGAGER_STOPPED"].format(engager="alice", engager_score=71.4, points=-3.2, before=0,
                                               after=0) == "alice (score 71) stopped engaging: -3.2 points"
        assert "engager's own score" in codes["ALGORITHM_CHANGED"]


# --- invariants on all of Higgs ------------------------------------------------------

@pytest.mark.parametrize("label", MODULES)
def test_one_sorted_row_per_account_in_the_universe(label, results, higgs_interactions, empty_accounts):
    result = results[label]
    module = MODULES[label]
    assert result.columns == ["account_id", "raw", "score", *module.COMPONENTS]
    assert result.schema["account_id"] == pl.String
    assert all(result.schema[c] == pl.Float64 for c in result.columns[1:])
    assert result.height == HIGGS_ACCOUNTS
    assert result["account_id"].equals(universe(higgs_interactions, empty_accounts), check_names=False)
    assert result["account_id"].is_sorted() and result["account_id"].n_unique() == result.height


@pytest.mark.parametrize("label", MODULES)
def test_components_add_up_to_raw_and_scores_in_range(label, results):
    result = results[label]
    parts = result.select(list(MODULES[label].COMPONENTS)).to_numpy()
    raw = result["raw"].to_numpy()
    assert np.abs(parts.sum(axis=1) - raw).max() <= 1e-12
    score = result["score"].to_numpy()
    assert np.isfinite(score).all() and score.min() >= 1.0 and score.max() <= 100.0
    assert score.max() == 100.0 and (score > 1.0).any()


@pytest.mark.parametrize("label", MODULES)
def test_to_score_of_normalisation_reproduces_score_bit_for_bit(label, results):
    module, result = MODULES[label], results[label]
    norm = module.normalisation(result, module.PARAMS)
    again = module.to_score(result["raw"].to_numpy(), norm, module.PARAMS)
    assert np.array_equal(again.view(np.uint64), result["score"].to_numpy().view(np.uint64))
    assert json.loads(json.dumps(norm)) == norm


@pytest.mark.parametrize("label", MODULES)
def test_deterministic(label, results, higgs_interactions, empty_accounts):
    module = MODULES[label]
    assert_frame_equal(module.score(higgs_interactions, empty_accounts, module.PARAMS), results[label],
                       check_exact=True)


@pytest.mark.parametrize("label", MODULES)
def test_id_form_does_not_change_scores(label, higgs_interactions, empty_accounts):
    """Numbered ids ("123", "u123") take a parsing fast path; any other id the general one.

    "x<id>!" sorts exactly as "<id>" ('!' sorts before every digit), so both paths must give
    the same frame bit for bit once the ids are mapped back.
    """
    module = MODULES[label]
    day = higgs_interactions.filter(pl.col("ts") < pl.datetime(2012, 7, 2, time_zone="UTC"))
    plain = module.score(day, empty_accounts, module.PARAMS)
    for head, tail in (("u", ""), ("x", "!")):
        renamed = day.with_columns((head + pl.col("source") + tail).alias("source"),
                                   (head + pl.col("target") + tail).alias("target"))
        result = module.score(renamed, empty_accounts, module.PARAMS)
        back = pl.col("account_id").str.strip_prefix(head).str.strip_suffix(tail)
        assert_frame_equal(result.with_columns(back), plain, check_exact=True)


@pytest.mark.parametrize("label", MODULES)
def test_empty_and_accounts_only_inputs(label, empty_accounts):
    module = MODULES[label]
    none = pl.DataFrame(schema={"source": pl.String, "target": pl.String, "kind": pl.String,
                                "ts": pl.Datetime("us", "UTC"), "weight": pl.Float64})
    empty = module.score(none, empty_accounts, module.PARAMS)
    assert empty.height == 0 and empty.columns == ["account_id", "raw", "score", *module.COMPONENTS]
    accounts = pl.DataFrame({"account_id": ["b", "a"], "handle": [None, None], "followers": [None, None],
                             "following": [None, None], "created_at": [None, None]},
                            schema=empty_accounts.schema)
    only = module.score(none, accounts, module.PARAMS)
    assert only["account_id"].to_list() == ["a", "b"]
    expected = 20.0 if label == "network@2" else 1.0      # network: raw * N = 1 -> offset
    assert only["score"].to_list() == [expected, expected]


# --- activity@1 ---------------------------------------------------------------------

def activity_by_hand(interactions: pl.DataFrame, account: str) -> dict[str, float]:
    got = received(interactions, account)
    w = ACTIVITY_WEIGHTS
    count = {k: got.filter(pl.col("kind") == k).height for k in ("retweet", "mention", "reply")}
    return {"retweets": w["retweets"] * math.log1p(count["retweet"]),
            "mentions": w["mentions"] * math.log1p(count["mention"]),
            "replies": w["replies"] * math.log1p(count["reply"]),
            "engagers": w["engagers"] * math.log1p(got["source"].n_unique())}


def test_activity_exact_values_on_real_accounts(activity_higgs, higgs_interactions):
    loops = higgs_interactions.filter(pl.col("source") == pl.col("target"))
    looper = loops.group_by("target").len().sort(["len", "target"], descending=[True, False])["target"][0]
    replied = (higgs_interactions.filter(pl.col("kind") == "reply").group_by("target").len()
               .sort(["len", "target"], descending=[True, False])["target"][0])
    ref = activity_v1.normalisation(activity_higgs, activity_v1.PARAMS)["ref"]
    for account in ("88", "677", looper, replied):
        expected = activity_by_hand(higgs_interactions, account)
        row = activity_higgs.filter(pl.col("account_id") == account).row(0, named=True)
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-14, abs=1e-14), (account, name)
        assert row["other"] == row["followers"] == row["ratings"] == 0.0
        assert row["raw"] == pytest.approx(sum(expected.values()), rel=1e-14)
        assert row["score"] == pytest.approx(min(100.0, 1 + 99 * row["raw"] / ref), rel=1e-14)
    # the self-interactions of `looper` count for nothing
    assert loops.filter(pl.col("target") == looper).height >= 10


def test_activity_reference_is_the_99th_percentile_of_positive_raw(activity_higgs):
    positive = np.sort(activity_higgs.filter(pl.col("raw") > 0)["raw"].to_numpy())
    ref = activity_v1.normalisation(activity_higgs, activity_v1.PARAMS)["ref"]
    assert ref == positive[math.ceil(ACTIVITY_REF_QUANTILE * positive.size) - 1]
    assert (activity_higgs["score"] == 100.0).sum() == (activity_higgs["raw"] >= ref).sum()


def test_activity_population_effect(activity_higgs, higgs_interactions, empty_accounts):
    """Others losing engagement lowers ref: an account whose own activity did not change rises."""
    ranked = activity_higgs.filter(pl.col("raw") > 0).sort(["raw", "account_id"], descending=[True, False])
    account = ranked["account_id"][ranked.height // 10]       # the 90th percentile of active accounts
    top = ranked.head(3000)["account_id"]
    others = top.filter(top != account)
    quieter = higgs_interactions.filter(~pl.col("target").is_in(others.implode()))
    after = activity_v1.score(quieter, empty_accounts, activity_v1.PARAMS)
    before_row = activity_higgs.filter(pl.col("account_id") == account).row(0, named=True)
    after_row = after.filter(pl.col("account_id") == account).row(0, named=True)
    assert after_row["raw"] == before_row["raw"]
    assert (activity_v1.normalisation(after, activity_v1.PARAMS)["ref"]
            < activity_v1.normalisation(activity_higgs, activity_v1.PARAMS)["ref"])
    assert 1.0 < before_row["score"] < after_row["score"] < 100.0


def test_activity_followers_and_accounts_only_ids(higgs_interactions, empty_accounts, activity_higgs):
    accounts = pl.DataFrame({"account_id": ["88", "677", "no-interactions"], "handle": [None, None, None],
                             "followers": [1000, None, 10], "following": [None, None, None],
                             "created_at": [None, None, None]}, schema=empty_accounts.schema)
    result = activity_v1.score(higgs_interactions, accounts, activity_v1.PARAMS)
    assert result.height == HIGGS_ACCOUNTS + 1
    w = ACTIVITY_WEIGHTS["followers"]
    rows = {a: result.filter(pl.col("account_id") == a).row(0, named=True) for a in accounts["account_id"]}
    assert rows["88"]["followers"] == pytest.approx(w * math.log1p(1000), rel=1e-15)
    assert rows["677"]["followers"] == 0.0
    assert rows["no-interactions"]["raw"] == pytest.approx(w * math.log1p(10), rel=1e-15)
    old = activity_higgs.filter(pl.col("account_id") == "88").row(0, named=True)
    assert rows["88"]["retweets"] == old["retweets"] and rows["88"]["engagers"] == old["engagers"]


def test_activity_engagers_lists_who_acted(activity_higgs, higgs_interactions):
    got = activity_v1.engagers("677", higgs_interactions, activity_higgs, activity_v1.PARAMS)
    assert got.schema == pl.Schema(ENGAGERS_SCHEMA)
    assert got["contribution"].null_count() == got.height
    assert got.select("engager", "kind").is_unique().all()
    assert got.equals(got.sort(["engager", "kind"]))
    expected = received(higgs_interactions, "677").group_by("kind").len().sort("kind")
    by_kind = got.group_by("kind").agg(pl.col("interactions").sum().cast(pl.UInt32).alias("len")).sort("kind")
    assert_frame_equal(by_kind, expected)


# --- signed ratings (Bitcoin OTC) ------------------------------------------------------

def test_negative_ratings_lower_the_activity_score(otc_interactions, empty_accounts):
    result = activity_v1.score(otc_interactions, empty_accounts, activity_v1.PARAMS)
    sums = otc_interactions.group_by("target").agg(pl.col("weight").sum().alias("S"),
                                                   (pl.col("weight") < 0).sum().alias("negative"),
                                                   (pl.col("weight") > 0).sum().alias("positive"))
    # the account with the most negative ratings that also has positive ones
    mixed = (sums.filter(pl.col("positive") > 0)
             .sort(["negative", "target"], descending=[True, False]).row(0, named=True))
    account = mixed["target"]
    row = result.filter(pl.col("account_id") == account).row(0, named=True)
    S = mixed["S"]
    assert row["ratings"] == pytest.approx(ACTIVITY_WEIGHTS["ratings"] * math.copysign(math.log1p(abs(S)), S),
                                           rel=1e-15)
    assert row["raw"] == row["ratings"]        # ratings only: no engagers, no other terms
    without = otc_interactions.filter(~((pl.col("target") == account) & (pl.col("weight") < 0)))
    kinder = activity_v1.score(without, empty_accounts, activity_v1.PARAMS)
    assert row["raw"] < kinder.filter(pl.col("account_id") == account)["raw"][0]

    scored = result.join(sums, left_on="account_id", right_on="target", how="left")
    negative = scored.filter(pl.col("S") < 0)
    median = result["score"].median()
    assert negative.height > 500 and median > 1.0
    assert negative["score"].max() < median
    assert (negative["raw"] < 0).all()


def test_network_ignores_negative_ratings(otc_interactions, empty_accounts):
    """A negative rating weighs 0: dropping them (keeping every id) changes nothing, bit for bit."""
    ids = universe(otc_interactions, empty_accounts)
    accounts = pl.DataFrame({"account_id": ids}).with_columns(
        *[pl.lit(None, dtype).alias(c) for c, dtype in empty_accounts.schema.items() if c != "account_id"]
    ).select(empty_accounts.columns).cast(empty_accounts.schema)
    full = network_v2.score(otc_interactions, accounts, network_v2.PARAMS)
    positive = network_v2.score(otc_interactions.filter(pl.col("weight") > 0), accounts, network_v2.PARAMS)
    assert_frame_equal(full, positive, check_exact=True)
    assert full["inbound_rating"].sum() > 0 and full["inbound_retweet"].sum() == 0


# --- network@2 ------------------------------------------------------------------------

def networkx_pagerank(interactions: pl.DataFrame, ids: list[str]) -> np.ndarray:
    """PageRank of the engager -> author graph by networkx, edge weights from the documented kind
    weights (not the module's PARAMS), in the order of IDS."""
    edges = (interactions.filter(pl.col("source") != pl.col("target"))
             .group_by("source", "target")
             .agg((pl.col("kind").replace_strict(NETWORK_KIND_WEIGHTS, return_dtype=pl.Float64)
                   * pl.col("weight").clip(lower_bound=0.0)).sum().alias("weight"))
             .sort("source", "target"))
    graph = nx.DiGraph()
    graph.add_nodes_from(ids)
    graph.add_weighted_edges_from(edges.iter_rows())
    rank = nx.pagerank(graph, alpha=NETWORK_DAMPING, tol=1e-17, max_iter=2000)
    return np.array([rank[a] for a in ids])


def test_network_matches_networkx_pagerank_on_the_first_two_days(higgs_interactions, empty_accounts):
    """The same check as on all of Higgs below, on 2012-07-01..02 (20,244 interactions, every kind
    of the file), quick enough for every run."""
    days = higgs_interactions.filter(pl.col("ts") < pl.datetime(2012, 7, 3, time_zone="UTC"))
    assert days.height == 20_244 and set(days["kind"]) == {"retweet", "mention", "reply"}
    result = network_v2.score(days, empty_accounts, network_v2.PARAMS)
    expected = networkx_pagerank(days, result["account_id"].to_list())
    assert np.abs(result["raw"].to_numpy() - expected).max() <= 1e-10
    # replies carry their documented weight: the reply component is what the replied-to accounts receive
    assert result["inbound_reply"].sum() > 0


@pytest.mark.slow
def test_network_matches_networkx_pagerank_on_all_of_higgs(network_higgs, higgs_interactions):
    expected = networkx_pagerank(higgs_interactions, network_higgs["account_id"].to_list())
    assert np.abs(network_higgs["raw"].to_numpy() - expected).max() <= 1e-10
    assert network_higgs["raw"].sum() == pytest.approx(1.0, abs=1e-12)


def test_network_drops_self_loops(network_higgs, higgs_interactions, empty_accounts):
    ids = network_higgs.select("account_id").with_columns(
        *[pl.lit(None, dtype).alias(c) for c, dtype in empty_accounts.schema.items() if c != "account_id"])
    no_loops = higgs_interactions.filter(pl.col("source") != pl.col("target"))
    assert higgs_interactions.height - no_loops.height == 7_588
    assert_frame_equal(network_v2.score(no_loops, ids, network_v2.PARAMS), network_higgs, check_exact=True)


def test_network_components(network_higgs):
    n = network_higgs.height
    d = NETWORK_DAMPING
    assert (network_higgs["teleport"] == (1 - d) / n).all()
    assert network_higgs["dangling"].n_unique() == 1
    for kind in ("reply", "mention", "like", "message", "follow", "rating"):
        assert (network_higgs[f"inbound_{kind}"] >= 0).all()
    assert network_higgs.select(pl.col("inbound_like", "inbound_message", "inbound_follow", "inbound_rating")
                                .sum()).row(0) == (0.0, 0.0, 0.0, 0.0)
    # an account nobody engages with gets exactly teleport + dangling
    idle = network_higgs.filter(pl.sum_horizontal(pl.col("^inbound_.*$")) == 0)
    assert idle.height > HIGGS_ACCOUNTS // 2
    assert (idle["raw"] == idle["teleport"] + idle["dangling"]).all()


def test_network_score_scale(network_higgs):
    scale = NETWORK_SCALE
    relative = network_higgs["raw"].to_numpy() * network_higgs.height
    inside = (relative > math.exp((1 - scale["offset"]) / scale["slope"])) & \
             (relative < math.exp((100 - scale["offset"]) / scale["slope"]))
    score = network_higgs["score"].to_numpy()
    mapped = scale["offset"] + scale["slope"] * np.log(relative[inside])
    assert np.allclose(score[inside], mapped, rtol=0, atol=1e-12)
    assert np.median(score) < 10 and np.quantile(score, 0.99) > 30 and score.max() == 100.0


def test_network_engager_contributions_add_up_to_inbound(network_higgs, higgs_interactions):
    top = network_higgs.sort(["raw", "account_id"], descending=[True, False])["account_id"].head(3).to_list()
    for account in [*top, "677"]:
        got = network_v2.engagers(account, higgs_interactions, network_higgs, network_v2.PARAMS)
        assert got.schema == pl.Schema(ENGAGERS_SCHEMA)
        assert got.height == received(higgs_interactions, account).select("source", "kind").n_unique()
        assert got.equals(got.sort(["contribution", "engager", "kind"], descending=[True, False, False],
                                   nulls_last=True))
        row = network_higgs.filter(pl.col("account_id") == account).row(0, named=True)
        sums = dict(got.group_by("kind").agg(pl.col("contribution").sum()).iter_rows())
        for kind in network_v2.KINDS:
            inbound = row[f"inbound_{kind}"]
            assert sums.get(kind, 0.0) == pytest.approx(inbound, rel=1e-9, abs=1e-300), (account, kind)
        assert sum(sums.values()) > 0.5 * row["raw"] or account == "677"


# --- the shipped constants are the documented ones ------------------------------------------

def readme_section(title: str) -> str:
    """The text of the README section whose heading line starts with TITLE, up to the next heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n" + title)
    end = re.compile(r"^#{1,3} ", re.M).search(text, start + len(title) + 1)
    return text[start:end.start() if end else len(text)]


def number(pattern: str, text: str) -> float:
    found = re.findall(pattern, text)
    assert len(found) == 1, (pattern, found)
    return float(found[0])


def documented_activity() -> dict:
    """activity@1's weights and reference quantile, as the README states them."""
    text = " ".join(readme_section("### `activity@1`").split())
    weights = {name: number(pattern, text) for name, pattern in {
        "retweets": r"over retweets \(([\d.]+)\)",
        "mentions": r"mentions \(([\d.]+)\)",
        "replies": r"replies \(([\d.]+)\)",
        "other": r"other = likes \+ messages \+ follows \(([\d.]+)\)",
        "engagers": r"distinct engagers \(([\d.]+);",
        "followers": r"followers \(([\d.]+);",
        "ratings": r"ratings `([\d.]+)·sign\(S\)",
    }.items()}
    return {"weights": weights, "ref_quantile": number(r"ref = the ([\d.]+) quantile", text)}


def documented_network() -> dict:
    """network@2's kind weights, damping, tolerance, iteration cap and score scale, as the README
    states them."""
    text = " ".join(readme_section("### `network@2`").split())
    sentence = re.search(r"Edge weight = [^:]*: (.*?); self-loops dropped", text).group(1)
    kinds = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)", sentence)}
    offset, slope = re.search(r"score = clamp\(([\d.]+) \+ ([\d.]+)·ln\(raw·N\), 1, 100\)", text).groups()
    return {"kind_weights": kinds, "damping": number(r"damping ([\d.]+)", text),
            "tol": number(r"L1 change is below ([\de.+-]+)", text),
            "max_iter": int(number(r"at most (\d+) iterations", text)),
            "scale": {"offset": float(offset), "slope": float(slope)}}


def test_readme_states_the_constants_written_out_here():
    assert documented_activity() == {"weights": ACTIVITY_WEIGHTS, "ref_quantile": ACTIVITY_REF_QUANTILE}
    assert documented_network() == {"kind_weights": NETWORK_KIND_WEIGHTS, "damping": NETWORK_DAMPING,
                                    "tol": NETWORK_TOL, "max_iter": NETWORK_MAX_ITER, "scale": NETWORK_SCALE}


@pytest.mark.parametrize("label", MODULES)
def test_shipped_params_are_the_documented_ones(label):
    documented = documented_activity() if label == "activity@1" else documented_network()
    assert MODULES[label].PARAMS == documented
    # and the module's own docstring says the same weights (it is stored with every version)
    if label == "network@2":
        doc = " ".join(network_v2.__doc__.split())
        for kind, weight in NETWORK_KIND_WEIGHTS.items():
            assert re.search(rf"\b{kind} {weight:g}\b", doc), kind
    else:
        doc = " ".join(activity_v1.__doc__.split())
        for name, weight in ACTIVITY_WEIGHTS.items():
            assert re.search(rf"\b{name} {weight:.1f}\b", doc), name


# --- the stored modules' duplicated id-mapping helpers ----------------------------------------

HELPERS = ("_LUT_MAX", "_POWERS", "_numbered", "_index")


def top_level_sources(module: types.ModuleType) -> dict[str, str]:
    """Source text of each top-level function and assignment of a module, by name."""
    source = Path(module.__file__).read_text(encoding="utf-8")
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        for name in names:
            # the full lines, so a trailing comment that documents a constant is compared too
            lines = source.splitlines()[node.lineno - 1:node.end_lineno]
            found[name] = "\n".join(lines)
    return found


def test_the_stored_modules_id_mapping_helpers_are_identical():
    """Each stored module is self-contained (it runs from its stored text), so every shipped version
    carries a copy of the id-mapping helpers; the copies must not drift apart."""
    from audit.records.algorithms import SHIPPED
    activity, network = top_level_sources(activity_v1), top_level_sources(network_v2)
    shipped = [top_level_sources(importlib.import_module(f"audit.algorithms.{f[:-3]}")) for f in SHIPPED.values()]
    for name in HELPERS:
        assert name in activity and name in network, name
        assert activity[name] == network[name], name
        assert all(module[name] == activity[name] for module in shipped), name
    assert inspect.getsource(activity_v1._numbered) == inspect.getsource(network_v2._numbered)
    assert inspect.getsource(activity_v1._index) == inspect.getsource(network_v2._index)
    assert activity_v1._LUT_MAX == network_v2._LUT_MAX
    assert np.array_equal(activity_v1._POWERS, network_v2._POWERS)
    assert activity_v1._POWERS.dtype == network_v2._POWERS.dtype
