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
import scipy.sparse as sp

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
    src, tgt, kind, w = src[keep], tgt[keep], kind[keep], w[keep]
    d = float(params["damping"])
    out = np.bincount(src, weights=np.abs(w), minlength=n)
    inv = np.zeros(n)
    np.divide(1.0, out, out=inv, where=out > 0)
    positive = w > 0
    lost = np.bincount(src[~positive], weights=-w[~positive], minlength=n) * inv   # share of each account given as distrust
    dangling = np.flatnonzero(out == 0)
    # transposed adjacency of the positive edges: row A holds the weights into A (duplicates summed once)
    inbound = sp.csr_matrix((w[positive], (tgt[positive], src[positive])), shape=(n, n))
    x = np.full(n, 1.0 / n)
    tol, err = float(params["tol"]), math.inf
    for _ in range(int(params["max_iter"])):
        nxt = d * (inbound @ (x * inv))
        nxt += (d * (x[dangling].sum() + x @ lost) + (1.0 - d)) / n
        err = float(np.abs(nxt - x).sum())
        x = nxt
        if err < tol:
            break
    else:
        raise RuntimeError(f"network@3: PageRank did not converge in {params['max_iter']} iterations "
                           f"(L1 change {err:.3g}, tol {tol:g})")
    # one more application of the operator, split by where the mass comes from
    share = d * x * inv
    k = len(KINDS)
    flows = share[src] * w
    by_kind = np.bincount(tgt[positive].astype(np.int64) * k + kind[positive], weights=flows[positive],
                          minlength=n * k).reshape(n, k)
    columns = {"teleport": np.full(n, (1.0 - d) / n),
               "dangling": np.full(n, d * (x[dangling].sum() + x @ lost) / n)}
    for j, name in enumerate(KINDS):
        columns[f"inbound_{name}"] = by_kind[:, j]
    columns["distrust"] = np.bincount(tgt[~positive], weights=flows[~positive], minlength=n)
    raw = columns["teleport"].copy()
    for name in list(COMPONENTS)[1:]:
        raw += columns[name]
    result = pl.DataFrame({"account_id": ids, "raw": raw, "score": np.zeros(n), **columns})
    return result.with_columns(pl.Series("score", to_score(raw, normalisation(result, params), params)))


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
