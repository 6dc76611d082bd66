"""compare_runs on real Higgs scores: every metric against an independent reference."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import polars as pl
import pytest
import scipy.sparse
import scipy.stats
from polars.testing import assert_frame_equal

from audit.analysis import compare
from audit.analysis.compare import (Comparison, ParamChange, RunInfo, compare_runs, diff_params, diff_source,
                           kendall_tau_b, rank_biased_overlap, spearman)
from audit.analysis.segments import align_features, segment_features
from audit.errors import InvalidArgument
from audit.present import comparison_json, comparison_text

DAY = pl.col("ts").dt.day()
Runs = dict[str, pl.DataFrame]
Comparisons = dict[tuple[str, str], Comparison]


# ---------------------------------------------------------------- real scores from the Higgs data

def _accounts(inter: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([inter["source"], inter["target"]]).unique().sort().to_frame("account_id")


def log_indegree(inter: pl.DataFrame) -> pl.DataFrame:
    """Score = 1 + 99 log(1 + received) / log(1 + max received), 2 decimals (many ties)."""
    received = inter.group_by("target").agg(pl.len().alias("n")).rename({"target": "account_id"})
    f = _accounts(inter).join(received, on="account_id", how="left").with_columns(pl.col("n").fill_null(0))
    top = f["n"].max()
    return f.select("account_id", raw=pl.col("n").cast(pl.Float64),
                    score=(1 + 99 * pl.col("n").log1p() / math.log1p(top)).round(2))


def pagerank(inter: pl.DataFrame, damping: float = 0.85, iterations: int = 100) -> pl.DataFrame:
    """Engager -> author PageRank (scipy sparse), mapped to 1..100 on a log scale, 2 decimals."""
    ids = _accounts(inter).with_row_index("i")
    e = (inter.join(ids.rename({"account_id": "source", "i": "s"}), on="source")
         .join(ids.rename({"account_id": "target", "i": "t"}), on="target"))
    n = ids.height
    s, t = e["s"].to_numpy(), e["t"].to_numpy()
    out = np.bincount(s, minlength=n).astype(np.float64)
    a = scipy.sparse.csr_matrix((np.ones(s.size), (t, s)), shape=(n, n))
    pr = np.full(n, 1.0 / n)
    for _ in range(iterations):
        share = np.divide(pr, out, out=np.zeros(n), where=out > 0)
        pr = damping * (a @ share + pr[out == 0].sum() / n) + (1 - damping) / n
    lg = np.log(pr)
    score = np.round(1 + 99 * (lg - lg.min()) / (lg.max() - lg.min()), 2)
    return ids.select("account_id", raw=pl.Series(pr), score=pl.Series(score))


def info(run_id: str, snapshot: str, algorithm: str, params: dict[str, object] | None = None,
         source: str = "") -> RunInfo:
    return RunInfo(run_id, snapshot, algorithm, params or {}, source)


@pytest.fixture(scope="module")
def runs(higgs_interactions: pl.DataFrame) -> Runs:
    h = higgs_interactions
    return {"indegree_week": log_indegree(h), "pagerank_week": pagerank(h),
            "day4": log_indegree(h.filter(DAY == 4)), "day5": log_indegree(h.filter(DAY == 5)),
            "to_day4": log_indegree(h.filter(DAY <= 4)), "to_day5": log_indegree(h.filter(DAY <= 5))}


@pytest.fixture(scope="module")
def features(higgs_interactions: pl.DataFrame, empty_accounts: pl.DataFrame) -> pl.DataFrame:
    return segment_features(higgs_interactions, empty_accounts)


# (baseline, candidate): a new version on the same snapshot; one version on two daily slices
PAIRS = [("indegree_week", "pagerank_week"), ("day4", "day5"), ("to_day4", "to_day5")]


@pytest.fixture(scope="module")
def comparisons(runs: Runs, features: pl.DataFrame) -> Comparisons:
    return {(b, c): compare_runs(runs[b], runs[c], features=features, baseline_info=info("r_b", "s_1", "a@1"),
                                 candidate_info=info("r_c", "s_2", "a@2"), top=25)
            for b, c in PAIRS}


def joined(runs: Runs, b: str, c: str) -> pl.DataFrame:
    """Accounts in both runs in baseline ranking order (score desc, account_id), with delta."""
    return (runs[b].join(runs[c], on="account_id", suffix="_c")
            .select("account_id", x="score", y="score_c", delta=(pl.col("score_c") - pl.col("score")).round(9))
            .sort(["x", "account_id"], descending=[True, False]))


# ---------------------------------------------------------------- rank agreement

@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-vs-{p[1]}")
def test_spearman_and_kendall_equal_scipy_on_all_and_top_slices(runs: Runs, comparisons: Comparisons,
                                                                 pair: tuple[str, str]) -> None:
    j = joined(runs, *pair)
    m = j.height
    assert j["x"].n_unique() < m / 5 and j["y"].n_unique() < m / 5        # real scores: heavy ties
    got = {a.scope: a for a in comparisons[pair].agreement}
    for scope, k in [("all", m), ("top_10pct", math.ceil(m / 10)), ("top_1pct", math.ceil(m / 100))]:
        x, y = j["x"].to_numpy()[:k], j["y"].to_numpy()[:k]
        assert got[scope].accounts == k
        assert got[scope].spearman == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
        assert got[scope].kendall_tau_b == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)


def test_numpy_discordant_count_equals_scipy_and_brute_force(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    j = joined(runs, "indegree_week", "pagerank_week")
    x, y = j["x"].to_numpy(), j["y"].to_numpy()
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
    monkeypatch.setattr(compare, "_kendall_dis", None)            # the pure-numpy inversion count
    assert kendall_tau_b(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)
    seq = np.unique(y[::500], return_inverse=True)[1]             # 600-odd real values, with ties
    brute = sum(int((seq[i] > seq[i + 1:]).sum()) for i in range(seq.size))
    assert compare._inversions(seq) == brute


def test_constant_side_gives_nan_like_scipy(runs: Runs) -> None:
    x = runs["day4"]["score"].to_numpy()[:500]
    with pytest.warns(scipy.stats.ConstantInputWarning):
        assert math.isnan(scipy.stats.spearmanr(x, np.ones(500)).statistic)
    assert math.isnan(spearman(x, np.ones(500))) and math.isnan(kendall_tau_b(x, np.ones(500)))


# ---------------------------------------------------------------- rank-biased overlap and top-k

def rbo_direct(short: list[str], long_: list[str], p: float) -> float:
    """Webber, Moffat & Zobel (2010) eq. 32, term by term (S the shorter ranking, L the longer)."""
    if len(short) > len(long_):
        short, long_ = long_, short
    x = {}
    for d in range(1, len(long_) + 1):
        x[d] = len(set(short[:d]) & set(long_[:d]))
    ss, ll = len(short), len(long_)
    total = sum(x[d] / d * p ** d for d in range(1, ll + 1))
    total += sum(x[ss] * (d - ss) / (ss * d) * p ** d for d in range(ss + 1, ll + 1))
    return (1 - p) / p * total + ((x[ll] - x[ss]) / ll + x[ss] / ss) * p ** ll


def test_rbo_matches_hand_computation_and_direct_formula(runs: Runs) -> None:
    # S = a b c d (s=4), L = b a e c f (l=5), p = 0.9.  Overlaps X_d: X1=0 {a}/{b}, X2=2, X3=2 (e new),
    # X4=3 (c), and for d=5 > s: |S & L[:5]| = 3.
    # sum_{d<=5} X_d/d p^d = 0 + 1*.81 + (2/3)*.729 + (3/4)*.6561 + (3/5)*.59049
    #                      = .81 + .486 + .492075 + .354294 = 2.142369
    # sum_{d=5} X_s (d-s)/(s d) p^d = 3 * 1/20 * .59049 = .0885735
    # (1-p)/p * (2.142369 + .0885735) = 2.2309425 / 9 = .2478825
    # tail ((X_l - X_s)/l + X_s/s) p^l = (0 + 3/4) * .59049 = .4428675      -> RBO_EXT = .69075
    short, long_ = list("abcd"), list("baecf")
    assert rbo_direct(short, long_, 0.9) == pytest.approx(0.69075, abs=1e-12)
    assert rank_biased_overlap(short, long_, 0.9) == pytest.approx(0.69075, abs=1e-12)
    assert rank_biased_overlap(long_, short, 0.9) == pytest.approx(0.69075, abs=1e-12)
    # the top 1,500 / 2,000 of two real rankings, both persistence values
    top_b = joined(runs, "indegree_week", "pagerank_week")["account_id"].to_list()[:1500]
    top_c = runs["pagerank_week"].sort(["score", "account_id"], descending=[True, False])["account_id"].to_list()[:2000]
    for p in (0.9, 0.99):
        assert rank_biased_overlap(top_b, top_c, p) == pytest.approx(rbo_direct(top_b, top_c, p), abs=1e-12)
        assert rank_biased_overlap(top_c, top_c, p) == 1.0


def test_identical_runs_agree_exactly(runs: Runs, features: pl.DataFrame) -> None:
    b = runs["indegree_week"]
    c = compare_runs(b, b, features=features, baseline_info=info("r_1", "s_1", "a@1", {"w": 1}, "W = 1\n"),
                     candidate_info=info("r_1", "s_1", "a@1", {"w": 1}, "W = 1\n"))
    assert c.rbo == {0.9: 1.0, 0.99: 1.0}
    assert c.top_k_overlap == {10: 1.0, 100: 1.0, 1000: 1.0}
    assert [(a.spearman, a.kendall_tau_b) for a in c.agreement] == [(1.0, 1.0)] * 3
    assert c.deltas.changed == 0 and c.deltas.mean == 0.0 and c.deltas.p5 == c.deltas.p95 == 0.0
    assert sum(c.bands[i][i] for i in range(10)) == b.height
    assert c.risers.is_empty() and c.fallers.is_empty()
    assert c.param_changes == () and c.source_diff == "" and c.any_difference is False


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-vs-{p[1]}")
def test_top_k_overlap_equals_python_sets(runs: Runs, comparisons: Comparisons, pair: tuple[str, str]) -> None:
    ranked = {name: runs[name].sort(["score", "account_id"], descending=[True, False])["account_id"].to_list()
              for name in pair}
    for k in (10, 100, 1000):
        expected = len(set(ranked[pair[0]][:k]) & set(ranked[pair[1]][:k])) / k
        assert comparisons[pair].top_k_overlap[k] == expected


# ---------------------------------------------------------------- coverage, deltas, bands, movers

@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-vs-{p[1]}")
def test_coverage_deltas_and_band_matrix(runs: Runs, comparisons: Comparisons, pair: tuple[str, str]) -> None:
    c = comparisons[pair]
    ids_b, ids_c = set(runs[pair[0]]["account_id"]), set(runs[pair[1]]["account_id"])
    assert (c.coverage.both, c.coverage.only_baseline, c.coverage.only_candidate) == (
        len(ids_b & ids_c), len(ids_b - ids_c), len(ids_c - ids_b))
    assert c.coverage.both + c.coverage.only_baseline == runs[pair[0]].height
    j = joined(runs, *pair)
    d = sorted(j["delta"].to_list())
    m = len(d)
    assert c.deltas.accounts == m and c.deltas.changed == j.filter(pl.col("x") != pl.col("y")).height
    assert c.deltas.mean == pytest.approx(j["delta"].mean(), abs=1e-12)
    assert c.deltas.median == j["delta"].median()
    assert (c.deltas.p5, c.deltas.p95) == (d[math.ceil(5 * m / 100) - 1], d[math.ceil(95 * m / 100) - 1])
    assert c.deltas.up_5 == (j["delta"] > 5).sum() / m and c.deltas.down_10 == (j["delta"] < -10).sum() / m
    band = lambda col: (pl.col(col) / 10).floor().clip(0, 9).cast(pl.Int64)   # noqa: E731
    expected = (j.group_by(band("x").alias("bx"), band("y").alias("by")).len()
                .pivot("by", index="bx", values="len").fill_null(0))
    matrix = np.array(c.bands)
    assert matrix.sum() == c.coverage.both
    for row in expected.iter_rows(named=True):
        assert all(matrix[row["bx"], int(k)] == v for k, v in row.items() if k != "bx")
    assert c.any_difference is True


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-vs-{p[1]}")
def test_movers_equal_a_direct_polars_sort(runs: Runs, comparisons: Comparisons, pair: tuple[str, str]) -> None:
    ranks = {name: runs[name].select("account_id", rank=pl.col("score").rank("min", descending=True).cast(pl.Int64))
             for name in pair}
    j = (joined(runs, *pair)
         .join(ranks[pair[0]].rename({"rank": "baseline_rank"}), on="account_id")
         .join(ranks[pair[1]].rename({"rank": "candidate_rank"}), on="account_id")
         .select("account_id", baseline_score="x", candidate_score="y", delta="delta",
                 baseline_rank="baseline_rank", candidate_rank="candidate_rank"))
    risers = j.filter(pl.col("delta") > 0).sort(["delta", "account_id"], descending=[True, False]).head(25)
    fallers = j.filter(pl.col("delta") < 0).sort(["delta", "account_id"]).head(25)
    assert_frame_equal(comparisons[pair].risers, risers)
    assert_frame_equal(comparisons[pair].fallers, fallers)


# ---------------------------------------------------------------- segments

def test_segment_features_on_higgs(higgs_interactions: pl.DataFrame, features: pl.DataFrame) -> None:
    h = higgs_interactions
    assert features["account_id"].to_list() == sorted(set(h["source"]) | set(h["target"]))
    assert features["received"].sum() == features["given"].sum() == h.height
    direct = h.group_by("target").agg(n=pl.len(), e=pl.col("source").n_unique()).rename({"target": "account_id"})
    both = features.join(direct, on="account_id")
    assert (both["received"] == both["n"]).all() and (both["distinct_engagers"] == both["e"]).all()
    assert features["followers"].null_count() == features["age_days"].null_count() == features.height
    # an accounts file: created at first appearance, followers = distinct engagers of days 1-3
    first = (pl.concat([h.select(account_id="source", ts="ts"), h.select(account_id="target", ts="ts")])
             .group_by("account_id").agg(created_at=pl.col("ts").min()))
    fans = (h.filter(DAY <= 3).group_by("target").agg(followers=pl.col("source").n_unique())
            .rename({"target": "account_id"}))
    accounts = first.join(fans, on="account_id", how="left").sort("account_id")
    f = segment_features(h, accounts)
    age = f.join(first, on="account_id").select(
        "age_days", expected=(h["ts"].max() - pl.col("created_at")).dt.total_microseconds() / 86_400e6)
    assert (age["age_days"] - age["expected"]).abs().max() < 1e-9 and age["age_days"].min() >= 0
    assert f["followers"].null_count() == accounts["followers"].null_count()


def test_features_of_one_snapshot_are_gathered_like_a_join(runs: Runs, higgs_interactions: pl.DataFrame,
                                                           empty_accounts: pl.DataFrame) -> None:
    b, c = runs["day4"], runs["day5"]
    day5 = segment_features(higgs_interactions.filter(DAY == 5), empty_accounts)
    assert day5["account_id"].equals(c["account_id"])
    j = b.select("account_id").join(c.select("account_id").with_row_index("ic"), on="account_id",
                                    maintain_order="left")
    gathered = align_features(day5, j["account_id"], [(c["account_id"], j["ic"].to_numpy())])
    assert_frame_equal(gathered, align_features(day5, j["account_id"]))          # merged, not gathered
    assert gathered.filter(pl.col("received") > 0).height > 0
    partial = align_features(day5.tail(1000), j["account_id"])                     # joined: some unknown
    known = j["account_id"].is_in(day5.tail(1000)["account_id"].implode())
    assert_frame_equal(partial.filter(known), gathered.filter(known))
    assert partial.filter(~known)["received"].sum() == 0 and partial.filter(~known).height == (~known).sum()


def test_disjoint_and_empty_runs(runs: Runs, features: pl.DataFrame) -> None:
    b, c = runs["day4"], runs["day5"]
    only_b = b.join(c, on="account_id", how="anti")
    only_c = c.join(b, on="account_id", how="anti")
    for x, y in [(only_b, only_c), (only_b, only_b.head(0)), (only_b.head(0), only_b.head(0))]:
        r = compare_runs(x, y, features=features, baseline_info=info("r_b", "s_1", "a@1"),
                         candidate_info=info("r_c", "s_2", "a@1"))
        assert (r.coverage.both, r.coverage.only_baseline, r.coverage.only_candidate) == (0, x.height, y.height)
        assert math.isnan(r.spearman) and math.isnan(r.deltas.mean) and r.risers.is_empty()
        shorter = min(x.height, y.height)
        assert r.top_k_accounts == {k: min(k, shorter) for k in (10, 100, 1000)}
        if shorter:         # nothing shared of what could be
            assert r.top_k_overlap == {10: 0.0, 100: 0.0, 1000: 0.0}
        else:               # an empty run: no overlap is defined
            assert all(math.isnan(v) for v in r.top_k_overlap.values())
        assert r.any_difference is (x.height + y.height > 0)
        json.dumps(comparison_json(r), allow_nan=False)
        assert comparison_text(r).endswith("verdict: " + ("the runs differ" if r.any_difference else "no difference"))
    assert compare_runs(only_b, only_c, features=features, baseline_info=info("r_b", "s_1", "a@1"),
                        candidate_info=info("r_c", "s_2", "a@1")).rbo == {0.9: 0.0, 0.99: 0.0}
    with pytest.raises(ValueError, match="baseline run lists an account_id twice"):
        compare_runs(pl.concat([b, b.head(3)]), c, features=features, baseline_info=info("r_b", "s_1", "a@1"),
                     candidate_info=info("r_c", "s_2", "a@1"))


def quantile_band_frame(j: pl.DataFrame, col: str) -> pl.DataFrame:
    """Independent banding: nearest-rank P50/P90/P99 of the positive values as value cuts."""
    pos = sorted(v for v in j[col].to_list() if v > 0)
    cut = [pos[math.ceil(q * len(pos) / 100) - 1] for q in (50, 90, 99)]
    v = pl.col(col)
    return j.with_columns(band=pl.when(v == 0).then(pl.lit("none")).when(v <= cut[0]).then(pl.lit("bottom 50%"))
                          .when(v <= cut[1]).then(pl.lit("50-90%")).when(v <= cut[2]).then(pl.lit("90-99%"))
                          .otherwise(pl.lit("top 1%")))


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-vs-{p[1]}")
def test_builtin_segments_equal_a_direct_group_by(runs: Runs, comparisons: Comparisons, features: pl.DataFrame,
                                                  pair: tuple[str, str]) -> None:
    j = joined(runs, *pair).join(features, on="account_id", how="left")
    seg = comparisons[pair].segments
    assert set(seg["segment"]) == {"activity", "audience"}                 # no follower counts, no ages
    for name, col in [("activity", "received"), ("audience", "distinct_engagers")]:
        got = seg.filter(pl.col("segment") == name)
        assert got["feature"].unique().to_list() == [col]
        assert got["accounts"].sum() == comparisons[pair].coverage.both
        expected = (quantile_band_frame(j, col).group_by("band")
                    .agg(accounts=pl.len(), mean_delta=pl.col("delta").mean(), median_delta=pl.col("delta").median(),
                         low=pl.col(col).min(), high=pl.col(col).max()))
        both = got.join(expected, on="band", suffix="_x")
        assert both.height == got.height == expected.height
        assert (both["accounts"] == both["accounts_x"]).all()
        assert (both["median_delta"] - both["median_delta_x"]).abs().max() < 1e-12
        assert (both["mean_delta"] - both["mean_delta_x"]).abs().max() < 1e-9
        assert (both["low"] == both["low_x"]).all() and (both["high"] == both["high_x"]).all()


def test_age_and_follower_segments_and_user_expressions(higgs_interactions: pl.DataFrame, runs: Runs) -> None:
    h = higgs_interactions
    first = (pl.concat([h.select(account_id="source", ts="ts"), h.select(account_id="target", ts="ts")])
             .group_by("account_id").agg(created_at=pl.col("ts").min()))
    fans = h.group_by("target").agg(followers=pl.col("source").n_unique()).rename({"target": "account_id"})
    feats = segment_features(h, first.join(fans, on="account_id", how="left"))
    user = {"heavy": "CASE WHEN received >= 100 THEN 'heavy' ELSE 'light' END",
            "engaged": "distinct_engagers * 2 > received", "quartile": "ntile(4) OVER (ORDER BY given, account_id)"}
    c = compare_runs(runs["to_day4"], runs["to_day5"], features=feats, segments=user,
                     baseline_info=info("r_b", "s_1", "a@1"), candidate_info=info("r_c", "s_2", "a@1"))
    assert c.segments["segment"].unique(maintain_order=True).to_list() == [
        "activity", "audience", "age", "heavy", "engaged", "quartile"]
    assert c.segments.filter(pl.col("segment") == "audience")["feature"].unique().to_list() == ["followers"]
    assert c.segments.filter(pl.col("segment") == "age")["band"].to_list() == ["<30d"]   # a 7-day dataset
    j = joined(runs, "to_day4", "to_day5").join(feats, on="account_id", how="left").sort("account_id")
    bands = {"heavy": pl.when(pl.col("received") >= 100).then(pl.lit("heavy")).otherwise(pl.lit("light")),
             "engaged": (pl.col("distinct_engagers") * 2 > pl.col("received")).cast(pl.String),
             "quartile": ((pl.int_range(pl.len()).sort_by(["given", "account_id"]).arg_sort() * 4 // pl.len()) + 1)
             .cast(pl.String)}
    for name, expr in bands.items():
        expected = (j.with_columns(band=expr).group_by("band")
                    .agg(accounts=pl.len().cast(pl.Int64), mean_delta=pl.col("delta").mean(),
                         median_delta=pl.col("delta").median()).sort("band"))
        got = c.segments.filter(pl.col("segment") == name).select("band", "accounts", "mean_delta", "median_delta")
        assert_frame_equal(got, expected, check_exact=False, rel_tol=0, abs_tol=1e-9)
    assert c.segments.filter(pl.col("segment") == "engaged")["feature"].to_list() == [user["engaged"]] * 2


def test_broken_user_segment_raises_with_its_name(runs: Runs, features: pl.DataFrame) -> None:
    def run(segments: dict[str, str]) -> Comparison:
        return compare_runs(runs["day4"], runs["day5"], features=features, segments=segments,
                            baseline_info=info("r_b", "s_1", "a@1"), candidate_info=info("r_c", "s_2", "a@1"))
    with pytest.raises(InvalidArgument, match='segment "heavy": expression "recieved >= 100" failed in DuckDB: '
                                         'Binder Error: .*"recieved" not found'):
        run({"heavy": "recieved >= 100"})
    with pytest.raises(InvalidArgument, match='segment "total": expression "sum\\(received\\)" failed'):
        run({"total": "sum(received)"})
    with pytest.raises(InvalidArgument, match='segment "raw": expression "received" gives .* distinct values'):
        run({"raw": "received"})
    with pytest.raises(InvalidArgument, match='segment name "activity" is empty or built in'):
        run({"activity": "received > 1"})
    with pytest.raises(InvalidArgument, match="read_csv"):                          # no file access
        run({"leak": "(SELECT count(*) FROM read_csv('/etc/hostname'))"})


# ---------------------------------------------------------------- what changed in the algorithm

ACTIVITY_1 = '''"""activity@1: a 2011-style composite of engagement received."""
import numpy as np
import polars as pl

PARAMS = {"weights": {"retweet": 1.0, "mention": 0.5, "reply": 0.5}, "scale": "log"}


def score(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> pl.DataFrame:
    w = params["weights"]
    received = interactions.group_by("target").agg(pl.col("kind").replace_strict(w).sum().alias("raw"))
    return received.select(account_id="target", raw="raw", score=1 + 99 * np.log1p(pl.col("raw")) / 12)
'''
ACTIVITY_2 = ACTIVITY_1.replace("activity@1", "activity@2").replace(
    '"reply": 0.5}, "scale": "log"}', '"engagers": 2.0}, "scale": "log", "cap": 100}').replace(
    "/ 12)", "/ 12).clip(1, params[\"cap\"])")


def test_parameter_and_source_diff() -> None:
    p1 = {"weights": {"retweet": 1.0, "mention": 0.5, "reply": 0.5}, "scale": "log"}
    p2 = {"weights": {"retweet": 1.5, "mention": 0.5, "engagers": 2.0}, "scale": "log", "cap": 100}
    assert diff_params(p1, p2) == (
        ParamChange("cap", "added", None, 100),
        ParamChange("weights.engagers", "added", None, 2.0),
        ParamChange("weights.reply", "removed", 0.5, None),
        ParamChange("weights.retweet", "changed", 1.0, 1.5))
    assert diff_params(p1, p1) == () and diff_params({"k": 1}, {"k": 1.0}) == (ParamChange("k", "changed", 1, 1.0),)
    assert diff_source(ACTIVITY_1, ACTIVITY_2, "activity@1", "activity@2") == '''--- activity@1
+++ activity@2
@@ -1,11 +1,11 @@
-"""activity@1: a 2011-style composite of engagement received."""
+"""activity@2: a 2011-style composite of engagement received."""
 import numpy as np
 import polars as pl
 
-PARAMS = {"weights": {"retweet": 1.0, "mention": 0.5, "reply": 0.5}, "scale": "log"}
+PARAMS = {"weights": {"retweet": 1.0, "mention": 0.5, "engagers": 2.0}, "scale": "log", "cap": 100}
 
 
 def score(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> pl.DataFrame:
     w = params["weights"]
     received = interactions.group_by("target").agg(pl.col("kind").replace_strict(w).sum().alias("raw"))
-    return received.select(account_id="target", raw="raw", score=1 + 99 * np.log1p(pl.col("raw")) / 12)
+    return received.select(account_id="target", raw="raw", score=1 + 99 * np.log1p(pl.col("raw")) / 12).clip(1, params["cap"])
'''
    assert diff_source(ACTIVITY_1, ACTIVITY_1) == ""


# ---------------------------------------------------------------- rendering

def test_text_and_json_renderings(runs: Runs, features: pl.DataFrame) -> None:
    c = compare_runs(runs["indegree_week"], runs["pagerank_week"], features=features, top=3,
                     baseline_info=info("r_1", "s_1", "activity@1", {"weights": {"retweet": 1.0}}, ACTIVITY_1),
                     candidate_info=info("r_2", "s_1", "network@2", {"damping": 0.85}, ACTIVITY_2),
                     segments={"heavy": "CASE WHEN received >= 100 THEN 'heavy' ELSE 'light' END"})
    doc = comparison_json(c)
    text = json.dumps(doc, sort_keys=True, allow_nan=False)
    assert json.loads(text) == doc and doc == comparison_json(c)
    assert {"spearman", "kendall_tau_b", "rbo", "top_k_overlap", "bands", "segments", "movers"} <= set(doc)
    assert doc["rbo"].keys() == {"0.9", "0.99"} and doc["top_k_overlap"].keys() == {"10", "100", "1000"}
    assert doc["spearman"] == c.spearman and len(doc["movers"]["risers"]) == 3
    assert doc["movers"]["fallers"][0] == c.fallers.row(0, named=True)
    assert doc["param_changes"][0] == {"path": "damping", "kind": "added", "baseline": None, "candidate": 0.85}
    out = comparison_text(c)
    both = c.coverage.both
    assert f"accounts: {both:,} in both, 0 only in baseline, 0 only in candidate" in out
    assert re.search(rf"^  all +{both:,} +{c.spearman:.3f} +{c.kendall_tau_b:.3f}$", out, re.M)
    assert re.search(r"^  heavy +light +304,009 +-0\.47 +\+0\.00$", out, re.M)
    assert "  damping: (absent) -> 0.85" in out
    assert re.search(r"^source diff: \+\d+ -\d+ lines \(12 shown; ", out, re.M)
    assert "-\"\"\"activity@1: a 2011-style composite of engagement received.\"\"\"" in out
    assert out.endswith("\nverdict: the runs differ") and out == comparison_text(c)


def test_store_features_equal_segment_features(tmp_path, higgs_interactions: pl.DataFrame) -> None:
    """The store computes a snapshot's segment features in DuckDB; they equal the polars definition,
    also with delivered accounts (followers, creation time) and accounts that never interact."""
    from datetime import datetime, timezone

    from audit import api
    from audit.records import snapshots as snaps
    from audit.store.db import connect
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = higgs_interactions.head(20_000)
    csv = tmp_path / "day.csv"
    rows.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(csv)
    ids = rows["target"].unique().sort().head(300).to_list() + ["lurker-1", "lurker-2"]
    accounts = pl.DataFrame({"account_id": ids, "followers": list(range(len(ids))),
                             "created_at": [f"2011-{1 + i % 12:02d}-01T00:00:00Z" for i in range(len(ids))]})
    accounts.write_csv(tmp_path / "accounts.csv")
    store = tmp_path / "s.duckdb"
    api.ingest(store, csv, now=now)
    api.ingest(store, tmp_path / "accounts.csv", now=now)
    snap = api.snapshot(store, as_of="2012-07-01", window="7d", now=now)
    with connect(store) as con:
        from_store = snaps.features(con, snap)
        interactions, delivered = snaps.load_inputs(con, snap)
    expected = segment_features(interactions, delivered)
    assert from_store.height == expected.height == snap.accounts
    assert from_store["followers"].null_count() < from_store.height
    assert_frame_equal(from_store, expected.cast(from_store.schema))
