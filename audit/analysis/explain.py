"""Explain one account's score change between two runs, in parts that add up exactly, with
reasons that say only what their own numbers show.

Method (README, "Explaining a change"):
- total = candidate score - baseline score (stored scores).
- When snapshot and algorithm both differ, a two-factor Shapley value over the four runs
  S(algorithm, data): data = 1/2[(S(a1,d2) - S(a1,d1)) + (S(a2,d2) - S(a2,d1))], and the
  algorithm part is the rest.
- The algorithm part on one snapshot, S(a2,d) - S(a1,d), splits into the new scale and the new
  ranking: with r the account's rank under a1 and Q2(r) the score a2 gives rank r on the same
  snapshot (the same accounts), scale = Q2(r) - S(a1,d) and ranking = S(a2,d) - Q2(r). Q2 falls
  as the rank number grows, so the ranking part is >= 0 exactly when the account ranks higher.
- A data change under one algorithm splits into the account's own activity and everyone else.
  The score is a function of raw and of a population statistic (to_score(raw, norm)). A version
  that declares relative(raw, norm) (a quantity linear in raw that alone decides the score, e.g.
  raw * N for a PageRank) is split in those units and has no separate population-statistic
  effect; otherwise a two-factor Shapley value over (raw, norm) gives the raw effect and the
  population-statistic effect. The raw effect is shared over the parts of raw in proportion to
  their change (exact for a linear mapping, the log-mean Divisia split for a logarithmic one).
  A part of raw is own activity unless the version declares it population (COMPONENT_PARTS);
  a per-engager part ("engagers:<kind>") splits each engager's contribution c = q * w (q its
  standing, w its engagement with the account) by Shapley into own (w changed) and everyone
  else (q changed); an engager who started or stopped is own activity.
- Reasons are drawn from these items: their direction words come from the sign of the change of
  the very quantity they name, their points from the same item, and an item whose points go
  against its quantity names why ("but from less influential accounts", "stays at the cap").

Pure functions over frames: no store access here.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ..errors import AuditError

MAX_REASONS = 4
SHOWN = 0.05          # the one threshold: a reason worth less would read "+0.0 points"; it is left out
FLOOR, CAP = 1.0, 100.0
PARTS = ("own_activity", "population", "algorithm")

# What a kind of engagement received is called: counted, and (for ratings) as rating points.
KIND_LABELS = {"retweet": "Retweets received", "reply": "Replies received", "mention": "Mentions received",
               "like": "Likes received", "message": "Messages received", "follow": "Follows received",
               "rating": "Positive ratings received", "distrust": "Negative ratings received"}
POINT_LABELS = {"rating": "Trust received in ratings", "distrust": "Distrust received in ratings"}
KIND_STEMS = {"rating": "TRUST_RATINGS", "distrust": "DISTRUST_RATINGS"}
NORM_LABELS = {"ref": "The raw score that scores 100 (the most active 1% of accounts)",
               "n": "The number of accounts in the snapshot"}

# Reason templates for codes a version's own list does not define. Every reason template may
# use these fields: points, before, after, before_text, after_text, detail, label, engager,
# engager_score, engager_score_before, engager_score_after, given_before, given_after,
# old_algorithm, new_algorithm, old_score_text, new_score_text, rank_text.
WAYS = {
    "ROSE": "{label} rose from {before_text} to {after_text}{detail}: {points:+.1f} points",
    "FELL": "{label} fell from {before_text} to {after_text}{detail}: {points:+.1f} points",
    "ROSE_LESS": ("{label} rose from {before_text} to {after_text}{detail}, but from less influential accounts "
                  "than before: {points:+.1f} points"),
    "FELL_MORE": ("{label} fell from {before_text} to {after_text}{detail}, but from more influential accounts "
                  "than before: {points:+.1f} points"),
    "SAME_MORE": "{label} stayed at {before_text}{detail}, now from more influential accounts: {points:+.1f} points",
    "SAME_LESS": "{label} stayed at {before_text}{detail}, now from less influential accounts: {points:+.1f} points",
    "ROSE_AT_CAP": ("{label} rose from {before_text} to {after_text}{detail}, but the score stays at the cap "
                    "of 100: {points:+.1f} points"),
    "FELL_AT_CAP": ("{label} fell from {before_text} to {after_text}{detail}, but the score stays at the cap "
                    "of 100: {points:+.1f} points"),
    "ROSE_AT_FLOOR": ("{label} rose from {before_text} to {after_text}{detail}, but the score stays at the "
                      "floor of 1: {points:+.1f} points"),
    "FELL_AT_FLOOR": ("{label} fell from {before_text} to {after_text}{detail}, but the score stays at the "
                      "floor of 1: {points:+.1f} points"),
    "ROSE_UNSCORED": "{label} rose from {before_text} to {after_text}{detail}",
    "FELL_UNSCORED": "{label} fell from {before_text} to {after_text}{detail}",
}
STANDARD_REASONS = {
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
    "BASE_SHARE_ROSE": "{label} rose from {before_text} to {after_text}: {points:+.1f} points",
    "BASE_SHARE_FELL": "{label} fell from {before_text} to {after_text}: {points:+.1f} points",
    "POPULATION_STAT_MORE": ("{label} went from {before_text} to {after_text}, which makes the same raw score "
                             "worth more points: {points:+.1f} points"),
    "POPULATION_STAT_FEWER": ("{label} went from {before_text} to {after_text}, which makes the same raw score "
                              "worth fewer points: {points:+.1f} points"),
    "POPULATION_OTHER": "Other accounts' engagement not attributed to one engager: {points:+.1f} points",
    "DATA_UNSPLIT": "The data changed (this version cannot split own activity from everyone else): {points:+.1f} points",
    "ALGORITHM_SCALE": ("{new_algorithm} gives the account's rank ({rank_text}) {new_score_text} points where "
                        "{old_algorithm} gave {old_score_text}{detail}: {points:+.1f} points"),
    "ALGORITHM_RANK_HIGHER": ("The account ranks higher under {new_algorithm} than under {old_algorithm} "
                              "({rank_text}): {points:+.1f} points"),
    "ALGORITHM_RANK_LOWER": ("The account ranks lower under {new_algorithm} than under {old_algorithm} "
                             "({rank_text}): {points:+.1f} points"),
    "ALGORITHM_RANK_MIXED": ("The account's rank under {new_algorithm} differs from its rank under "
                             "{old_algorithm} ({rank_text}): {points:+.1f} points"),
    "ALGORITHM_CHANGED": "The algorithm changed: {points:+.1f} points",
}
FIELDS = ("points", "before", "after", "before_text", "after_text", "detail", "label", "engager", "engager_score",
          "engager_score_before", "engager_score_after", "given_before", "given_after", "old_algorithm",
          "new_algorithm", "old_score_text", "new_score_text", "rank_text")


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class RunPoint:
    """One side of the change: a run, its snapshot's window, and the account's place in it (score,
    raw and rank are None when the account has no score in that run)."""
    run_id: str
    snapshot_id: str
    snapshot_label: str | None
    algorithm: str
    as_of: str                      # ISO 8601, UTC
    window_seconds: int | None      # None: everything before as_of
    accounts: int                   # accounts scored in the run
    score: float | None
    raw: float | None
    rank: int | None
    tied: int                       # other accounts of the run with exactly this score


@dataclass(frozen=True)
class ComponentChange:
    """How one component of one version moved the score: its value before and after (in `unit`)
    and the points it gave to own activity and to everyone else (a Shapley half is already weighed)."""
    algorithm: str
    component: str
    label: str
    unit: str
    before: float
    after: float
    own_activity: float
    population: float


@dataclass(frozen=True)
class Item:
    """One attributed fact: a code, the part it belongs to, its points (None where there is no
    score to move), and the fields its reason text is made from."""
    part: str
    algorithm: str
    code: str
    points: float | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class Reason:
    """One ranked reason: a code from the version's list, its text and its points."""
    code: str
    text: str
    points: float | None
    part: str


