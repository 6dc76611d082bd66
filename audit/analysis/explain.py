"""Explain one account's score change between two runs, in parts that add up exactly.

Method (README, "Explaining a change"):
- total = candidate score - baseline score (stored scores).
- When snapshot and algorithm both differ, a two-factor Shapley value over the four runs
  S(algorithm, data): data = 1/2[(S(a1,d2) - S(a1,d1)) + (S(a2,d2) - S(a2,d1))], and the
  algorithm part is the rest (= 1/2[(S(a2,d1) - S(a1,d1)) + (S(a2,d2) - S(a1,d2))]).
- A data change under one algorithm splits into the account's own activity and everyone else:
  score = to_score(raw, norm) with norm a population statistic, so a two-factor Shapley value
  over (raw, norm) gives the raw effect and the normalisation effect; the raw effect is shared
  over the raw's parts in proportion to their raw change (exact when the mapping is linear in
  raw; the log-mean Divisia split when it is logarithmic). A part of raw is own activity when
  the algorithm declares it so (COMPONENT_PARTS; default own), population when declared so,
  and for per-engager components the change of each engager's contribution c = q * w (q the
  engager's standing, w its engagement with the account) splits by Shapley into own (w
  changed) and population (q changed); an engager who started or stopped is own activity.
- Everything that is not own activity or algorithm is population, so the parts add up to the
  total by construction.
Pure functions over frames: no store access here.
"""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..errors import AuditError

MAX_REASONS = 4
SHOWN = 0.05          # a reason worth less would read "+0.0 points": it is left out


@dataclass(frozen=True)
class RunPoint:
    """One side of the change: a run and the account's score in it."""
    run_id: str
    snapshot_id: str
    snapshot_label: str | None
    algorithm: str
    score: float
    raw: float
    rank: int


@dataclass(frozen=True)
class ComponentChange:
    """How much one component moved the score, within one part, under one algorithm."""
    part: str
    algorithm: str
    component: str
    label: str
    code: str              # the reason code stem (e.g. RETWEETS, RECEIVED_MENTION)
    before: float          # the plain quantity behind it (e.g. retweets received)
    after: float
    raw_delta: float
    points: float


@dataclass(frozen=True)
class Reason:
    """One ranked reason: a code from the algorithm version's list, its text and its points."""
    code: str
    text: str
    points: float
    part: str


@dataclass(frozen=True)
class Explanation:
    """A change explained: parts add up to the total; reasons are the largest items."""
    account_id: str
    baseline: RunPoint
    candidate: RunPoint
    total: float
    parts: dict[str, float]
    components: tuple[ComponentChange, ...]
    engagers: pl.DataFrame
    reasons: tuple[Reason, ...]
    counterfactual_runs: tuple[str, ...]
    method: str


@dataclass(frozen=True)
class Side:
    """What one run contributes to a data split: the run's scores and the account's inputs."""
    scores: pl.DataFrame          # account_id, raw, score of the account and of its engagers
    components: dict[str, float]  # the account's components in this run
    inputs: pl.DataFrame          # interactions into the account and all interactions of its engagers
    norm: dict | None             # the run's population statistics (normalisation() of all its scores)


@dataclass(frozen=True)
class DataSplit:
    """A data change under one algorithm, split into own activity and population."""
    own: float
    population: float
    components: list[ComponentChange]
    engagers: pl.DataFrame = field(default_factory=pl.DataFrame)


def _score_of(module: types.ModuleType, raw: float, norm: dict, params: dict) -> float:
    return float(np.asarray(module.to_score(np.array([raw]), norm, params))[0])


def _measure(module: types.ModuleType, component: str, value: float, norm: dict, params: dict) -> float:
    fn = getattr(module, "measure", None)
    return float(fn(component, value, norm, params)) if fn else float(value)


def _row(scores: pl.DataFrame, account: str) -> tuple[float, float]:
    hit = scores.filter(pl.col("account_id") == account)
    return float(hit["raw"][0]), float(hit["score"][0])


