"""activity@2: activity@1's formulas, plus compute_spark (the same scores on Apache Spark).

A 2011-style composite of log-scaled engagement received.

Invariant: every account's components add up to its raw score (raw is defined as their sum,
in COMPONENTS order), and the score depends on raw and on one population statistic only.

Self-contained source (stored and executed by the registry): imports only the standard
library, numpy, scipy and polars.

Every account id that appears as a source or target, plus every accounts.account_id, is
scored. Self-interactions (an account retweeting or rating itself) are ignored everywhere.
Interactions are counted (one row = one), so `weight` matters only for ratings, where it
is the rating value. Components, each weight * ln(1 + count) (PARAMS["weights"]):

- retweets 1.0: retweets received (amplification, the strongest signal);
- mentions 0.8, replies 0.8: mentions and replies received (conversation);
- other 0.4: likes, messages and follows received, together (cheap or private signals);
- engagers 1.5: distinct accounts that retweeted, mentioned, replied to, liked, messaged or
  followed the account (reach: many people beat one busy fan). Raters are not counted
  here: a -10 rating is a judgement, scored by the ratings term, not reach;
- followers 0.5: accounts.followers (0 when unknown; easy to inflate, so weighted low);
- ratings 1.0: sign(S) * ln(1 + |S|) with S the sum of rating values received, so a net
  negative rating (e.g. Bitcoin OTC distrust) lowers raw and can make it negative.

The sum S of rating values is exact (fixed point, see _limbs), so it does not depend on the
order the ratings are added in: any engine gets the same bits. Where every partial sum is exact
in floating point (whole-number ratings, as on Bitcoin OTC and Alpha) this is activity@1's S, and
every value equals activity@1's bit for bit.

A component's count is recoverable: count = expm1(component / weight) (ratings: S =
sign(c) * expm1(|c| / weight)); reason texts use these as before/after.

Score: score = clamp(1 + 99 * raw / ref, 1, 100), with ref = the 0.99 quantile (nearest
rank: the ceil(0.99 m)-th smallest of the m positive raws; an exact order statistic, so it
does not depend on how ties sort) of raw over accounts with raw > 0; normalisation() returns
{"ref": ref} (0.0 when no raw is positive: every score is then 1). The top 1% score 100,
raw <= 0 scores 1, and because ref is a population statistic, other accounts rising lowers
the score of an account whose own activity did not change. The score is not rounded. On
all of Higgs (59,075 of 304,691 accounts receive anything; the rest only act, raw 0):
min = median 1, p90 15.5, p99 55.9, 591 accounts at 100.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

NAME = "activity"
VERSION = 2
DESCRIPTION = (
    "A 2011-style activity score: retweets, mentions, replies, other engagement (likes, "
    "messages, follows) and distinct engagers received, followers, and the net sum of ratings "
    "received, each on a log scale and weighted, added up, and scaled so that the top 1% of "
    "active accounts score 100. Negative net ratings lower the score."
)
CHANGELOG = ("activity@1's formulas, plus compute_spark: the same scores on Apache Spark "
             "(--engine spark). The net rating received is summed exactly, so every engine adds it "
             "up to the same bits; on whole-number ratings every value equals activity@1's.")
PARAMS = {
    "weights": {"retweets": 1.0, "mentions": 0.8, "replies": 0.8, "other": 0.4,
                "engagers": 1.5, "followers": 0.5, "ratings": 1.0},
    "ref_quantile": 0.99,
}
COMPONENTS = {
    "retweets": "Retweets received",
    "mentions": "Mentions received",
    "replies": "Replies received",
    "other": "Likes, messages and follows received",
    "engagers": "Distinct accounts engaging",
    "followers": "Followers",
    "ratings": "Net rating received",
}
REASONS = {
    **{f"{c.upper()}_{way.upper()}":
       f"{noun} {way} from {{before:,.0f}} to {{after:,.0f}}: {{points:+.1f}} points"
       for c, noun in COMPONENTS.items() if c != "ratings" for way in ("rose", "fell")},
    "RATINGS_ROSE": "Net rating received rose from {before:+,.0f} to {after:+,.0f}: {points:+.1f} points",
    "RATINGS_FELL": "Net rating received fell from {before:+,.0f} to {after:+,.0f}: {points:+.1f} points",
    "POPULATION_ROSE": ("Other accounts' activity rose, so the same activity is worth fewer points: "
                        "{points:+.1f} points"),
    "POPULATION_FELL": ("Other accounts' activity fell, so the same activity is worth more points: "
                        "{points:+.1f} points"),
    "ALGORITHM_CHANGED": ("The algorithm now counts retweets, mentions, replies, distinct engagers, "
                          "followers and net ratings received, each on a log scale: {points:+.1f} points"),
}
KINDS = ("retweet", "mention", "reply", "like", "message", "follow", "rating")
_RATING = KINDS.index("rating")

_LUT_MAX = 1 << 25                                   # numbered ids below this use a lookup table
_POWERS = 10 ** np.arange(1, 10, dtype=np.uint32)    # 10 .. 10^9: digit counts of uint32 values


def _numbered(frame: pl.DataFrame, names: tuple[str, ...], prefix: str) -> list[np.ndarray] | None:
    """The numbers of the ids in columns NAMES, if each is PREFIX + a canonical decimal uint32."""
    body = (lambda c: pl.col(c).str.strip_prefix(prefix)) if prefix else pl.col
    parsed = frame.select(
        *[body(c).cast(pl.UInt32, strict=False).alias(c) for c in names],
        *[pl.when(pl.col(c).str.starts_with(prefix)).then(pl.col(c).str.len_bytes()).otherwise(0)
          .alias(f"{c}_len") for c in names])
    cut = len(prefix.encode())
    numbers = []
    for c in names:
        if parsed[c].null_count():
            return None
        number = parsed[c].to_numpy()
        # canonical ("u7", not "u07", "u+7", "7") iff it is exactly prefix + the digits of number
        digits = np.searchsorted(_POWERS, number, side="right") + 1
        if not np.array_equal(parsed[f"{c}_len"].to_numpy(), digits + cut):
            return None
        numbers.append(number)
    return numbers


def _index(interactions: pl.DataFrame,
           accounts: pl.DataFrame) -> tuple[pl.Series, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted universe of ids, and the int32 positions in it of source, target and account_id.

    Fast path: hashing 2 x 10M strings is the slowest step of a score, so when every id is
    one shared prefix (taken from the first id) + a canonical decimal below _LUT_MAX, like
    "123" or "u123", ids are parsed as numbers and mapped through a lookup table. The
    output is identical to the general path: under a common prefix, ids sort as their
    digit strings do.
    """
    interactions = interactions.select(pl.col("source", "target").cast(pl.String))
    accounts = accounts.select(pl.col("account_id").cast(pl.String))
    first = next((f[c][0] for f in (interactions, accounts) for c in f.columns if f.height), None)
    prefix = first.rstrip("0123456789") if isinstance(first, str) else None
    numbers = None if prefix is None else _numbered(interactions, ("source", "target"), prefix)
    if numbers is not None:
        more = _numbered(accounts, ("account_id",), prefix)
        numbers = None if more is None else numbers + more
    top = -1 if numbers is None else max(int(a.max()) for a in numbers if len(a))
    if 0 <= top < _LUT_MAX:
        present = np.zeros(top + 1, dtype=bool)
        for array in numbers:
            present[array] = True
        distinct = np.flatnonzero(present)
        digits = pl.Series("account_id", distinct).cast(pl.String)
        order = digits.arg_sort().to_numpy()
        lookup = np.zeros(top + 1, dtype=np.int32)
        lookup[distinct[order]] = np.arange(len(distinct), dtype=np.int32)
        ids = (prefix + digits.gather(order)).alias("account_id")
        return ids, lookup[numbers[0]], lookup[numbers[1]], lookup[numbers[2]]
    columns = [interactions["source"], interactions["target"], accounts["account_id"]]
    ids = pl.concat(columns).drop_nulls().unique().sort().alias("account_id")
    codes = [column.cast(pl.Enum(ids)).to_physical().to_numpy().astype(np.int32) for column in columns]
    return ids, codes[0], codes[1], codes[2]


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"account_id": pl.String, "raw": pl.Float64, "score": pl.Float64,
                                **{c: pl.Float64 for c in COMPONENTS}})