@dataclass(frozen=True)
class Explanation:
    """A change explained. status: changed, joined (no score before), left (no score after) or
    same (one run on both sides). When changed, the parts add up to the total."""
    account_id: str
    status: str
    baseline: RunPoint
    candidate: RunPoint
    total: float | None
    parts: dict[str, float]
    components: tuple[ComponentChange, ...]
    items: tuple[Item, ...]
    engagers: pl.DataFrame
    engagers_total: int
    reasons: tuple[Reason, ...]
    notes: tuple[str, ...]
    counterfactual_runs: tuple[str, ...]
    method: str
    handle: str | None = None           # the account's handle, where an accounts file gave one


# ---------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Version:
    """An algorithm version as the explanation needs it."""
    label: str
    module: types.ModuleType
    params: dict
    components: tuple[tuple[str, str], ...]
    reasons: dict[str, str]


@dataclass(frozen=True)
class Side:
    """One run of a data split: scores of the account and its engagers, the account's
    components, the interactions into it and of its engagers, and the run's population statistic."""
    scores: pl.DataFrame            # account_id, raw, score, components (the account and its engagers)
    components: dict[str, float]
    inputs: pl.DataFrame            # source, target, kind, ts, weight
    norm: dict | None
    # engager, given: interactions each engager gave to other accounts, when `inputs` holds the
    # engagers' other interactions added up by kind and sign (stored features) instead of one by one
    given: pl.DataFrame | None = None


@dataclass(frozen=True)
class Ranks:
    """The algorithm part on one snapshot: the account's rank under the old version, the score
    the new version gives that rank, and both scores and ranks (same accounts on both sides)."""
    accounts: int
    old_rank: int
    new_rank: int
    old_score: float
    new_score: float
    new_score_at_old_rank: float


@dataclass(frozen=True)
class DataSplit:
    """A data change under one version: its items, components and engager rows (unweighted)."""
    own: float
    population: float
    items: list[Item]
    components: list[ComponentChange]
    engagers: pl.DataFrame