def _engager_split(module, account: str, params: dict, b: Side, c: Side) -> pl.DataFrame:
    """Per (engager, kind): contributions before/after and their own / population split (raw units)."""
    keys = ["engager", "kind"]
    e1 = module.engagers(account, b.inputs, b.scores, params)
    e2 = module.engagers(account, c.inputs, c.scores, params)
    joined = (e1.select(*keys, pl.col("interactions").alias("n1"), pl.col("weight").alias("w1"),
                        pl.col("contribution").alias("c1"))
              .join(e2.select(*keys, pl.col("interactions").alias("n2"), pl.col("weight").alias("w2"),
                              pl.col("contribution").alias("c2")), on=keys, how="full", coalesce=True)
              .with_columns(pl.col("n1", "n2").fill_null(0), pl.col("w1", "w2").fill_null(0.0)))
    if e1["contribution"].null_count() == e1.height and e2["contribution"].null_count() == e2.height:
        return joined.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("c1", "c2", "own", "pop"))
    joined = joined.with_columns(pl.col("c1", "c2").fill_null(0.0))
    q1 = pl.when(pl.col("w1") > 0).then(pl.col("c1") / pl.col("w1"))
    q2 = pl.when(pl.col("w2") > 0).then(pl.col("c2") / pl.col("w2"))
    joined = joined.with_columns(q1.alias("q1"), q2.alias("q2")).with_columns(
        pl.col("q1").fill_null(pl.col("q2")).fill_null(0.0), pl.col("q2").fill_null(pl.col("q1")).fill_null(0.0))
    own = 0.5 * (pl.col("q1") + pl.col("q2")) * (pl.col("w2") - pl.col("w1"))
    return joined.with_columns(own.alias("own")).with_columns(
        (pl.col("c2") - pl.col("c1") - pl.col("own")).alias("pop")).drop("q1", "q2")


def _with_engager_scores(engagers: pl.DataFrame, b: Side, c: Side) -> pl.DataFrame:
    """How influential each engager is: its score in the baseline and candidate run."""
    for side, col in ((b, "engager_score1"), (c, "engager_score2")):
        engagers = engagers.join(side.scores.select(pl.col("account_id").alias("engager"), pl.col("score").alias(col)),
                                 on="engager", how="left")
    return engagers


def split_data(module: types.ModuleType, label: str, params: dict, components: tuple[tuple[str, str], ...],
               account: str, b: Side, c: Side) -> DataSplit:
    """Split S(a, d2) - S(a, d1) for one account into own activity and population."""
    r1, s1 = _row(b.scores, account)
    r2, s2 = _row(c.scores, account)
    total = s2 - s1
    if not hasattr(module, "to_score") or b.norm is None or c.norm is None:
        # An algorithm without the hooks: the data change cannot be split; report it as population,
        # as an item too, so that the reasons (drawn from the items) show it.
        whole = [ComponentChange("population", label, "data", "The data changed (this version cannot split it)",
                                 "DATA", s1, s2, r2 - r1, total)] if total != 0.0 else []
        return DataSplit(0.0, total, whole)
    n1, n2 = b.norm, c.norm
    m = lambda r, n: _score_of(module, r, n, params)  # noqa: E731
    raw_effect = 0.5 * ((m(r2, n1) - m(r1, n1)) + (m(r2, n2) - m(r1, n2)))
    d_raw = r2 - r1
    factor = raw_effect / d_raw if d_raw != 0 else 0.0
    declared = dict(getattr(module, "COMPONENT_PARTS", {}))
    engagers = pl.DataFrame()
    if hasattr(module, "engagers"):
        engagers = _with_engager_scores(_engager_split(module, account, params, b, c), b, c)
    split = engagers.height and engagers["own"].null_count() < engagers.height
    by_kind = engagers.group_by("kind").agg(pl.col("own").sum(), pl.col("n1").sum(), pl.col("n2").sum()) \
        if split else pl.DataFrame(schema={"kind": pl.String, "own": pl.Float64, "n1": pl.Int64, "n2": pl.Int64})
    own_by_kind = {r[0]: r[1:] for r in by_kind.iter_rows()}
    changes: list[ComponentChange] = []
    own_raw = 0.0
    for name, text in components:
        v1, v2 = b.components[name], c.components[name]
        delta = v2 - v1
        role = declared.get(name, "own")
        m1, m2 = _measure(module, name, v1, n1, params), _measure(module, name, v2, n2, params)
        # (part, raw change, reason code stem, before, after)
        pieces = [("own_activity" if role == "own" else "population", delta, name.upper(), m1, m2)]
        if role.startswith("engagers:"):
            kind = role.split(":", 1)[1]
            own_k, k1, k2 = own_by_kind.get(kind, (0.0, 0, 0))
            pieces = [("own_activity", own_k, f"RECEIVED_{kind.upper()}", float(k1), float(k2)),
                      ("population", delta - own_k, name.upper(), m1, m2)]
        for part, piece, code, before, after in pieces:
            if part == "own_activity":
                own_raw += piece
            if piece == 0.0:
                continue
            changes.append(ComponentChange(part, label, name, text, code, before, after, piece, factor * piece))
    norm_effect = total - raw_effect
    if norm_effect != 0.0:
        changes.append(ComponentChange("population", label, "normalisation",
                                       "Everyone else's scores (the population statistic)", "NORMALISATION",
                                       next(iter(n1.values()), 0.0), next(iter(n2.values()), 0.0), 0.0,
                                       norm_effect))
    own = factor * own_raw
    if engagers.height and engagers["own"].null_count() < engagers.height:
        engagers = engagers.with_columns((factor * (pl.col("c2") - pl.col("c1"))).alias("points"),
                                         (factor * pl.col("pop")).alias("pop_points"))
    elif engagers.height:
        engagers = engagers.with_columns(pl.lit(None, pl.Float64).alias("points"),
                                         pl.lit(None, pl.Float64).alias("pop_points"))
    return DataSplit(own, total - own, changes, engagers)


