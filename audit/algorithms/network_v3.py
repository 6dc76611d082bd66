"""network@3: engagement-weighted PageRank on the engager -> author graph, with signed ratings.

Invariant: every account's components (teleport, dangling, inbound_<kind>, distrust) add up to
its raw score, and raw is one application of the PageRank operator to the converged iterate,
minus the distrust the account received.

Self-contained source (stored and executed by the registry): imports only the standard
library, numpy, scipy and polars.

What changed from network@2: a negative rating passes distrust instead of nothing. network@2
clipped negative ratings to weight 0, so a rater who gave an account -10 counted like one who
never rated it, and an account rated -10 by twenty others could score like an unknown one.
Here every engagement, positive or negative, takes a share of the engager's attention; a
positive share passes trust (PageRank mass) to the target, a negative share subtracts the same
amount from the target's raw score (one step of distrust, as in Guha et al., "Propagation of
Trust and Distrust", WWW 2004: distrust is not propagated further) and its mass is spread over
all accounts like a dangling account's. On data without negative ratings network@3 gives exactly
network@2's scores.

Graph. Every account id that appears as a source or target, plus every accounts.account_id,
is a node (N nodes). Each interaction "source acted on target" has the signed weight
`kind_weights[kind] * weight` for a rating (weight = the rating value, negative allowed) and
`kind_weights[kind] * max(weight, 0)` for any other kind. Self-interactions are dropped.
Constants (PARAMS) are network@2's: retweet 1.0, reply 0.75, mention 0.5, like 0.25, message
0.25, follow 0.1, rating 0.1 per point; damping 0.85; tol 1e-13 (L1 change between iterates);
max_iter 500; scale offset 20, slope 10.

With W_j = the sum of |weight| over j's out-edges, x the converged PageRank, d the damping:
- teleport = (1-d)/N;
- dangling = d * (sum of x over accounts with W = 0 + sum_j x_j * negative_j / W_j) / N, with
  negative_j the |weight| j gave in negative ratings: the mass of accounts that engage nobody and
  the mass distrust takes away, spread evenly;
- inbound_<kind> for A = d * sum_j x_j * w+_jA(kind) / W_j (positive weights);
- distrust for A = -d * sum_j x_j * |w-_jA| / W_j (negative ratings), <= 0.
raw = their sum (in COMPONENTS order); it can be negative. x is the fixed point of the chain
whose steps follow a positive edge, or jump to a uniformly chosen account (teleport, dangling,
or a negative edge).

Score: clamp(offset + slope * ln(raw * N), 1, 100), and 1 when raw <= 0: an average account
(raw * N = 1) scores 20, each doubling of rank adds 6.9 points, and distrust at least as large as
the trust received puts an account at the floor. normalisation() is {"n": N}; to_score() is the
mapping; relative() is raw * N, the quantity the score is a function of (independent of how many
accounts there are). The score is not rounded.

Reason fields: see REASONS; an engager's contribution is d * x_j * w_jA / W_j, signed.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

NAME = "network"
VERSION = 3
DESCRIPTION = (
    "Engagement-weighted PageRank on the engager -> author graph with signed ratings: every "
    "retweet, reply, mention, like, message, follow or positive rating passes on a share of the "
    "engager's own score, and every negative rating takes the same share away, so attention from "
    "influential accounts counts for more and their distrust costs more. The rank is mapped to "
    "1-100 on a fixed log scale (an average account scores 20, each doubling of rank adds about "
    "7 points; distrust as large as the trust received puts an account at 1)."
)
CHANGELOG = ("Negative ratings now pass distrust (they lower the rated account's score in "
             "proportion to the rater's own score) instead of being ignored; otherwise network@2.")
PARAMS = {
    "kind_weights": {"retweet": 1.0, "reply": 0.75, "mention": 0.5, "like": 0.25,
                     "message": 0.25, "follow": 0.1, "rating": 0.1},
    "damping": 0.85,
    "tol": 1e-13,
    "max_iter": 500,
    "scale": {"offset": 20.0, "slope": 10.0},
}
KINDS = ("retweet", "reply", "mention", "like", "message", "follow", "rating")
COMPONENTS = {
    "teleport": "Base share every account gets",
    "dangling": "Share spread from accounts that engage with nobody and from distrust",
    "inbound_retweet": "Retweets received, weighted by the retweeter's score",
    "inbound_reply": "Replies received, weighted by the replier's score",
    "inbound_mention": "Mentions received, weighted by the mentioner's score",
    "inbound_like": "Likes received, weighted by the liker's score",
    "inbound_message": "Messages received, weighted by the sender's score",
    "inbound_follow": "Follows received, weighted by the follower's score",
    "inbound_rating": "Positive ratings received, weighted by the rater's score",
    "distrust": "Negative ratings received, weighted by the rater's score",
}
# For explanations: teleport and dangling shares depend on everyone else; an inbound share (and
# distrust) splits per engager into the engager's own standing (everyone else) and its
# engagement with the account (the account's own activity). Engagers are grouped by kind, with
# negative ratings as the kind "distrust".
COMPONENT_PARTS = {"teleport": "population", "dangling": "population",
                   **{f"inbound_{k}": f"engagers:{k}" for k in KINDS}, "distrust": "engagers:distrust"}
NORM_LABELS = {"n": "The number of accounts in the snapshot"}
_WAYS = {
    "ROSE": "{label} rose from {before_text} to {after_text}{detail}: {points:+.1f} points",
    "FELL": "{label} fell from {before_text} to {after_text}{detail}: {points:+.1f} points",
    "ROSE_LESS": ("{label} rose from {before_text} to {after_text}{detail}, but from less influential "
                  "accounts than before: {points:+.1f} points"),
    "FELL_MORE": ("{label} fell from {before_text} to {after_text}{detail}, but from more influential "
                  "accounts than before: {points:+.1f} points"),
    "SAME_MORE": "{label} stayed at {before_text}{detail}, now from more influential accounts: {points:+.1f} points",
    "SAME_LESS": "{label} stayed at {before_text}{detail}, now from less influential accounts: {points:+.1f} points",
    "ROSE_AT_CAP": ("{label} rose from {before_text} to {after_text}{detail}, but the score stays at the "
                    "cap of 100: {points:+.1f} points"),
    "FELL_AT_CAP": ("{label} fell from {before_text} to {after_text}{detail}, but the score stays at the "
                    "cap of 100: {points:+.1f} points"),
    "ROSE_AT_FLOOR": ("{label} rose from {before_text} to {after_text}{detail}, but the score stays at the "
                      "floor of 1: {points:+.1f} points"),
    "FELL_AT_FLOOR": ("{label} fell from {before_text} to {after_text}{detail}, but the score stays at the "
                      "floor of 1: {points:+.1f} points"),
}
_STEMS = {**{f"RECEIVED_{k.upper()}": k for k in KINDS if k != "rating"},
          "TRUST_RATINGS": "rating", "DISTRUST_RATINGS": "distrust"}
REASONS = {
    **{f"{stem}_{way}": template for stem in _STEMS for way, template in _WAYS.items()},
    "ENGAGER_MORE": ("{engager} passes on more to this account (its score {engager_score_before} -> "
                     "{engager_score_after}, engagements it gave {given_before} -> {given_after}): "
                     "{points:+.1f} points"),
    "ENGAGER_LESS": ("{engager} passes on less to this account (its score {engager_score_before} -> "
                     "{engager_score_after}, engagements it gave {given_before} -> {given_after}): "
                     "{points:+.1f} points"),
    "DISTRUSTER_MORE": ("{engager} passes on more distrust to this account (its score {engager_score_before} -> "
                        "{engager_score_after}, engagements it gave {given_before} -> {given_after}): "
                        "{points:+.1f} points"),
    "DISTRUSTER_LESS": ("{engager} passes on less distrust to this account (its score {engager_score_before} -> "
                        "{engager_score_after}, engagements it gave {given_before} -> {given_after}): "
                        "{points:+.1f} points"),
    "BASE_SHARE_ROSE": ("The share every account gets from accounts that engage with nobody and from distrust "
                        "rose from {before_text} to {after_text} times an average account's rank: "
                        "{points:+.1f} points"),
    "BASE_SHARE_FELL": ("The share every account gets from accounts that engage with nobody and from distrust "
                        "fell from {before_text} to {after_text} times an average account's rank: "
                        "{points:+.1f} points"),
    "POPULATION_OTHER": "Other accounts' engagement not attributed to one engager: {points:+.1f} points",
    "ALGORITHM_SCALE": ("{new_algorithm} gives the account's rank ({rank_text}) {new_score_text} points where "
                        "{old_algorithm} gave {old_score_text}{detail}: {points:+.1f} points"),
    "ALGORITHM_RANK_HIGHER": ("The account ranks higher under {new_algorithm} than under {old_algorithm} "
                              "({rank_text}): {points:+.1f} points"),
    "ALGORITHM_RANK_LOWER": ("The account ranks lower under {new_algorithm} than under {old_algorithm} "
                             "({rank_text}): {points:+.1f} points"),
    "ALGORITHM_RANK_MIXED": ("The account's rank under {new_algorithm} differs from its rank under "
                             "{old_algorithm} ({rank_text}): {points:+.1f} points"),
}

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


def _signed_weights(interactions: pl.DataFrame, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction: its kind's position in KINDS (len(KINDS) if unknown) and its signed weight."""
    table = params["kind_weights"]
    unknown = sorted(set(table) - set(KINDS))
    if unknown:
        raise ValueError(f"network@3: kind_weights has unknown kinds {unknown}; known: {list(KINDS)}")
    kind = (interactions["kind"].cast(pl.Enum(list(KINDS)), strict=False).to_physical()
            .fill_null(len(KINDS)).to_numpy().astype(np.int64))
    per_kind = np.array([float(table.get(k, 0.0)) for k in KINDS] + [0.0])
    value = interactions["weight"].fill_null(0.0).to_numpy()
    signed = np.where(kind == KINDS.index("rating"), value, np.maximum(value, 0.0))
    return kind, per_kind[kind] * signed