# ---------------------------------------------------------------- formatting facts

def _whole(v: float) -> bool:
    """A whole number, allowing for the rounding of a count recovered from a logarithm."""
    return v == 0 or (abs(v) >= 0.5 and abs(v - round(v)) <= 1e-9 * abs(v))


def number_pair(a: float, b: float, *, signed: bool = False) -> tuple[str, str]:
    """Two numbers as text with just enough decimals that different numbers read differently:
    whole numbers as such (counts recovered from logarithms, like 35.99999999, included), small ones
    with two significant digits at least."""
    sign = "+" if signed else ""
    if _whole(a) and _whole(b):
        return f"{round(a):{sign},}", f"{round(b):{sign},}"
    small = min((abs(v) for v in (a, b) if v != 0), default=1.0)
    places = max(2, 1 - math.floor(math.log10(small)))
    for p in range(places, places + 10):
        ta, tb = f"{a:{sign},.{p}f}", f"{b:{sign},.{p}f}"
        if ta != tb or a == b:
            return ta, tb
    return f"{a:{sign}.17g}", f"{b:{sign}.17g}"


def _score_text(v: float | None) -> str:
    return "no score" if v is None else f"{v:.1f}"


def _render(code: str, fields: dict[str, Any], versions: list[dict[str, str]]) -> str:
    """The text of a reason: the first version list that has the code, else the standard list."""
    filled = {f: fields.get(f, "") for f in FIELDS}
    filled["points"] = fields.get("points") or 0.0
    for f in ("before", "after", "engager_score"):
        filled[f] = fields.get(f) if isinstance(fields.get(f), (int, float)) else 0.0
    way = next((w for w in sorted(WAYS, key=len, reverse=True) if code.endswith("_" + w)), None)
    candidates = [v[code] for v in versions if code in v] + [STANDARD_REASONS.get(code) or WAYS.get(way or "", "")]
    for template in candidates:
        try:
            return template.format(**filled)
        except (KeyError, ValueError, IndexError):
            continue
    return f"{code}: {filled['points']:+.1f} points"


# ---------------------------------------------------------------- engagers

def _effective_kind() -> pl.Expr:
    return (pl.when((pl.col("kind") == "rating") & (pl.col("weight") < 0)).then(pl.lit("distrust"))
            .otherwise(pl.col("kind")))


def _engagement(inputs: pl.DataFrame, account: str) -> pl.DataFrame:
    """Per (engager, kind) into the account: interactions, and the engagement measure w: the
    count, or for ratings the rating points added up (|points| for distrust)."""
    return (inputs.filter((pl.col("target") == account) & (pl.col("source") != account))
            .with_columns(_effective_kind().alias("kind"))
            .group_by(pl.col("source").alias("engager"), "kind")
            .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("weight").sum().alias("value"),
                 pl.when(pl.col("kind").is_in(["rating", "distrust"])).then(pl.col("weight").abs())
                 .otherwise(1.0).sum().alias("w")))


def _given(inputs: pl.DataFrame, engagers: list[str]) -> pl.DataFrame:
    """Interactions each engager gave in the window (to anyone but itself)."""
    return (inputs.filter(pl.col("source").is_in(engagers) & (pl.col("source") != pl.col("target")))
            .group_by(pl.col("source").alias("engager")).agg(pl.len().cast(pl.Int64).alias("given")))


ENGAGER_SCHEMA = {"engager": pl.String, "kind": pl.String, "n1": pl.Int64, "n2": pl.Int64,
                  "value1": pl.Float64, "value2": pl.Float64, "w1": pl.Float64, "w2": pl.Float64,
                  "c1": pl.Float64, "c2": pl.Float64, "own": pl.Float64, "pop": pl.Float64,
                  "given1": pl.Int64, "given2": pl.Int64, "score1": pl.Float64, "score2": pl.Float64}


