"""network@2: engagement-weighted PageRank on the engager -> author graph.

Invariant: every account's components (teleport, dangling, inbound_<kind>) add up to its raw
score, and raw is one application of the PageRank operator to the converged iterate.

Self-contained source (stored and executed by the registry): imports only the standard
library, numpy, scipy and polars.

Graph. Every account id that appears as a source or target, plus every accounts.account_id,
is a node (N nodes). Each interaction "source acted on target" adds
`kind_weights[kind] * max(weight, 0)` to the edge source -> target. Constants (PARAMS):

- kind_weights: retweet 1.0 (amplifies the author to the engager's audience), reply 0.75
  (a conversation), mention 0.5 (a reference), like 0.25 and message 0.25 (cheap or
  private), follow 0.1 (a standing tie, not an engagement with content), rating 0.1 per
  point, so a +10 rating weighs as a retweet. Negative ratings weigh 0: a PageRank weight
  must be non-negative, and distrust is not an endorsement (activity@1 scores signed
  ratings). Any other negative weight is likewise clipped to 0, per interaction.
- Self-loops (an account mentioning or retweeting itself) are dropped: they are not an
  endorsement by anyone else.
- damping 0.85 (the classic PageRank value and networkx's default).
- tol 1e-13: iterate until the L1 change between iterates is below it (the total mass is
  1; all of Higgs takes 169 iterations, agreeing with networkx to ~4e-13). max_iter 500:
  not converging by then raises.
- Dangling accounts (no positive out-weight) spread their mass uniformly over all N
  accounts; teleport is uniform. This is networkx.pagerank with its defaults.

Components, with x the converged iterate, W_j = account j's total out-weight, d = damping:
teleport = (1-d)/N; dangling = d * sum(x over dangling accounts) / N; inbound_<kind> for A =
d * sum_j x_j * w_jA(kind) / W_j. raw = their sum (in COMPONENTS order), so raw sums to 1
over all accounts and raw * N = 1 for an average account.

Score: score = clamp(offset + slope * ln(raw * N), 1, 100) with offset 20, slope 10: a
fixed log scale like TweepCred's round(130 + 5.21 ln PR), but on raw * N so that it does
not drift with the size of the population; an average account (raw * N = 1) scores 20,
each doubling of rank adds 6.9 points, and 100 is reached at e^8 = 2981x the average. An
account nobody engages with gets raw * N = 0.15 + the dangling share (0.30 on Higgs: 7.8
points). On all of Higgs: min = median 7.8, p90 14.0, p99 38.5, p99.9 65.1, 6 accounts at
100. normalisation() is {"n": N}; to_score() is the mapping. The score is not rounded.

Reason fields: for inbound_<kind>, before/after are the component times N (1.0 = the rank
of an average account); engager_score is the engager's score in the run it is taken from.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import scipy.sparse as sp

NAME = "network"
VERSION = 2
DESCRIPTION = (
    "Engagement-weighted PageRank on the engager -> author graph: every retweet, reply, "
    "mention, like, message, follow or positive rating passes on a share of the engager's own "
    "score, so attention from influential accounts counts for more than attention from many "
    "unknown ones. The rank is mapped to 1-100 on a fixed log scale (an average account scores "
    "20, each doubling of rank adds about 7 points)."
)
CHANGELOG = ("Replaces activity@1's log counts of engagement received with PageRank: an "
             "engagement now counts in proportion to the engager's own score.")
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
    "dangling": "Share redistributed from accounts that engage with nobody",
    "inbound_retweet": "Retweets received, weighted by the retweeter's score",
    "inbound_reply": "Replies received, weighted by the replier's score",
    "inbound_mention": "Mentions received, weighted by the mentioner's score",
    "inbound_like": "Likes received, weighted by the liker's score",
    "inbound_message": "Messages received, weighted by the sender's score",
    "inbound_follow": "Follows received, weighted by the follower's score",
    "inbound_rating": "Positive ratings received, weighted by the rater's score",
}
_LABELS = {"retweet": "Retweets", "reply": "Replies", "mention": "Mentions", "like": "Likes",
           "message": "Messages", "follow": "Follows", "rating": "Positive ratings"}
# For explanations: teleport and dangling shares depend on everyone else; an inbound share
# splits per engager into the engager's own standing (everyone else) and its engagement with
# the account (the account's own activity).
COMPONENT_PARTS = {"teleport": "population", "dangling": "population",
                   **{f"inbound_{k}": f"engagers:{k}" for k in KINDS}}
REASONS = {
    **{f"INBOUND_{k.upper()}_{way.upper()}":
       f"{_LABELS[k]} received, weighted by who sent them, {way} from {{before:.2f}} to "
       f"{{after:.2f}} times an average account's rank: {{points:+.1f}} points"
       for k in KINDS for way in ("rose", "fell")},
    **{f"RECEIVED_{k.upper()}_{way.upper()}":
       f"{_LABELS[k]} received {way} from {{before:,.0f}} to {{after:,.0f}}: {{points:+.1f}} points"
       for k in KINDS for way in ("rose", "fell")},
    "ENGAGER_STARTED": "{engager} (score {engager_score:.0f}) started engaging: {points:+.1f} points",
    "ENGAGER_STOPPED": "{engager} (score {engager_score:.0f}) stopped engaging: {points:+.1f} points",
    "ENGAGER_ROSE": ("{engager} (score {engager_score:.0f}) passes on more: its own score rose or it engaged "
                     "fewer accounts: {points:+.1f} points"),
    "ENGAGER_FELL": ("{engager} (score {engager_score:.0f}) passes on less: its own score fell or it engaged "
                     "more accounts: {points:+.1f} points"),
    "POPULATION_ROSE": ("Other accounts gained rank or joined, so the same engagement is worth "
                        "fewer points: {points:+.1f} points"),
    "POPULATION_FELL": ("Other accounts lost rank or left, so the same engagement is worth "
                        "more points: {points:+.1f} points"),
    "BASE_SHARE_CHANGED": ("The base share every account gets changed from {before:.2f} to "
                           "{after:.2f} times an average account's rank: {points:+.1f} points"),
    "ALGORITHM_CHANGED": ("The algorithm now weights engagement by the engager's own score: "
                          "{points:+.1f} points"),
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


def _edge_weights(interactions: pl.DataFrame, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction: its kind's position in KINDS (len(KINDS) if unknown) and its PageRank weight."""
    table = params["kind_weights"]
    unknown = sorted(set(table) - set(KINDS))
    if unknown:
        raise ValueError(f"network@2: kind_weights has unknown kinds {unknown}; known: {list(KINDS)}")
    kind = (interactions["kind"].cast(pl.Enum(list(KINDS)), strict=False).to_physical()
            .fill_null(len(KINDS)).to_numpy().astype(np.int64))
    per_kind = np.array([float(table.get(k, 0.0)) for k in KINDS] + [0.0])
    return kind, per_kind[kind] * np.maximum(interactions["weight"].fill_null(0.0).to_numpy(), 0.0)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"account_id": pl.String, "raw": pl.Float64, "score": pl.Float64,
                                **{c: pl.Float64 for c in COMPONENTS}})