# ---------------------------------------------------------------- exact sums
# Every sum below is exact in fixed point: each term is cut into two integer limbs (2^-60 and
# 2^-92 of `top`, a power of two bounding the sum), the limbs are added as 64-bit integers, and
# the total is turned back into a double by one fixed expression. Integer addition does not
# depend on order, so any engine that adds the same terms in any order, on any number of
# partitions, gets the same bits; compute_spark below does exactly these steps.
_HI, _LO = 2.0 ** 60, 2.0 ** 32
_MASK = (1 << 32) - 1


def _top(bound: float) -> float:
    """The smallest power of two above BOUND (> 0): the scale of an exact sum bounded by it."""
    return 2.0 ** math.frexp(bound)[1] if bound > 0 else 1.0


def _limbs(values: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    a = values * (_HI / top)
    hi = np.floor(a)
    a -= hi                         # exact: the fraction below the first limb
    a *= _LO
    np.floor(a, out=a)
    return hi.astype(np.int64), a.astype(np.int64)


def _from_limbs(h, l, top: float):
    """The double of an exact limb total (numpy arrays or Python ints; the same operations)."""
    h = h + (l >> 32)
    l = l & _MASK
    if isinstance(h, np.ndarray):
        return h.astype(np.float64) * (top / _HI) + l.astype(np.float64) * (top / (_HI * _LO))
    return float(h) * (top / _HI) + float(l) * (top / (_HI * _LO))


def _total(values: np.ndarray, top: float) -> float:
    hi, lo = _limbs(values, top)
    return _from_limbs(int(hi.sum()), int(lo.sum()), top)


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """order (a stable sort of KEYS), the start of each run of equal keys, and those keys."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.zeros(0, np.int64)
    return order, starts, ordered[starts]


def _sums(ordered_values: np.ndarray, starts: np.ndarray, top: float) -> np.ndarray:
    """Exact sums of runs of ORDERED_VALUES beginning at STARTS."""
    if not len(starts):
        return np.zeros(0)
    hi, lo = _limbs(ordered_values, top)
    return _from_limbs(np.add.reduceat(hi, starts), np.add.reduceat(lo, starts), top)


def _by(keys: np.ndarray, values: np.ndarray, n: int, top: float) -> np.ndarray:
    """Exact sums of VALUES by integer KEY in 0..n-1 (0.0 for a key without values)."""
    order, starts, uniq = _groups(keys)
    out = np.zeros(n)
    out[uniq] = _sums(values[order], starts, top)
    return out


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"account_id": pl.String, "raw": pl.Float64, "score": pl.Float64,
                                **{c: pl.Float64 for c in COMPONENTS}})


def score(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> pl.DataFrame:
    """One row per account: account_id, raw (PageRank minus distrust), score, the components of raw."""
    ids, src, tgt, _ = _index(interactions, accounts)
    n = len(ids)
    if n == 0:
        return _empty()
    kind, w = _signed_weights(interactions, params)
    keep = (w != 0) & (src != tgt)
    src, tgt, kind, w = src[keep].astype(np.int64), tgt[keep].astype(np.int64), kind[keep], w[keep]
    d, tol, max_iter = float(params["damping"]), float(params["tol"]), int(params["max_iter"])
    size = np.abs(w)
    wtop = _top(len(w) * float(size.max())) if len(w) else 1.0
    negative, positive = w < 0, w > 0
    out = _by(src, size, n, wtop)                             # W_j: all the weight j gave
    lost = _by(src[negative], size[negative], n, wtop)       # the part of it given as distrust
    inv = np.zeros(n)
    np.divide(1.0, out, out=inv, where=out > 0)
    leak = np.where(out > 0, lost * inv, 1.0)                # share of j's mass spread evenly
    # positive edges merged per (source, target), ordered by target, then source
    order, starts, pairs = _groups(tgt[positive] * n + src[positive])
    pair_w = _sums(w[positive][order], starts, wtop)
    pair_src, pair_tgt = pairs % n, pairs // n
    _, into, into_key = _groups(pair_tgt)
    leaky = np.flatnonzero(leak)                             # the rest add exact zeros to the total
    leak_of = leak[leaky]
    x = np.full(n, 1.0 / n)
    err = math.inf
    for _ in range(max_iter):
        share = (d * x) * inv
        inbound = np.zeros(n)
        inbound[into_key] = _sums(share[pair_src] * pair_w, into, 2.0)
        base = (d * _total(x[leaky] * leak_of, 2.0) + (1.0 - d)) / n
        nxt = inbound + base
        err = _total(np.abs(nxt - x), 4.0)
        x = nxt
        if err < tol:
            break
    else:
        raise RuntimeError(f"network@3: PageRank did not converge in {max_iter} iterations "
                           f"(L1 change {err:.3g}, tol {tol:g})")
    # one more application of the operator, split by where the mass comes from
    flow = ((d * x) * inv)[src] * size
    k = len(KINDS)
    by_kind = _by(tgt[positive] * k + kind[positive], flow[positive], n * k, 2.0).reshape(n, k)
    columns = {"teleport": np.full(n, (1.0 - d) / n),
               "dangling": np.full(n, d * _total(x * leak, 2.0) / n)}
    for j, name in enumerate(KINDS):
        columns[f"inbound_{name}"] = by_kind[:, j]
    columns["distrust"] = 0.0 - _by(tgt[negative], flow[negative], n, 2.0)
    raw = columns["teleport"].copy()
    for name in list(COMPONENTS)[1:]:
        raw += columns[name]
    result = pl.DataFrame({"account_id": ids, "raw": raw, "score": np.zeros(n), **columns})
    return result.with_columns(pl.Series("score", to_score(raw, normalisation(result, params), params)))


# ---------------------------------------------------------------- on Apache Spark

def compute_spark(spark, interactions, accounts, params):
    """score() on Spark DataFrames, step for step: the same weights, exact sums (the same limbs,
    added by Spark), the same iteration and stopping rule, and the same to_score (numpy, in the
    Python workers), so every value comes out bit for bit as score() gives it. PageRank runs as
    iterated joins on 64-bit keys (xxhash64 of the id, checked free of collisions), the edges
    and the rank vector partitioned alike by source, the rank vector checkpointed each iteration
    so the plan does not grow."""
    from pyspark.sql import functions as F

    d, tol, max_iter = float(params["damping"]), float(params["tol"]), int(params["max_iter"])
    parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    col, lit = F.col, F.lit

    def limbs(value, top, name):
        a = value * lit(_HI / top)
        return [F.floor(a).alias(f"{name}_h"), F.floor((a - F.floor(a)) * lit(_LO)).alias(f"{name}_l")]

    def sums(name, when=None, alias=None):
        h, l = col(f"{name}_h"), col(f"{name}_l")
        if when is not None:
            h, l = F.when(when, h).otherwise(0), F.when(when, l).otherwise(0)
        alias = alias or name
        return [F.sum(h).alias(f"{alias}_h"), F.sum(l).alias(f"{alias}_l")]

    def value(name, top):
        h = col(f"{name}_h") + F.shiftright(col(f"{name}_l"), 32)
        l = col(f"{name}_l").bitwiseAND(lit(_MASK))
        return F.coalesce(h.cast("double") * lit(top / _HI) + l.cast("double") * lit(top / (_HI * _LO)), lit(0.0))

    def total(row, name, top):
        return _from_limbs(int(row[f"{name}_h"] or 0), int(row[f"{name}_l"] or 0), top)

    ids = (interactions.select(col("source").alias("account_id"))
           .union(interactions.select(col("target").alias("account_id")))
           .union(accounts.select("account_id")).distinct()
           .withColumn("id", F.xxhash64("account_id")).persist())
    n = ids.count()
    if n == 0:
        return spark.createDataFrame([], ", ".join(f"{c} {'string' if c == 'account_id' else 'double'}"
                                                    for c in _empty().columns))
    if ids.select("id").distinct().count() != n:
        raise RuntimeError("network@3: two account ids share an xxhash64 key; this snapshot cannot run on Spark")
    table = params["kind_weights"]
    unknown = sorted(set(table) - set(KINDS))
    if unknown:
        raise ValueError(f"network@3: kind_weights has unknown kinds {unknown}; known: {list(KINDS)}")
    kind_weight = lit(0.0)
    for name in KINDS:
        kind_weight = F.when(col("kind") == name, lit(float(table.get(name, 0.0)))).otherwise(kind_weight)
    signed = F.when(col("kind") == "rating", col("weight")).otherwise(F.greatest(col("weight"), lit(0.0)))
    edges = (interactions
             .select(F.xxhash64("source").alias("src"), F.xxhash64("target").alias("tgt"), "kind",
                     (kind_weight * signed).alias("w"))
             .where((col("w") != 0) & (col("src") != col("tgt")))
             .withColumn("size", F.abs(col("w"))).persist())
    stats = edges.agg(F.count(lit(1)).alias("e"), F.max("size").alias("m")).first()
    wtop = _top(stats["e"] * float(stats["m"])) if stats["e"] else 1.0
    given = (edges.select("src", "w", *limbs(col("size"), wtop, "out"))
             .groupBy("src").agg(*sums("out"), *sums("out", col("w") < 0, "lost")))
    out, lost = value("out", wtop), value("lost", wtop)
    nodes = (ids.join(given, ids["id"] == given["src"], "left")
             .select("id", "account_id", out.alias("out"), lost.alias("lost"))
             .select("id", "account_id",
                     F.when(col("out") > 0, lit(1.0) / col("out")).otherwise(lit(0.0)).alias("inv"), "out", "lost")
             .select("id", "account_id", "inv",
                     F.when(col("out") > 0, col("lost") * col("inv")).otherwise(lit(1.0)).alias("leak")))
    pairs = (edges.where(col("w") > 0).select("src", "tgt", *limbs(col("w"), wtop, "pw"))
             .groupBy("src", "tgt").agg(*sums("pw"))
             .select("src", "tgt", value("pw", wtop).alias("pw"))
             .repartition(parts, "src").persist())
    pairs.count()
    ranks = (nodes.select("id", "inv", "leak", lit(1.0 / n).alias("x"))
             .select("*", *limbs(col("x") * col("leak"), 2.0, "lk"))
             .repartition(parts, "id").localCheckpoint(eager=True))
    leak = total(ranks.agg(*sums("lk")).first(), "lk", 2.0)
    err = math.inf
    for _ in range(max_iter):
        base = (d * leak + (1.0 - d)) / n
        share = ranks.select(col("id").alias("src"), ((lit(d) * col("x")) * col("inv")).alias("share"))
        inbound = (pairs.join(share, "src").select("tgt", *limbs(col("share") * col("pw"), 2.0, "in"))
                   .groupBy("tgt").agg(*sums("in")))
        nxt = (ranks.join(inbound, ranks["id"] == inbound["tgt"], "left")
               .select("id", "inv", "leak", col("x").alias("old"), (value("in", 2.0) + lit(base)).alias("x"))
               .select("id", "inv", "leak", "x", *limbs(F.abs(col("x") - col("old")), 4.0, "err"),
                       *limbs(col("x") * col("leak"), 2.0, "lk"))
               .localCheckpoint(eager=False))                 # cut the lineage: the plan stays bounded
        row = nxt.agg(*sums("err"), *sums("lk")).first()     # one job computes and keeps the iterate
        ranks, err, leak = nxt, total(row, "err", 4.0), total(row, "lk", 2.0)
        if err < tol:
            break
    else:
        raise RuntimeError(f"network@3: PageRank did not converge in {max_iter} iterations "
                           f"(L1 change {err:.3g}, tol {tol:g})")
    share = ranks.select(col("id").alias("src"), ((lit(d) * col("x")) * col("inv")).alias("share"))
    flows = (edges.join(share, "src").select("tgt", "kind", "w", *limbs(col("share") * col("size"), 2.0, "f"))
             .groupBy("tgt").agg(*[s for name in KINDS for s in sums("f", (col("w") > 0) & (col("kind") == name), name)],
                                 *sums("f", col("w") < 0, "distrust")))
    teleport, dangling = (1.0 - d) / n, d * leak / n
    parts_of_raw = [lit(teleport).alias("teleport"), lit(dangling).alias("dangling"),
                    *[value(name, 2.0).alias(f"inbound_{name}") for name in KINDS],
                    (lit(0.0) - value("distrust", 2.0)).alias("distrust")]
    result = (ids.join(flows, ids["id"] == flows["tgt"], "left").select("account_id", *parts_of_raw))
    raw = col("teleport")
    for name in list(COMPONENTS)[1:]:
        raw = raw + col(name)
    result = result.select("account_id", raw.alias("raw"), lit(0.0).alias("score"), *COMPONENTS)
    norm = {"n": float(n)}

    def mapped(batches):
        import pyarrow as pa
        for batch in batches:
            scores = to_score(batch.column("raw").to_numpy(zero_copy_only=False), norm, params)
            yield pa.RecordBatch.from_arrays(
                [pa.array(scores) if name == "score" else batch.column(name) for name in batch.schema.names],
                schema=batch.schema)

    return result.mapInArrow(mapped, result.schema)


def measure(component: str, value: float, norm: dict, params: dict) -> float:
    """The plain quantity behind a component value, for reason texts: it times N (1.0 = the
    rank of an average account)."""
    return float(value) * float(norm["n"])


def normalisation(result: pl.DataFrame, params: dict) -> dict[str, float]:
    """The population statistic the mapping uses: the number of accounts N."""
    return {"n": float(result.height)}


def relative(raw: np.ndarray, norm: dict, params: dict) -> np.ndarray:
    """raw * N: the rank relative to an average account, which alone decides the score."""
    return np.asarray(raw, dtype=np.float64) * float(norm["n"])


def to_score(raw: np.ndarray, norm: dict, params: dict) -> np.ndarray:
    """clamp(offset + slope * ln(raw * N), 1, 100); 1 when raw <= 0."""
    scale = params["scale"]
    rel = relative(raw, norm, params)
    with np.errstate(divide="ignore", invalid="ignore"):
        mapped = float(scale["offset"]) + float(scale["slope"]) * np.log(rel)
    return np.clip(np.nan_to_num(mapped, nan=1.0, neginf=1.0), 1.0, 100.0)


def engagers(account_id: str, interactions: pl.DataFrame, result: pl.DataFrame, params: dict) -> pl.DataFrame:
    """Per (engager, kind) acting on account_id, negative ratings as the kind "distrust": count,
    summed weight, and what it adds to raw (d * x_engager * w / W_engager, negative for distrust),
    with x the engager's PageRank (raw without the distrust it received) and W its total |weight|."""
    d = float(params["damping"])
    weight = pl.lit(0.0)
    for name in KINDS:
        value = float(params["kind_weights"].get(name, 0.0))
        weight = pl.when(pl.col("kind") == name).then(value).otherwise(weight)
    value = pl.when(pl.col("kind") == "rating").then(pl.col("weight")).otherwise(pl.col("weight").clip(lower_bound=0.0))
    edge = weight * value
    kind = pl.when((pl.col("kind") == "rating") & (pl.col("weight") < 0)).then(pl.lit("distrust")).otherwise(pl.col("kind"))
    received = (interactions.lazy()
                .filter((pl.col("target") == account_id) & (pl.col("source") != account_id))
                .with_columns(kind.alias("kind"), edge.alias("w"))
                .group_by("source", "kind")
                .agg(pl.len().cast(pl.Int64).alias("interactions"), pl.col("weight").sum().alias("weight"),
                     pl.col("w").sum())
                .collect())
    given = (interactions.lazy()
             .filter(pl.col("source").is_in(received["source"].unique().implode())
                     & (pl.col("source") != pl.col("target")))
             .select("source", edge.abs().alias("w"))
             .group_by("source").agg(pl.col("w").sum().alias("out")))
    rank = result.lazy().select(pl.col("account_id").alias("source"), (pl.col("raw") - pl.col("distrust")).alias("x"))
    return (received.lazy().join(given, on="source", how="left").join(rank, on="source", how="left")
            .select(pl.col("source").alias("engager"), "kind", "interactions", "weight",
                    pl.when(pl.col("out") > 0).then(d * pl.col("x") * pl.col("w") / pl.col("out"))
                    .otherwise(0.0).alias("contribution"))
            .sort(["contribution", "engager", "kind"], descending=[True, False, False], nulls_last=True)
            .collect())
