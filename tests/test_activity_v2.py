"""activity@2: activity@1's formulas with an exact sum of ratings (so that Spark, adding in any order,
gets the same bits): equal to activity@1 bit for bit on real data with whole-number ratings, and the
same bits whatever the order of the interactions."""
from __future__ import annotations

import polars as pl
import pytest

from audit.algorithms import activity_v1, activity_v2
from explain_data import SHARED

ALPHA = SHARED / "soc-sign-bitcoinalpha" / "soc-sign-bitcoinalpha.csv"
EMPTY = pl.DataFrame(schema={"account_id": pl.String, "handle": pl.String, "followers": pl.Int64,
                             "following": pl.Int64, "created_at": pl.Datetime("us", "UTC")})


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    if not ALPHA.is_file():
        pytest.skip(f"{ALPHA} is not beside the checkout")
    f = pl.read_csv(ALPHA, has_header=False, new_columns=["source", "target", "weight", "t"],
                    schema_overrides={"source": pl.String, "target": pl.String, "weight": pl.Float64, "t": pl.Int64})
    return f.select("source", "target", pl.lit("rating").alias("kind"),
                    pl.from_epoch("t").dt.replace_time_zone("UTC").alias("ts"), "weight")


def test_it_is_activity_1_bit_for_bit_on_whole_number_ratings(higgs_interactions, ratings):
    for interactions in (higgs_interactions, ratings):
        one = activity_v1.score(interactions, EMPTY, activity_v1.PARAMS)
        two = activity_v2.score(interactions, EMPTY, activity_v2.PARAMS)
        assert two.equals(one)
    assert (two["ratings"] < 0).sum() > 100          # Bitcoin Alpha's distrust is in it


def test_fractional_ratings_sum_to_the_same_bits_in_any_order(ratings):
    tenths = ratings.with_columns(pl.col("weight") * 0.1)
    shuffled = tenths.sample(fraction=1.0, shuffle=True, seed=5)
    a = activity_v2.score(tenths, EMPTY, activity_v2.PARAMS)
    b = activity_v2.score(shuffled, EMPTY, activity_v2.PARAMS)
    assert a.equals(b)
    close = activity_v1.score(tenths, EMPTY, activity_v1.PARAMS)
    assert (a["raw"] - close["raw"]).abs().max() < 1e-12