# ---------------------------------------------------------------- exact sums
# A sum of ratings is exact in fixed point: each value is cut into two integer limbs (2^-60 and
# 2^-92 of `top`, a power of two bounding the sum), the limbs are added as 64-bit integers (in
# any order, with the same result), and the total is turned back into a double by one fixed
# expression. compute_spark does the same steps in Spark.
_HI, _LO = 2.0 ** 60, 2.0 ** 32
_MASK = (1 << 32) - 1


def _top(bound: float) -> float:
    """The smallest power of two above BOUND (> 0): the scale of an exact sum bounded by it."""
    return 2.0 ** math.frexp(bound)[1] if bound > 0 else 1.0


def _limbs(values: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    a = values * (_HI / top)
    hi = np.floor(a)
    return hi.astype(np.int64), np.floor((a - hi) * _LO).astype(np.int64)


def _from_limbs(h: np.ndarray, l: np.ndarray, top: float) -> np.ndarray:
    h = h + (l >> 32)
    l = l & _MASK
    return h.astype(np.float64) * (top / _HI) + l.astype(np.float64) * (top / (_HI * _LO))


def _exact_by(keys: np.ndarray, values: np.ndarray, n: int, top: float) -> np.ndarray:
    """Exact sums of VALUES by integer KEY in 0..n-1 (0.0 for a key without values)."""
    out = np.zeros(n)
    if not len(keys):
        return out
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    hi, lo = _limbs(values[order], top)
    out[ordered[starts]] = _from_limbs(np.add.reduceat(hi, starts), np.add.reduceat(lo, starts), top)
    return out


def _terms(counts: np.ndarray, engagers_n: np.ndarray, followers: np.ndarray, rating_sum: np.ndarray,
           params: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """raw and its components from the per-account counts (one column per kind in KINDS order),
    distinct engagers, followers and net rating: the formulas, shared by both engines."""
    w = params["weights"]
    columns = {
        "retweets": w["retweets"] * np.log1p(counts[:, KINDS.index("retweet")]),
        "mentions": w["mentions"] * np.log1p(counts[:, KINDS.index("mention")]),
        "replies": w["replies"] * np.log1p(counts[:, KINDS.index("reply")]),
        "other": w["other"] * np.log1p(counts[:, KINDS.index("like")] + counts[:, KINDS.index("message")]
                                       + counts[:, KINDS.index("follow")]),
        "engagers": w["engagers"] * np.log1p(engagers_n),
        "followers": w["followers"] * np.log1p(followers),
        "ratings": w["ratings"] * np.sign(rating_sum) * np.log1p(np.abs(rating_sum)),
    }
    raw = columns["retweets"].copy()
    for name in list(COMPONENTS)[1:]:
        raw += columns[name]
    return raw, columns


def score(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> pl.DataFrame:
    """One row per account: account_id, raw, score, the weighted log terms that add up to raw."""
    ids, src, tgt, acc = _index(interactions, accounts)
    n = len(ids)
    if n == 0:
        return _empty()
    k = len(KINDS) + 1                       # the last slot collects unknown kinds (ignored)
    kind = (interactions["kind"].cast(pl.Enum(list(KINDS)), strict=False).to_physical()
            .fill_null(len(KINDS)).to_numpy().astype(np.int64))
    value = interactions["weight"].fill_null(0.0).to_numpy()
    keep = src != tgt
    src, tgt, kind, value = src[keep], tgt[keep], kind[keep], value[keep]
    counts = np.bincount(tgt.astype(np.int64) * k + kind, minlength=n * k).reshape(n, k).astype(np.float64)
    rated = kind == _RATING
    ratings = value[rated]
    rtop = _top(len(ratings) * float(np.abs(ratings).max())) if len(ratings) else 1.0
    rating_sum = _exact_by(tgt[rated], ratings, n, rtop)
    engaging = kind < _RATING
    pairs = pl.Series(src[engaging].astype(np.int64) * n + tgt[engaging]).unique().to_numpy()
    engagers_n = np.bincount(pairs % n, minlength=n).astype(np.float64)
    followers = np.zeros(n)
    if len(acc):
        known = accounts["followers"].cast(pl.Float64).fill_null(0.0).clip(lower_bound=0.0).to_numpy()
        np.maximum.at(followers, acc, known)
    raw, columns = _terms(counts, engagers_n, followers, rating_sum, params)
    result = pl.DataFrame({"account_id": ids, "raw": raw, "score": np.zeros(n), **columns})
    return result.with_columns(pl.Series("score", to_score(raw, normalisation(result, params), params)))


# ---------------------------------------------------------------- on Apache Spark

def compute_spark(spark, interactions, accounts, params):
    """score() on Spark DataFrames: Spark counts per account (by kind, distinct engagers, followers)
    and sums ratings exactly (the same limbs); the formulas (_terms) and the mapping (to_score, with
    normalisation() of all raws) run in numpy, in the Python workers and the driver, so every value
    comes out bit for bit as score() gives it."""
    from pyspark.sql import functions as F

    col, lit = F.col, F.lit
    kept = interactions.where(col("source") != col("target"))
    rated = kept.where(col("kind") == "rating")
    stats = rated.agg(F.count(lit(1)).alias("e"), F.max(F.abs(col("weight"))).alias("m")).first()
    rtop = _top(stats["e"] * float(stats["m"])) if stats["e"] else 1.0
    a = col("weight") * lit(_HI / rtop)
    received = (kept.groupBy(col("target").alias("account_id")).agg(
        *[F.count(F.when(col("kind") == name, 1)).alias(name) for name in KINDS[:_RATING]],
        F.countDistinct(F.when(col("kind").isin(*KINDS[:_RATING]), col("source"))).alias("engagers"),
        F.sum(F.when(col("kind") == "rating", F.floor(a))).alias("r_h"),
        F.sum(F.when(col("kind") == "rating", F.floor((a - F.floor(a)) * lit(_LO)))).alias("r_l")))
    followers = accounts.groupBy("account_id").agg(
        F.max(F.greatest(F.coalesce(col("followers").cast("double"), lit(0.0)), lit(0.0))).alias("followers"))
    ids = (interactions.select(col("source").alias("account_id"))
           .union(interactions.select(col("target").alias("account_id")))
           .union(accounts.select("account_id")).distinct())
    table = (ids.join(received, "account_id", "left").join(followers, "account_id", "left")
             .select("account_id", *[F.coalesce(col(name), lit(0)).cast("long").alias(name) for name in KINDS[:_RATING]],
                     F.coalesce(col("engagers"), lit(0)).cast("long").alias("engagers"),
                     F.coalesce(col("followers"), lit(0.0)).alias("followers"),
                     F.coalesce(col("r_h"), lit(0)).cast("long").alias("r_h"),
                     F.coalesce(col("r_l"), lit(0)).cast("long").alias("r_l")))
    schema = "account_id string, raw double, score double, " + ", ".join(f"{c} double" for c in COMPONENTS)

    def terms(batches):
        import pyarrow as pa
        for batch in batches:
            get = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names}
            counts = np.zeros((batch.num_rows, len(KINDS) + 1))
            for j, name in enumerate(KINDS[:_RATING]):
                counts[:, j] = get[name].astype(np.float64)
            rating_sum = _from_limbs(get["r_h"].astype(np.int64), get["r_l"].astype(np.int64), rtop)
            raw, columns = _terms(counts, get["engagers"].astype(np.float64), get["followers"], rating_sum, params)
            yield pa.RecordBatch.from_arrays(
                [batch.column("account_id"), pa.array(raw), pa.array(np.zeros(batch.num_rows)),
                 *[pa.array(columns[c]) for c in COMPONENTS]], names=["account_id", "raw", "score", *COMPONENTS])

    result = table.mapInArrow(terms, schema).localCheckpoint(eager=True)
    norm = normalisation(pl.from_arrow(result.select("raw").toArrow()), params)

    def mapped(batches):
        import pyarrow as pa
        for batch in batches:
            scores = to_score(batch.column("raw").to_numpy(zero_copy_only=False), norm, params)
            yield pa.RecordBatch.from_arrays(
                [pa.array(scores) if name == "score" else batch.column(name) for name in batch.schema.names],
                schema=batch.schema)

    return result.mapInArrow(mapped, result.schema)


def measure(component: str, value: float, norm: dict, params: dict) -> float:
    """The plain quantity behind a component value, for reason texts: the count it was made from."""
    w = float(params["weights"].get(component, 0.0))
    if w == 0.0:
        return 0.0
    return float(np.sign(value) * np.expm1(abs(value) / w)) if component == "ratings" else float(np.expm1(value / w))


def normalisation(result: pl.DataFrame, params: dict) -> dict[str, float]:
    """The population statistic the mapping uses: ref, the nearest-rank quantile of positive raws."""
    positive = result["raw"].to_numpy()
    positive = positive[positive > 0]
    if positive.size == 0:
        return {"ref": 0.0}
    ppm = int(round(float(params["ref_quantile"]) * 1_000_000))
    rank = max(1, -(-ppm * positive.size // 1_000_000))     # ceil(q * m) in integers
    return {"ref": float(np.partition(positive, rank - 1)[rank - 1])}


def to_score(raw: np.ndarray, norm: dict, params: dict) -> np.ndarray:
    """clamp(1 + 99 * raw / ref, 1, 100); every score is 1 when ref is 0."""
    raw = np.asarray(raw, dtype=np.float64)
    ref = float(norm["ref"])
    if ref <= 0:
        return np.ones_like(raw)
    return np.clip(1.0 + 99.0 * (raw / ref), 1.0, 100.0)


def engagers(account_id: str, interactions: pl.DataFrame, result: pl.DataFrame, params: dict) -> pl.DataFrame:
    """Per (engager, kind) acting on account_id: count and summed weight; contribution is null
    because log terms do not split into per-engager parts."""
    return (interactions.filter((pl.col("target") == account_id) & (pl.col("source") != account_id))
            .group_by("source", "kind")
            .agg(pl.len().cast(pl.Int64).alias("interactions"), pl.col("weight").sum().alias("weight"))
            .select(pl.col("source").alias("engager"), "kind", "interactions", "weight",
                    pl.lit(None, pl.Float64).alias("contribution"))
            .sort(["contribution", "engager", "kind"], descending=[True, False, False], nulls_last=True))