def _engager_table(version: Version, account: str, b: Side, c: Side, scale1: float, scale2: float) -> pl.DataFrame:
    """Per (engager, kind): counts, engagement and contributions (in split units) on both sides,
    and the Shapley split of the contribution change into own (w) and population (q)."""
    keys = ["engager", "kind"]
    base = (_engagement(b.inputs, account).rename({"n": "n1", "value": "value1", "w": "w1"})
            .join(_engagement(c.inputs, account).rename({"n": "n2", "value": "value2", "w": "w2"}),
                  on=keys, how="full", coalesce=True)
            .with_columns(pl.col("n1", "n2").fill_null(0), pl.col("value1", "value2", "w1", "w2").fill_null(0.0)))
    contributions = None
    if hasattr(version.module, "engagers"):
        parts = []
        for side, scale, col in ((b, scale1, "c1"), (c, scale2, "c2")):
            e = version.module.engagers(account, side.inputs, side.scores, version.params)
            if e.height and e["contribution"].null_count() == e.height:
                break                                   # the version has no per-engager split
            e = e.with_columns(pl.when((pl.col("kind") == "rating") & (pl.col("weight") < 0)
                                       & (pl.col("contribution") == 0)).then(pl.lit("distrust"))
                               .otherwise(pl.col("kind")).alias("kind"))
            # A version's engagers() may sum floats in a parallel group-by, whose last bits vary
            # between calls; 12 significant digits keep every explanation the same bytes.
            parts.append(e.group_by("engager", "kind").agg(
                (pl.col("contribution").sum() * scale).round_sig_figs(12).alias(col)))
        else:
            contributions = parts
    if contributions is None:
        out = base.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("c1", "c2", "own", "pop"))
    else:
        out = (base.join(contributions[0], on=keys, how="left").join(contributions[1], on=keys, how="left")
               .with_columns(pl.col("c1", "c2").fill_null(0.0)))
        q1 = pl.when(pl.col("w1") > 0).then(pl.col("c1") / pl.col("w1"))
        q2 = pl.when(pl.col("w2") > 0).then(pl.col("c2") / pl.col("w2"))
        out = out.with_columns(q1.alias("q1"), q2.alias("q2")).with_columns(
            pl.col("q1").fill_null(pl.col("q2")).fill_null(0.0), pl.col("q2").fill_null(pl.col("q1")).fill_null(0.0))
        out = out.with_columns((0.5 * (pl.col("q1") + pl.col("q2")) * (pl.col("w2") - pl.col("w1"))).alias("own"))
        out = out.with_columns((pl.col("c2") - pl.col("c1") - pl.col("own")).alias("pop")).drop("q1", "q2")
    ids = out["engager"].unique().to_list()
    for side, suffix in ((b, "1"), (c, "2")):
        given = _given(side.inputs, ids) if side.given is None else side.given.select("engager", "given")
        out = out.join(given.rename({"given": f"given{suffix}"}), on="engager", how="left")
        out = out.join(side.scores.select(pl.col("account_id").alias("engager"), pl.col("score").alias(f"score{suffix}")),
                       on="engager", how="left")
    # a total order, so that every sum over these rows adds in the same order every time
    return (out.with_columns(pl.col("given1", "given2").fill_null(0)).select(list(ENGAGER_SCHEMA))
            .cast(ENGAGER_SCHEMA).sort("engager", "kind"))


# ---------------------------------------------------------------- the data split

def _row(scores: pl.DataFrame, account: str) -> tuple[float, float]:
    hit = scores.filter(pl.col("account_id") == account)
    return float(hit["raw"][0]), float(hit["score"][0])


def _to_score(version: Version, raw: float, norm: dict) -> float:
    return float(np.asarray(version.module.to_score(np.array([raw]), norm, version.params))[0])


def _relative(version: Version, value: float, norm: dict) -> float:
    return float(np.asarray(version.module.relative(np.array([value]), norm, version.params))[0])


def _measure(version: Version, component: str, value: float, norm: dict) -> float:
    fn = getattr(version.module, "measure", None)
    return float(fn(component, value, norm, version.params)) if fn else float(value)


def _clamped(s1: float, s2: float) -> str | None:
    if s1 == s2 == CAP:
        return "AT_CAP"
    if s1 == s2 == FLOOR:
        return "AT_FLOOR"
    return None


def _way(delta: float, points: float, sign: float, clamp: str | None) -> str:
    """The pattern of an own-activity item: its quantity's direction, and why its points go the
    other way when they do (sign: +1 when more of the quantity raises the score, -1 for distrust)."""
    if delta != 0 and points == 0 and clamp:
        return ("ROSE_" if delta > 0 else "FELL_") + clamp
    if delta > 0:
        return "ROSE" if points * sign >= 0 else "ROSE_LESS"
    if delta < 0:
        return "FELL" if points * sign <= 0 else "FELL_MORE"
    return "SAME_MORE" if points * sign > 0 else "SAME_LESS"