def _item_text(reasons: dict[str, str], code: str, fields: dict[str, Any], fallback: str) -> str:
    template = reasons.get(code)
    if template is None:
        return fallback
    try:
        return template.format(**fields)
    except (KeyError, ValueError, IndexError):
        return fallback


def reason_stem(codes: dict[str, str], code: str, item: ComponentChange) -> str:
    """What a reason says about an own-activity item, without its points."""
    fields = {"before": item.before, "after": item.after, "points": 0.0, "engager": "", "engager_score": 0.0}
    return _item_text(codes, code, fields, f"{item.label} changed from {item.before:,.2f} to {item.after:,.2f}")


def engager_changes(engagers: pl.DataFrame) -> pl.DataFrame:
    """The engagers whose own standing moved the account's score most (the everyone-else part of
    their contributions: they rose or fell, or engaged more or less widely), at most MAX_REASONS."""
    if not engagers.height or engagers["pop_points"].null_count() == engagers.height:
        return pl.DataFrame(schema={"algorithm": pl.String, "engager": pl.String, "points": pl.Float64,
                                    "engager_score": pl.Float64})
    return (engagers.group_by("algorithm", "engager", maintain_order=True)
            .agg(pl.col("pop_points").sum().alias("points"),
                 pl.coalesce("engager_score2", "engager_score1").first().alias("engager_score"))
            .filter(pl.col("points").abs() >= SHOWN)
            .sort([pl.col("points").abs(), "engager", "algorithm"], descending=[True, False, False])
            .head(MAX_REASONS))


