"""topics@1: network@3's engagement-weighted PageRank, restricted to each topic (topic-sensitive).

Invariant: every (account, topic) row's components (teleport, dangling, inbound_<kind>, distrust)
add up to its raw score, and raw is one application of the topic's PageRank operator to the
converged iterate of that topic, minus the distrust the account received in the topic.

Self-contained source (stored and executed by the registry): imports only the standard
library, numpy, scipy and polars.

Topics. An interaction's `topic` holds one or more topic names separated by `|`; an interaction
counts once in each of its topics (a name repeated within one row counts once) and in no topic
when it has none. The graph of topic T is network@3's graph built from T's interactions alone:
its nodes are the accounts that are source or target of an interaction of T (N_T of them), its
edges those interactions with network@3's signed weights (PARAMS are network@3's). So a topic's
raw values are network@3's on the topic's interactions, to within the rounding of the sums (a
test holds them within 1e-12, and networkx's PageRank within 1e-9).

Minimum activity (Kred's rule: only a community large enough gives a fair score): a topic is
scored only when it has at least `min_topic.interactions` interactions among at least
`min_topic.accounts` accounts; a smaller topic gets no row at all. Every account of a scored
topic gets a row.

All topics are computed at once, as one PageRank over the disjoint union of the topic graphs
(nodes are (topic, account) pairs): each topic keeps its own teleport (1-d)/N_T, its own
dangling and distrust mass spread over its own N_T accounts, and its own stopping rule (L1
change of the topic's iterate below tol); the iteration stops when every topic has converged.

Score of (A, T): clamp(offset + slope * ln(raw * N_T), 1, 100), and 1 when raw <= 0: network@3's
mapping within the topic (an average account of the topic scores 20). normalisation() of one
topic's rows is {"n": N_T}; a run stores it per topic.

Output: one row per (account, topic) of every scored topic, sorted by topic, then account_id,
with the columns account_id, topic, raw, score and the components (DIMENSION = "topic").
The explanation functions (engagers, measure, relative, to_score) take one topic's rows and
interactions, exactly as network@3's take a whole run's.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

NAME = "topics"
VERSION = 1
DIMENSION = "topic"
DESCRIPTION = (
    "Influence per topic: network@3's engagement-weighted PageRank computed on each topic's own "
    "interactions, so an account scores high in a topic when accounts influential in that topic "
    "engage with it there. Topics with fewer than 20 interactions or 10 accounts get no score. "
    "Mapped to 1-100 within each topic on network@3's log scale (an average account of the topic "
    "scores 20)."
)
CHANGELOG = "First topic version: network@3 restricted to each topic, with a minimum activity per topic."
PARAMS = {
    "kind_weights": {"retweet": 1.0, "reply": 0.75, "mention": 0.5, "like": 0.25,
                     "message": 0.25, "follow": 0.1, "rating": 0.1},
    "damping": 0.85,
    "tol": 1e-13,
    "max_iter": 500,
    "scale": {"offset": 20.0, "slope": 10.0},
    "min_topic": {"interactions": 20, "accounts": 10},
}
KINDS = ("retweet", "reply", "mention", "like", "message", "follow", "rating")
COMPONENTS = {
    "teleport": "Base share every account of the topic gets",
    "dangling": "Share spread from the topic's accounts that engage with nobody in it and from distrust",
    "inbound_retweet": "Retweets received in the topic, weighted by the retweeter's topic score",
    "inbound_reply": "Replies received in the topic, weighted by the replier's topic score",
    "inbound_mention": "Mentions received in the topic, weighted by the mentioner's topic score",
    "inbound_like": "Likes received in the topic, weighted by the liker's topic score",
    "inbound_message": "Messages received in the topic, weighted by the sender's topic score",
    "inbound_follow": "Follows received in the topic, weighted by the follower's topic score",
    "inbound_rating": "Positive ratings received in the topic, weighted by the rater's topic score",
    "distrust": "Negative ratings received in the topic, weighted by the rater's topic score",
}
COMPONENT_PARTS = {"teleport": "population", "dangling": "population",
                   **{f"inbound_{k}": f"engagers:{k}" for k in KINDS}, "distrust": "engagers:distrust"}
NORM_LABELS = {"n": "The number of accounts in the topic"}
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
        raise ValueError(f"topics@1: kind_weights has unknown kinds {unknown}; known: {list(KINDS)}")
    kind = (interactions["kind"].cast(pl.Enum(list(KINDS)), strict=False).to_physical()
            .fill_null(len(KINDS)).to_numpy().astype(np.int64))
    per_kind = np.array([float(table.get(k, 0.0)) for k in KINDS] + [0.0])
    value = interactions["weight"].fill_null(0.0).to_numpy()
    signed = np.where(kind == KINDS.index("rating"), value, np.maximum(value, 0.0))
    return kind, per_kind[kind] * signed



def topics_of(interactions: pl.DataFrame) -> pl.DataFrame:
    """One row per (interaction, topic): the interactions exploded by their `|`-separated topics
    (each name once per interaction), in the order given; interactions without a topic are left out."""
    if "topic" not in interactions.columns or not interactions.height:
        return interactions.head(0).with_columns(pl.lit(None, pl.String).alias("topic"))
    return (interactions.filter(pl.col("topic").is_not_null())
            .with_columns(pl.col("topic").str.split("|").list.unique(maintain_order=True))
            .explode("topic").filter(pl.col("topic").str.len_bytes() > 0))


def scored_topics(exploded: pl.DataFrame, params: dict) -> pl.DataFrame:
    """topic, interactions, accounts of every topic, and whether it meets the minimum activity."""
    rule = params["min_topic"]
    ends = pl.concat([exploded.select("topic", pl.col("source").alias("a")),
                      exploded.select("topic", pl.col("target").alias("a"))])
    accounts = ends.group_by("topic").agg(pl.col("a").n_unique().alias("accounts"))
    counts = exploded.group_by("topic").agg(pl.len().alias("interactions"))
    return (counts.join(accounts, on="topic").with_columns(
        ((pl.col("interactions") >= int(rule["interactions"])) & (pl.col("accounts") >= int(rule["accounts"])))
        .alias("scored")).sort("topic").select("topic", pl.col("interactions").cast(pl.Int64),
                                               pl.col("accounts").cast(pl.Int64), "scored"))


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"account_id": pl.String, "topic": pl.String, "raw": pl.Float64,
                                "score": pl.Float64, **{c: pl.Float64 for c in COMPONENTS}})


def score(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> pl.DataFrame:
    """One row per (account, topic) of every topic meeting the minimum activity, sorted by topic
    then account: account_id, topic, raw (the topic's PageRank minus distrust), score, components."""
    exploded = topics_of(interactions)
    kept = scored_topics(exploded, params).filter("scored")["topic"]
    exploded = exploded.filter(pl.col("topic").is_in(kept.implode()))
    if not exploded.height:
        return _empty()
    names = kept.sort()
    ids, src_a, tgt_a, _ = _index(exploded, accounts.head(0))
    n_acc = len(ids)
    topic = exploded["topic"].cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
    # nodes are the distinct (topic, account) keys, numbered in key order (by topic, then account):
    # one dense rank of the keys of both ends: each end's node number is its key's place among the distinct keys
    keys = np.concatenate([topic * n_acc + src_a, topic * n_acc + tgt_a])
    number = pl.Series(keys).rank("dense").to_numpy().astype(np.int64) - 1   # position among the distinct keys
    nodes = np.empty(int(number.max()) + 1 if len(number) else 0, dtype=np.int64)
    nodes[number] = keys
    m = len(nodes)
    src, tgt = number[:len(exploded)], number[len(exploded):]
    node_topic = nodes // n_acc                                     # sorted: each topic's nodes are one run
    counts = np.bincount(node_topic, minlength=len(names))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    size_t = counts.astype(np.float64)                              # N_T
    n_node = np.repeat(size_t, counts)
    kind, w = _signed_weights(exploded, params)
    keep = (w != 0) & (src != tgt)
    src, tgt, kind, w = src[keep], tgt[keep], kind[keep], w[keep]
    d, tol, max_iter = float(params["damping"]), float(params["tol"]), int(params["max_iter"])
    size = np.abs(w)
    negative, positive = w < 0, w > 0
    out = np.bincount(src, weights=size, minlength=m)                # W_j within j's topic
    lost = np.bincount(src[negative], weights=size[negative], minlength=m)
    inv = np.zeros(m)
    np.divide(1.0, out, out=inv, where=out > 0)
    leak = np.where(out > 0, lost * inv, 1.0)                      # share of j's mass spread evenly
    # transposed adjacency of the positive edges: row A holds the weights into A (pairs summed once)
    into = sp.csr_matrix((w[positive], (tgt[positive], src[positive])), shape=(m, m))
    x = 1.0 / n_node
    k_topics = len(names)
    err = np.full(k_topics, np.inf)
    scratch = np.empty(m)                                          # one buffer for the per-node temporaries
    for _ in range(max_iter):
        leaked = np.add.reduceat(np.multiply(x, leak, out=scratch), starts)
        nxt = into @ np.multiply(x, inv, out=scratch)
        nxt *= d
        nxt += np.repeat((d * leaked + (1.0 - d)) / size_t, counts)
        err = np.add.reduceat(np.abs(np.subtract(nxt, x, out=scratch), out=scratch), starts)
        x = nxt
        if err.max() < tol:
            break
    else:
        worst = int(np.argmax(err))
        raise RuntimeError(f"topics@1: PageRank of topic {names[worst]!r} did not converge in {max_iter} "
                           f"iterations (L1 change {err[worst]:.3g}, tol {tol:g})")
    # one more application of each topic's operator, split by where the mass comes from
    flow = ((d * x) * inv)[src] * size
    k = len(KINDS)
    by_kind = np.bincount(tgt[positive] * k + kind[positive], weights=flow[positive],
                          minlength=m * k).reshape(m, k)
    leaked = np.add.reduceat(x * leak, starts)
    columns = {"teleport": (1.0 - d) / n_node, "dangling": np.repeat(d * leaked / size_t, counts)}
    for j, name in enumerate(KINDS):
        columns[f"inbound_{name}"] = by_kind[:, j]
    columns["distrust"] = 0.0 - np.bincount(tgt[negative], weights=flow[negative], minlength=m)
    raw = columns["teleport"].copy()
    for name in list(COMPONENTS)[1:]:
        raw += columns[name]
    result = pl.DataFrame({"account_id": ids.gather(nodes % n_acc), "topic": names.gather(node_topic),
                           "raw": raw, "score": to_score(raw, {"n": n_node}, params), **columns})
    return result


def measure(component: str, value: float, norm: dict, params: dict) -> float:
    """The plain quantity behind a component value, for reason texts: it times N_T (1.0 = the
    rank of an average account of the topic)."""
    return float(value) * float(norm["n"])


def normalisation(result: pl.DataFrame, params: dict) -> dict[str, float]:
    """The population statistic of one topic's rows: the number of accounts N_T in the topic."""
    return {"n": float(result.height)}


def relative(raw: np.ndarray, norm: dict, params: dict) -> np.ndarray:
    """raw * N_T: the rank relative to an average account of the topic, which alone decides the score."""
    return np.asarray(raw, dtype=np.float64) * np.asarray(norm["n"], dtype=np.float64)


def to_score(raw: np.ndarray, norm: dict, params: dict) -> np.ndarray:
    """clamp(offset + slope * ln(raw * N_T), 1, 100); 1 when raw <= 0 (N_T may be one per row)."""
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