def split_data(version: Version, account: str, b: Side, c: Side) -> DataSplit:
    """Split S(a, d2) - S(a, d1) for one account into own activity and everyone else."""
    label = version.label
    r1, s1 = _row(b.scores, account)
    r2, s2 = _row(c.scores, account)
    total = s2 - s1
    module = version.module
    if not hasattr(module, "to_score") or b.norm is None or c.norm is None:
        items = [Item("population", label, "DATA_UNSPLIT", total, {"points": total})] if total != 0.0 else []
        return DataSplit(0.0, total, items, [], pl.DataFrame(schema=ENGAGER_SCHEMA))
    n1, n2 = b.norm, c.norm
    if hasattr(module, "relative"):
        scale1, scale2 = _relative(version, 1.0, n1), _relative(version, 1.0, n2)
        u1, u2 = r1 * scale1, r2 * scale2
        raw_effect, norm_effect, unit = total, 0.0, "times an average account's rank"
    else:
        scale1 = scale2 = 1.0
        u1, u2 = r1, r2
        m = lambda r, n: _to_score(version, r, n)  # noqa: E731
        raw_effect = 0.5 * ((m(r2, n1) - m(r1, n1)) + (m(r2, n2) - m(r1, n2)))
        norm_effect, unit = total - raw_effect, "raw"
    factor = raw_effect / (u2 - u1) if u2 != u1 else 0.0
    clamp = _clamped(s1, s2)
    declared = dict(getattr(module, "COMPONENT_PARTS", {}))
    engagers = _engager_table(version, account, b, c, scale1, scale2)
    split = engagers.height > 0 and engagers["own"].null_count() < engagers.height
    items: list[Item] = []
    components: list[ComponentChange] = []
    own_units = 0.0
    for name, text in version.components:
        v1, v2 = b.components[name] * scale1, c.components[name] * scale2
        delta = v2 - v1
        role = declared.get(name, "own")
        if role.startswith("engagers:") and split:
            kind = role.split(":", 1)[1]
            rows = engagers.filter(pl.col("kind") == kind)
            own = float(rows["own"].sum()) if rows.height else 0.0
            own_units += own
            sign = -1.0 if kind == "distrust" else 1.0
            q1, q2 = float(rows["w1"].sum()), float(rows["w2"].sum())
            k1, k2 = int(rows["n1"].sum()), int(rows["n2"].sum())
            if own != 0.0 or (q1 != q2 and clamp):
                ratings = kind in ("rating", "distrust")
                before_text, after_text = number_pair(q1, q2)
                code = f"{KIND_STEMS.get(kind, 'RECEIVED_' + kind.upper())}_{_way(q2 - q1, factor * own, sign, clamp)}"
                items.append(Item("own_activity", label, code, factor * own, {
                    "label": POINT_LABELS.get(kind) or KIND_LABELS.get(kind, f"{kind} received"), "before": q1, "after": q2,
                    "before_text": before_text, "after_text": after_text,
                    "detail": (f" rating point{'' if q2 == 1 else 's'} ({k1:,} -> {k2:,} rating{'' if k2 == 1 else 's'})"
                               if ratings else "")}))
            for r in rows.filter(pl.col("pop") != 0).iter_rows(named=True):
                code = ("DISTRUSTER_" if kind == "distrust" else "ENGAGER_") + (
                    "MORE" if (r["pop"] > 0) == (kind != "distrust") else "LESS")
                items.append(Item("population", label, code, factor * r["pop"], {
                    "engager": r["engager"], "engager_score": r["score2"] if r["score2"] is not None else 0.0,
                    "engager_score_before": _score_text(r["score1"]), "engager_score_after": _score_text(r["score2"]),
                    "given_before": f"{r['given1']:,}", "given_after": f"{r['given2']:,}", "kind": kind}))
            rest = delta - float(rows["c2"].sum() - rows["c1"].sum()) if rows.height else delta
            if abs(rest) > 1e-12 * max(1.0, abs(v1), abs(v2)):
                items.append(Item("population", label, "POPULATION_OTHER", factor * rest, {}))
            components.append(ComponentChange(label, name, text, unit, v1, v2, factor * own, factor * (delta - own)))
            continue
        if role == "population" or role.startswith("engagers:"):
            if delta != 0.0:
                before_text, after_text = number_pair(v1, v2)
                code = ("BASE_SHARE_" if name in ("teleport", "dangling") else f"{name.upper()}_") + (
                    "ROSE" if delta > 0 else "FELL")
                items.append(Item("population", label, code, factor * delta, {
                    "label": f"{text} ({'in raw units' if unit == 'raw' else unit})", "before": v1, "after": v2, "before_text": before_text, "after_text": after_text, "detail": ""}))
            components.append(ComponentChange(label, name, text, unit, v1, v2, 0.0, factor * delta))
            continue
        own_units += delta
        m1, m2 = _measure(version, name, b.components[name], n1), _measure(version, name, c.components[name], n2)
        if delta != 0.0:
            before_text, after_text = number_pair(m1, m2, signed=m1 < 0 or m2 < 0)
            code = f"{name.upper()}_{_way(m2 - m1, factor * delta, 1.0, clamp)}"
            items.append(Item("own_activity", label, code, factor * delta, {
                "label": text, "before": m1, "after": m2, "before_text": before_text, "after_text": after_text,
                "detail": ""}))
        components.append(ComponentChange(label, name, text, "count" if hasattr(module, "measure") else unit,
                                          m1, m2, factor * delta, 0.0))
    if norm_effect != 0.0:
        key = next(iter(n1), "")
        before_text, after_text = number_pair(float(n1.get(key, 0.0)), float(n2.get(key, 0.0)))
        labels = {**NORM_LABELS, **dict(getattr(module, "NORM_LABELS", {}))}
        items.append(Item("population", label, "POPULATION_STAT_" + ("MORE" if norm_effect > 0 else "FEWER"),
                          norm_effect, {"label": labels.get(key, f"The population statistic {key}"),
                                        "before": float(n1.get(key, 0.0)), "after": float(n2.get(key, 0.0)),
                                        "before_text": before_text, "after_text": after_text, "detail": ""}))
    own = factor * own_units
    if split:
        engagers = engagers.with_columns((factor * pl.col("own")).alias("own"), (factor * pl.col("pop")).alias("pop"))
    return DataSplit(own, total - own, items, components, engagers)