def reasons_for(items: list[ComponentChange], algorithm_points: float, candidate_reasons: dict[str, str],
                reason_lists: dict[str, dict[str, str]], engagers: pl.DataFrame | None = None) -> tuple[Reason, ...]:
    """At most four reasons, ranked by absolute points (ties by code), from the versions' code lists.

    Everyone else's part is named by the engagers who moved it most (ENGAGER_ROSE / _FELL), and
    the rest of it as one POPULATION reason, so the reasons never count a point twice."""
    out: list[Reason] = []
    population = sum(i.points for i in items if i.part == "population")
    for r in (engagers if engagers is not None else pl.DataFrame()).iter_rows(named=True):
        code = "ENGAGER_ROSE" if r["points"] > 0 else "ENGAGER_FELL"
        fields = {"before": 0.0, "after": 0.0, "points": r["points"], "engager": r["engager"],
                  "engager_score": r["engager_score"] if r["engager_score"] is not None else 0.0}
        out.append(Reason(code, _item_text(reason_lists.get(r["algorithm"], {}), code, fields,
                                           f"{r['engager']} changed: {r['points']:+.1f} points"),
                          r["points"], "population"))
        population -= r["points"]
    # Own-activity items that say the same thing (two versions both counting "mentions received
    # rose from 20 to 28", each at half weight in a Shapley split) become one reason with their
    # points added up.
    said: dict[str, tuple[str, dict[str, str], ComponentChange, float]] = {}
    for i in items:
        if i.part != "own_activity":
            continue
        way = "ROSE" if (i.after > i.before if i.after != i.before else i.points > 0) else "FELL"
        code = f"{i.code}_{way}"
        stem = reason_stem(reason_lists.get(i.algorithm, {}), code, i)
        first = said.get(stem)
        said[stem] = (code, reason_lists.get(i.algorithm, {}), i, i.points) if first is None \
            else (first[0], first[1], first[2], first[3] + i.points)
    for code, codes, i, points in said.values():
        if abs(points) < SHOWN:
            continue
        fields = {"before": i.before, "after": i.after, "points": points, "engager": "", "engager_score": 0.0}
        fallback = f"{i.label} changed from {i.before:,.2f} to {i.after:,.2f}: {points:+.1f} points"
        out.append(Reason(code, _item_text(codes, code, fields, fallback), points, "own_activity"))
    if abs(population) >= SHOWN:
        code = "POPULATION_ROSE" if population < 0 else "POPULATION_FELL"
        fields = {"before": 0.0, "after": 0.0, "points": population, "engager": "", "engager_score": 0.0}
        # the candidate version's wording, like ALGORITHM_CHANGED (not whichever item came first)
        out.append(Reason(code, _item_text(candidate_reasons, code, fields,
                                           f"Everyone else's activity changed: {population:+.1f} points"),
                          population, "population"))
    if abs(algorithm_points) >= SHOWN:
        fields = {"before": 0.0, "after": 0.0, "points": algorithm_points, "engager": "", "engager_score": 0.0}
        out.append(Reason("ALGORITHM_CHANGED", _item_text(candidate_reasons, "ALGORITHM_CHANGED", fields,
                                                          f"The algorithm changed: {algorithm_points:+.1f} points"),
                          algorithm_points, "algorithm"))
    out.sort(key=lambda r: (-abs(r.points), r.code))
    return tuple(out[:MAX_REASONS])


def combine(account: str, baseline: RunPoint, candidate: RunPoint, splits: list[tuple[float, DataSplit]],
            labels: list[str],
            candidate_reasons: dict[str, str], reason_lists: dict[str, dict[str, str]],
            counterfactual_runs: tuple[str, ...], method: str) -> Explanation:
    """Weighted data splits plus the algorithm part (the rest) -> an Explanation."""
    total = candidate.score - baseline.score
    own = sum((w * s.own for w, s in splits), 0.0)              # floats even with no split (JSON 0.0, not 0)
    population = sum((w * s.population for w, s in splits), 0.0)
    algorithm = total - own - population if baseline.algorithm != candidate.algorithm else 0.0
    if baseline.algorithm == candidate.algorithm:
        population = total - own       # exact: no algorithm part
    items = [dataclasses.replace(c, raw_delta=w * c.raw_delta, points=w * c.points)
             for w, s in splits for c in s.components]
    engagers = pl.concat([s.engagers.with_columns(pl.lit(label).alias("algorithm"), pl.col("points", "pop_points") * w)
                          for (w, s), label in zip(splits, labels) if s.engagers.height], how="diagonal_relaxed") \
        if any(s.engagers.height for _, s in splits) else pl.DataFrame()
    if engagers.height:
        order = pl.col("points").abs().fill_null(0.0)
        # algorithm too: in a two-algorithm explanation an (engager, kind) has a row per algorithm
        engagers = engagers.with_columns(order.alias("_o")).sort(
            ["_o", "n2", "engager", "kind", "algorithm"], descending=[True, True, False, False, False]).drop("_o")
    parts = {"own_activity": own, "population": population, "algorithm": algorithm}
    reasons = reasons_for(items, algorithm, candidate_reasons, reason_lists, engager_changes(engagers))
    return Explanation(account, baseline, candidate, total, parts, tuple(items), engagers, reasons,
                       counterfactual_runs, method)


def check_account(account: str, present: dict[str, bool]) -> None:
    """A clear message when the account is missing from a run the explanation needs."""
    missing = [run for run, ok in present.items() if not ok]
    if missing:
        raise AuditError(f'account "{account}" has no score in run(s) {", ".join(missing)} (no activity in '
                         "that snapshot's window); pick runs where it was scored, "
                         f'e.g. "audit history {account}"')
