"""network@3 (signed ratings) on real data: the same scores as network@2 where there are no negative
ratings, a fixed point equal to a dense eigenvector computed independently, components that add up,
and a negative rating that lowers the rated account and never raises it."""
from __future__ import annotations

import string

import numpy as np
import polars as pl
import pytest

from audit.algorithms import network_v2, network_v3
from audit.analysis.explain import FIELDS
from explain_data import SHARED

ALPHA = SHARED / "soc-sign-bitcoinalpha" / "soc-sign-bitcoinalpha.csv"
EMPTY = pl.DataFrame(schema={"account_id": pl.String, "handle": pl.String, "followers": pl.Int64,
                             "following": pl.Int64, "created_at": pl.Datetime("us", "UTC")})
# the documented constants (README, "network@3"), not the module's own PARAMS
DAMPING, RATING = 0.85, 0.1


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    if not ALPHA.is_file():
        pytest.skip(f"{ALPHA} is not beside the checkout")
    f = pl.read_csv(ALPHA, has_header=False, new_columns=["source", "target", "weight", "t"],
                    schema_overrides={"source": pl.String, "target": pl.String, "weight": pl.Float64, "t": pl.Int64})
    return f.select("source", "target", pl.lit("rating").alias("kind"),
                    pl.from_epoch("t").dt.replace_time_zone("UTC").alias("ts"), "weight")


def test_without_negative_ratings_it_is_network_2_to_1e_12(higgs_interactions, ratings):
    """The same formulas; network@3 adds its sums exactly (so that every engine gets the same bits)
    where network@2 adds them in floating point, which moves raw by at most ~2e-13 relative."""
    for interactions in (higgs_interactions, ratings.filter(pl.col("weight") > 0)):
        two = network_v2.score(interactions, EMPTY, network_v2.PARAMS)
        three = network_v3.score(interactions, EMPTY, network_v3.PARAMS)
        assert three["account_id"].equals(two["account_id"])
        raw2, raw3 = two["raw"].to_numpy(), three["raw"].to_numpy()
        assert np.max(np.abs(raw3 - raw2) / raw2) < 1e-12
        assert np.max(np.abs(three["score"].to_numpy() - two["score"].to_numpy())) < 1e-10
        assert (three["distrust"] == 0).all()


def test_its_sums_do_not_depend_on_the_order_of_the_interactions(ratings):
    """Exact sums: the interactions in another order give the same bits (what lets Spark, adding in
    any order on any number of partitions, equal the local engine)."""
    shuffled = ratings.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled["source"].equals(ratings["source"])
    a = network_v3.score(ratings, EMPTY, network_v3.PARAMS)
    b = network_v3.score(shuffled, EMPTY, network_v3.PARAMS)
    assert a.equals(b)


def test_equals_a_dense_eigenvector_on_bitcoin_alpha(ratings):
    """The chain: from j, follow a positive edge with probability d * w/W_j; a negative edge, a
    dangling account or teleport jumps to a uniformly chosen account. raw = (M x) - distrust."""
    result = network_v3.score(ratings, EMPTY, network_v3.PARAMS)
    ids = result["account_id"].to_list()
    pos = {a: i for i, a in enumerate(ids)}
    n = len(ids)
    w = np.zeros((n, n))
    for s, t, v in ratings.select("source", "target", "weight").iter_rows():
        if s != t:
            w[pos[s], pos[t]] += RATING * v
    out = np.abs(w).sum(axis=1)
    m = np.full((n, n), (1 - DAMPING) / n)
    for j in range(n):
        if out[j] == 0:
            m[:, j] += DAMPING / n
        else:
            m[:, j] += DAMPING * np.clip(w[j], 0, None) / out[j] + DAMPING * np.clip(-w[j], 0, None).sum() / out[j] / n
    # the stationary vector by dense power iteration (M is column-stochastic and positive)
    x = np.full(n, 1.0 / n)
    for _ in range(1000):
        nxt = m @ x
        done = np.abs(nxt - x).sum() < 1e-15
        x = nxt
        if done:
            break
    share = np.divide(x, out, out=np.zeros(n), where=out > 0)
    distrust = -DAMPING * (share @ np.clip(-w, 0, None))
    raw = m @ x + distrust
    got = result["raw"].to_numpy()
    assert np.max(np.abs(got - raw) / np.maximum(np.abs(raw), 1e-12)) < 1e-9
    assert np.allclose(result["distrust"].to_numpy(), distrust, rtol=1e-9, atol=1e-15)


def test_components_add_up_and_scores_follow_the_mapping(ratings):
    result = network_v3.score(ratings, EMPTY, network_v3.PARAMS)
    parts = result.select(list(network_v3.COMPONENTS)).to_numpy().sum(axis=1)
    assert np.allclose(parts, result["raw"].to_numpy(), rtol=0, atol=1e-15)
    n = result.height
    rel = result["raw"].to_numpy() * n
    expected = np.where(rel > 0, np.clip(20 + 10 * np.log(np.where(rel > 0, rel, 1)), 1, 100), 1.0)
    assert np.array_equal(result["score"].to_numpy(), expected)
    assert (result["distrust"] <= 0).all() and (result["raw"] <= 0).sum() > 50      # real distrust bites
    assert np.array_equal(network_v3.relative(result["raw"].to_numpy(), {"n": n}, network_v3.PARAMS), rel)


def test_a_negative_rating_lowers_the_rated_account(ratings):
    """Add one -10 rating from an influential rater to a middling account: it falls, under network@2
    it would not have moved; the rating's engager row is distrust with a negative contribution."""
    base = network_v3.score(ratings, EMPTY, network_v3.PARAMS)
    rater = base.sort("raw", descending=True)["account_id"][0]
    target = base.filter((pl.col("score") > 15) & (pl.col("account_id") != rater)).sort("account_id")["account_id"][0]
    extra = pl.DataFrame({"source": [rater], "target": [target], "kind": ["rating"],
                          "ts": ratings["ts"].max(), "weight": [-10.0]}).cast(ratings.schema)
    after = network_v3.score(pl.concat([ratings, extra]), EMPTY, network_v3.PARAMS)
    two = [network_v2.score(f, EMPTY, network_v2.PARAMS).filter(pl.col("account_id") == target)["score"][0]
           for f in (ratings, pl.concat([ratings, extra]))]

    def score(f):
        return f.filter(pl.col("account_id") == target)["score"][0]
    assert score(after) < score(base)
    assert abs(two[1] - two[0]) < abs(score(after) - score(base))
    rows = network_v3.engagers(target, pl.concat([ratings, extra]), after, network_v3.PARAMS)
    [row] = rows.filter((pl.col("engager") == rater) & (pl.col("kind") == "distrust")).iter_rows(named=True)
    assert row["contribution"] < 0 and row["weight"] <= -10


def test_reason_templates_use_only_the_documented_fields():
    for code, template in network_v3.REASONS.items():
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        assert fields <= set(FIELDS), (code, fields - set(FIELDS))
    # every own-activity pattern for every kind, distrust included
    for stem in ("RECEIVED_RETWEET", "RECEIVED_REPLY", "TRUST_RATINGS", "DISTRUST_RATINGS"):
        for way in ("ROSE", "FELL", "ROSE_LESS", "FELL_MORE", "SAME_MORE", "SAME_LESS", "ROSE_AT_CAP", "FELL_AT_FLOOR"):
            assert f"{stem}_{way}" in network_v3.REASONS
    assert "negative ratings" in network_v3.CHANGELOG.lower()