# ---------------------------------------------------------------- the algorithm split

def split_algorithm(old: str, new: str, ranks: list[tuple[float, Ranks]]) -> list[Item]:
    """The algorithm part (weighted brackets S(a2,d) - S(a1,d)) as the new scale and the new rank."""
    scale = sum(w * (r.new_score_at_old_rank - r.old_score) for w, r in ranks)
    ranking = sum(w * (r.new_score - r.new_score_at_old_rank) for w, r in ranks)
    weight = sum(w for w, _ in ranks)
    mean = lambda f: sum(w * f(r) for w, r in ranks) / weight  # noqa: E731
    old_text, new_text = f"{mean(lambda r: r.old_score):.1f}", f"{mean(lambda r: r.new_score_at_old_rank):.1f}"
    sides = [""] if len(ranks) == 1 else [" on the old snapshot", " on the new snapshot"]
    rank_of = ", ".join(f"{r.old_rank:,} of {r.accounts:,}{side}" for (_, r), side in zip(ranks, sides))
    moves = ", ".join((f"{r.new_rank:,} instead of {r.old_rank:,}" if r.new_rank != r.old_rank else
                       f"{r.new_rank:,} as before") + f" of {r.accounts:,}{side}" for (_, r), side in zip(ranks, sides))
    base = {"old_algorithm": old, "new_algorithm": new}
    items = []
    if scale != 0.0:
        items.append(Item("algorithm", new, "ALGORITHM_SCALE", scale, base | {
            "rank_text": rank_of, "old_score_text": old_text, "new_score_text": new_text,
            "detail": " (averages over the two snapshots)" if len(ranks) > 1 else ""}))
    if ranking != 0.0:
        ups = {r.new_rank < r.old_rank for _, r in ranks if r.new_rank != r.old_rank}
        code = "ALGORITHM_RANK_" + ("HIGHER" if ups == {True} else "LOWER" if ups == {False} else "MIXED")
        items.append(Item("algorithm", new, code, ranking, base | {"rank_text": moves}))
    return items


# ---------------------------------------------------------------- reasons

def _said(item: Item) -> tuple:
    """What an own-activity item says, without its points or wording: the same quantity, from the
    same number to the same number."""
    f = item.fields
    return (f.get("label"), f.get("before_text"), f.get("after_text"), f.get("detail"))


def _reworded(item: Item, points: float) -> Item:
    """An own-activity item with new points, its pattern chosen again for them."""
    way = next(w for w in sorted(WAYS, key=len, reverse=True) if item.code.endswith("_" + w))
    stem = item.code[: -len(way) - 1]
    clamp = next((c for c in ("AT_CAP", "AT_FLOOR") if way.endswith(c)), None)
    sign = -1.0 if stem == KIND_STEMS["distrust"] else 1.0
    delta = float(item.fields.get("after", 0.0)) - float(item.fields.get("before", 0.0))
    return Item(item.part, item.algorithm, f"{stem}_{_way(delta, points, sign, clamp)}", points, item.fields)


def merge_items(items: list[Item]) -> list[Item]:
    """Items that say the same thing become one, their points added: own-activity items of two
    versions counting the same replies (each at half weight in a Shapley split), worded again for
    the sum; and the same engager passing on more (or less) under both versions, told with the
    later version's facts."""
    merged: dict[tuple, Item] = {}
    order: list[tuple | Item] = []
    for item in items:
        if item.points is None or item.part == "algorithm":
            order.append(item)
            continue
        engager = item.fields.get("engager")
        if item.part == "population" and engager is None:
            order.append(item)
            continue
        key = ("engager", item.code, engager) if engager is not None else _said(item)
        if key not in merged:
            merged[key] = item
            order.append(key)
        elif engager is not None:
            merged[key] = Item(item.part, item.algorithm, item.code, (merged[key].points or 0.0) + item.points,
                               item.fields)
        else:
            merged[key] = _reworded(merged[key], (merged[key].points or 0.0) + item.points)
    return [merged[k] if isinstance(k, tuple) else k for k in order]


def reasons_for(items: list[Item], versions: dict[str, dict[str, str]], candidate: str, *,
                held: bool = True) -> tuple[Reason, ...]:
    """At most four reasons, ranked by absolute points (ties by code), each at least SHOWN points,
    plus (with held) the items whose points a cap or floor holds at zero: they say why nothing moved.
    In a change of version they are left out: a cap of one version says nothing of the other."""
    def text(item: Item) -> str:
        lists = [versions.get(item.algorithm, {})] + ([versions.get(candidate, {})] if item.part == "algorithm" else [])
        return _render(item.code, item.fields | {"points": item.points}, lists)
    ranked = sorted((i for i in items if i.points is not None and abs(i.points) >= SHOWN),
                    key=lambda i: (-abs(i.points), i.code, str(i.fields.get("engager", ""))))[:MAX_REASONS]
    stuck = [i for i in items if held and i.points is not None and i.points == 0.0
             and i.code.endswith(("_AT_CAP", "_AT_FLOOR"))]
    facts = [i for i in items if i.points is None]
    return tuple(Reason(i.code, text(i), i.points, i.part) for i in [*ranked, *stuck[:MAX_REASONS], *facts])