def score(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> pl.DataFrame:
    """One row per account: account_id, raw (PageRank), score, the components of raw."""
    ids, src, tgt, _ = _index(interactions, accounts)
    n = len(ids)
    if n == 0:
        return _empty()
    kind, w = _edge_weights(interactions, params)
    keep = (w > 0) & (src != tgt)
    src, tgt, kind, w = src[keep], tgt[keep], kind[keep], w[keep]
    d = float(params["damping"])
    out = np.bincount(src, weights=w, minlength=n)
    inv = np.zeros(n)
    np.divide(1.0, out, out=inv, where=out > 0)
    dangling = np.flatnonzero(out == 0)
    # transposed adjacency: row A holds the weights of the edges into A (duplicates summed once)
    inbound = sp.csr_matrix((w, (tgt, src)), shape=(n, n))
    x = np.full(n, 1.0 / n)
    tol, err = float(params["tol"]), math.inf
    for _ in range(int(params["max_iter"])):
        nxt = d * (inbound @ (x * inv))
        nxt += (d * x[dangling].sum() + (1.0 - d)) / n
        err = float(np.abs(nxt - x).sum())
        x = nxt
        if err < tol:
            break
    else:
        raise RuntimeError(f"network@2: PageRank did not converge in {params['max_iter']} iterations "
                           f"(L1 change {err:.3g}, tol {tol:g})")
    # one more application of the operator, split by where the mass comes from
    share = d * x * inv
    k = len(KINDS)
    by_kind = np.bincount(tgt.astype(np.int64) * k + kind, weights=share[src] * w,
                          minlength=n * k).reshape(n, k)
    columns = {"teleport": np.full(n, (1.0 - d) / n),
               "dangling": np.full(n, d * x[dangling].sum() / n)}
    for j, name in enumerate(KINDS):
        columns[f"inbound_{name}"] = by_kind[:, j]
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


def to_score(raw: np.ndarray, norm: dict, params: dict) -> np.ndarray:
    """clamp(offset + slope * ln(raw * N), 1, 100)."""
    scale = params["scale"]
    relative = np.asarray(raw, dtype=np.float64) * float(norm["n"])
    with np.errstate(divide="ignore"):
        mapped = float(scale["offset"]) + float(scale["slope"]) * np.log(relative)
    return np.clip(np.nan_to_num(mapped, nan=1.0, neginf=1.0), 1.0, 100.0)


def engagers(account_id: str, interactions: pl.DataFrame, result: pl.DataFrame, params: dict) -> pl.DataFrame:
    """Per (engager, kind) acting on account_id: count, summed weight, and what it adds to raw
    (damping * raw_engager * w / W_engager, W_engager the engager's total out-weight)."""
    d = float(params["damping"])
    weight = pl.lit(0.0)
    for name in KINDS:
        value = float(params["kind_weights"].get(name, 0.0))
        weight = pl.when(pl.col("kind") == name).then(value).otherwise(weight)
    edge = weight * pl.col("weight").clip(lower_bound=0.0)
    received = (interactions.lazy()
                .filter((pl.col("target") == account_id) & (pl.col("source") != account_id))
                .group_by("source", "kind")
                .agg(pl.len().cast(pl.Int64).alias("interactions"), pl.col("weight").sum().alias("weight"),
                     edge.sum().alias("w"))
                .collect())
    given = (interactions.lazy()
             .filter(pl.col("source").is_in(received["source"].unique().implode())
                     & (pl.col("source") != pl.col("target")))
             .select("source", edge.alias("w"))
             .group_by("source").agg(pl.col("w").sum().alias("out")))
    return (received.lazy().join(given, on="source", how="left")
            .join(result.lazy().select(pl.col("account_id").alias("source"), "raw"), on="source", how="left")
            .select(pl.col("source").alias("engager"), "kind", "interactions", "weight",
                    pl.when(pl.col("w") > 0).then(d * pl.col("raw") * pl.col("w") / pl.col("out"))
                    .otherwise(0.0).alias("contribution"))
            .sort(["contribution", "engager", "kind"], descending=[True, False, False], nulls_last=True)
            .collect())