def left_out(items: list[Item], reasons: tuple[Reason, ...]) -> tuple[int, float]:
    """How many scored items the reasons leave out, and their points together."""
    shown = len([r for r in reasons if r.points is not None and r.points != 0.0])
    scored = sorted((i for i in items if i.points), key=lambda i: -abs(i.points or 0.0))
    rest = scored[shown:]
    return len(rest), float(sum(i.points or 0.0 for i in rest))


# ---------------------------------------------------------------- putting it together

def combine_engagers(splits: list[tuple[float, str, DataSplit]]) -> pl.DataFrame:
    """One row per (engager, kind) over all versions: counts as observed, points added up."""
    frames = [s.engagers.with_columns((w * pl.col("own")).alias("own"), (w * pl.col("pop")).alias("pop"))
              for w, _, s in splits if s.engagers.height]
    if not frames:
        return pl.DataFrame(schema={**ENGAGER_SCHEMA, "points": pl.Float64, "change": pl.String})
    keys = ["engager", "kind"]
    first = pl.concat(frames).group_by(keys, maintain_order=True).agg(
        pl.col("n1", "n2", "value1", "value2", "given1", "given2", "score1", "score2").first(),
        *[pl.when(pl.col(c).count() > 0).then(pl.col(c).sum()).alias(c) for c in ("own", "pop")])
    change = (pl.when(pl.col("n1") == 0).then(pl.lit("started")).when(pl.col("n2") == 0).then(pl.lit("stopped"))
              .when(pl.col("n2") > pl.col("n1")).then(pl.lit("more")).when(pl.col("n2") < pl.col("n1"))
              .then(pl.lit("fewer")).otherwise(pl.lit("same")))
    out = first.with_columns((pl.col("own") + pl.col("pop")).alias("points"), change.alias("change"))
    order = pl.col("points").abs().fill_null((pl.col("n2") - pl.col("n1")).abs().cast(pl.Float64))
    return (out.with_columns(order.alias("_o"))
            .sort(["_o", "n2", "engager", "kind"], descending=[True, True, False, False]).drop("_o")
            .select("engager", "kind", "n1", "n2", "value1", "value2", "points", "own", "pop", "score1", "score2",
                    "given1", "given2", "change"))


def notes_for(baseline: RunPoint, candidate: RunPoint) -> list[str]:
    """What a reader must know besides the reasons: ties, caps and floors, different windows."""
    notes = []
    for name, p in (("before", baseline), ("after", candidate)):
        if p.score is None:
            continue
        if p.tied:
            notes.append(f"{name}: rank {p.rank:,} of {p.accounts:,} is shared with {p.tied:,} other "
                         f"account{'s' if p.tied != 1 else ''} scoring {p.score:.1f}")
        if p.score in (FLOOR, CAP):
            notes.append(f"{name}: the score is at the {'floor' if p.score == FLOOR else 'cap'} "
                         f"({p.score:.0f}); changes beyond it do not show")
    if baseline.window_seconds != candidate.window_seconds:
        notes.append(f"the two snapshots cover windows of different length ({window_text(baseline.window_seconds)} "
                     f"and {window_text(candidate.window_seconds)}): counts compare different spans")
    return notes


def window_text(seconds: int | None) -> str:
    if seconds is None:
        return "everything before as-of"
    days = seconds / 86400
    return f"{days:g} day{'s' if days != 1 else ''}" if days >= 1 else f"{seconds / 3600:g} hours"


def explain_change(account: str, baseline: RunPoint, candidate: RunPoint, *, old: Version, new: Version,
                   data: list[tuple[float, Version, Side, Side]], ranks: list[tuple[float, Ranks]],
                   counterfactual_runs: tuple[str, ...], method: str, names: dict[str, str] | None = None
                   ) -> Explanation:
    """The explanation of a change between two scored runs: weighted data splits (per version),
    the algorithm part split into scale and ranking, reasons, engagers and notes."""
    total = candidate.score - baseline.score
    splits = [(w, v.label, split_data(v, account, b, c)) for w, v, b, c in data]
    own = sum((w * s.own for w, _, s in splits), 0.0)
    population = sum((w * s.population for w, _, s in splits), 0.0)
    if old.label == new.label:
        population, algorithm = total - own, 0.0
    else:
        algorithm = total - own - population
    items = [Item(i.part, i.algorithm, i.code, None if i.points is None else w * i.points, i.fields)
             for w, _, s in splits for i in s.items]
    if old.label != new.label and ranks:
        algo_items = split_algorithm(old.label, new.label, ranks)
        # the scale and ranking parts add up to the algorithm part; put rounding where it belongs
        residue = algorithm - sum(i.points or 0.0 for i in algo_items)
        if algo_items:
            last = algo_items[-1]
            algo_items[-1] = Item(last.part, last.algorithm, last.code, (last.points or 0.0) + residue, last.fields)
        items += algo_items
    elif algorithm != 0.0:
        items.append(Item("algorithm", new.label, "ALGORITHM_CHANGED", algorithm, {}))
    items = merge_items(items)
    if names:       # engagers as people know them: handle (id)
        items = [Item(i.part, i.algorithm, i.code, i.points, i.fields | {"engager": names[i.fields["engager"]]})
                 if i.fields.get("engager") in names else i for i in items]
    components = tuple(ComponentChange(c.algorithm, c.component, c.label, c.unit, c.before, c.after,
                                       w * c.own_activity, w * c.population) for w, _, s in splits for c in s.components)
    engagers = combine_engagers(splits)
    versions = {old.label: old.reasons, new.label: new.reasons}
    reasons = reasons_for(items, versions, new.label, held=old.label == new.label)
    notes = notes_for(baseline, candidate)
    if engagers.height and (engagers["kind"] == "distrust").any():
        for _, version, _, _ in data:
            roles = dict(getattr(version.module, "COMPONENT_PARTS", {})).values()
            if any(r.startswith("engagers:") for r in roles) and "engagers:distrust" not in roles:
                rated = engagers.filter(pl.col("kind") == "distrust")
                notes.append(f"{version.label} gives negative ratings no weight: the {int(rated['n1'].sum()):,} "
                             f"-> {int(rated['n2'].sum()):,} negative ratings received do not move its score")
    count, points = left_out(items, reasons)
    if count:
        notes.append(f"{count:,} smaller item{'s' if count != 1 else ''} left out of the reasons "
                     f"({points:+.2f} points together); reasons under {SHOWN} points are never listed")
    parts = {"own_activity": own, "population": population, "algorithm": algorithm}
    return Explanation(account, "changed", baseline, candidate, total, parts, components, tuple(items), engagers,
                       engagers["engager"].n_unique() if engagers.height else 0, reasons, tuple(notes),
                       counterfactual_runs, method)


def explain_presence(account: str, baseline: RunPoint, candidate: RunPoint, before: pl.DataFrame,
                     after: pl.DataFrame, method: str) -> Explanation:
    """An account scored on one side only: it joined (no score before) or left (no score after).
    There is no change to split; the reasons are the account's activity in each window."""
    status = "joined" if baseline.score is None else "left"
    counts = (_engagement(before, account).group_by("kind").agg(pl.col("n").sum().alias("n1"))
              .join(_engagement(after, account).group_by("kind").agg(pl.col("n").sum().alias("n2")),
                    on="kind", how="full", coalesce=True).with_columns(pl.col("n1", "n2").fill_null(0))
              .sort("kind"))
    items = []
    for r in counts.filter(pl.col("n1") != pl.col("n2")).iter_rows(named=True):
        before_text, after_text = number_pair(r["n1"], r["n2"])
        items.append(Item("own_activity", (candidate if status == "joined" else baseline).algorithm,
                          f"RECEIVED_{r['kind'].upper()}_{'ROSE' if r['n2'] > r['n1'] else 'FELL'}_UNSCORED", None,
                          {"label": KIND_LABELS.get(r["kind"], f"{r['kind']} received"), "before": float(r["n1"]),
                           "after": float(r["n2"]), "before_text": before_text, "after_text": after_text,
                           "detail": ""}))
    gone, here = (baseline, candidate) if status == "joined" else (candidate, baseline)
    notes = [f"the account has no score in {gone.run_id} ({gone.algorithm} on {gone.snapshot_label or gone.snapshot_id}): "
             f"nothing in that snapshot's window ({window_text(gone.window_seconds)} before {gone.as_of}) involves it",
             f"in {here.run_id} it scores {here.score:.1f}, rank {here.rank:,} of {here.accounts:,}"]
    notes += notes_for(baseline, candidate)
    reasons = reasons_for(items, {}, candidate.algorithm)
    engagers = combine_engagers([])
    return Explanation(account, status, baseline, candidate, None, {}, (), tuple(items), engagers, 0, reasons,
                       tuple(dict.fromkeys(notes)), (), method)


def explain_same(account: str, point: RunPoint) -> Explanation:
    """One run on both sides: nothing changed."""
    return Explanation(account, "same", point, point, 0.0, {p: 0.0 for p in PARTS}, (), (), combine_engagers([]), 0, (),
                       tuple(notes_for(point, point)), (), "the same run on both sides: nothing changed")


def check_account(account: str, present: dict[str, bool]) -> None:
    """A clear message when the account has no score in any run of the explanation."""
    if present and not any(present.values()):
        raise AuditError(f'account "{account}" has no score in run(s) {", ".join(present)} (no activity in '
                         "those snapshots' windows); pick runs where it was scored, "
                         f'e.g. "audit history {account}"')
