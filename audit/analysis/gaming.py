"""The gaming audit's pure part: the detector's output contract, the exclusion it implies, and the
findings, whose points are exact differences of two stored runs. No store, no clock.

Invariant: for every finding, points_from_group = score - score_without, with score from the audited
run and score_without from the counterfactual run (the same version on the same snapshot with the
groups' interactions left out); both are read from stored runs, never estimated.
"""
from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from ..errors import AuditError

PATTERNS = ("ring", "puppets")
ROLES = ("member", "target", "puppet")
EARNERS = ("member", "target")           # the roles whose points are reported: puppets give, they do not earn
GROUP_COLUMNS = ("group", "pattern", "accounts")
MEMBER_SCHEMA = {"group": pl.Int64, "account_id": pl.String, "role": pl.String, "received": pl.Float64,
                 "from_group": pl.Float64, "given": pl.Float64, "to_group": pl.Float64}
FINDING_SCHEMA = {"account_id": pl.String, "group": pl.Int64, "pattern": pl.String, "score": pl.Float64,
                  "score_without": pl.Float64, "points_from_group": pl.Float64}
BIG = 5.0                                # "more than 5 points from the group", the line


def counterfactual_path(module: types.ModuleType) -> str | None:
    """Why a version has no counterfactual path (None when it has one).

    The points of a finding are what the version itself gives with the group's interactions left out.
    A version has that path when it declares `engagers()`: it states its score as built from the
    engagement each account receives, engager by engager (every shipped version does). A version
    without it makes no such statement, so a difference without the group's interactions is not a
    quantity it vouches for."""
    if callable(getattr(module, "engagers", None)):
        return None
    return ("the version declares no engagers() hook, so it does not state its score as built from the "
            "engagement each account receives; audit gaming takes runs of activity@1, network@2, network@3 "
            "or of a version that declares engagers()")


def check_detection(out: Any, label: str, universe: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The detector contract, enforced: {"groups", "members"} frames, groups numbered 1..G, every
    member in one group at most once, known patterns and roles, accounts of the snapshot only.
    Returns (groups: group, pattern, accounts, evidence as canonical JSON; members)."""
    if not isinstance(out, dict) or not all(isinstance(out.get(k), pl.DataFrame) for k in ("groups", "members")):
        raise AuditError(f"detector {label}: detect() must return {{'groups': DataFrame, 'members': DataFrame}}")
    groups, members = out["groups"], out["members"]
    missing = [c for c in GROUP_COLUMNS if c not in groups.columns] + [c for c in MEMBER_SCHEMA if c not in members.columns]
    if missing:
        raise AuditError(f"detector {label}: detect() output lacks the columns {missing}")
    members = members.select(list(MEMBER_SCHEMA)).cast(MEMBER_SCHEMA).sort("group", "account_id")
    numbers = groups["group"].cast(pl.Int64)
    if not numbers.equals(pl.Series("group", np.arange(1, groups.height + 1, dtype=np.int64))):
        raise AuditError(f"detector {label}: groups must be numbered 1..{groups.height} in order")
    if members["account_id"].n_unique() != members.height or members["account_id"].null_count():
        raise AuditError(f"detector {label}: an account may be in one group at most")
    if not members["group"].is_in(numbers.implode()).all() or members["group"].n_unique() != groups.height:
        raise AuditError(f"detector {label}: every group needs members and every member a listed group")
    if not groups["pattern"].is_in(list(PATTERNS)).all() or not members["role"].is_in(list(ROLES)).all():
        raise AuditError(f"detector {label}: patterns are {PATTERNS}, roles {ROLES}")
    if not members["account_id"].is_in(universe.implode()).all():
        raise AuditError(f"detector {label}: detect() named accounts that the snapshot does not hold")
    sizes = members.group_by("group").len().sort("group")["len"].cast(pl.Int64)
    if not groups["accounts"].cast(pl.Int64).equals(sizes.rename("accounts")):
        raise AuditError(f"detector {label}: a group's account count differs from its members")
    evidence_cols = [c for c in groups.columns if c not in GROUP_COLUMNS]
    evidence = [_canonical({k: _value(v) for k, v in row.items() if v is not None})
                for row in groups.select(evidence_cols).iter_rows(named=True)] if evidence_cols else ["{}"] * groups.height
    shaped = pl.DataFrame({"group": numbers, "pattern": groups["pattern"].cast(pl.String),
                           "accounts": groups["accounts"].cast(pl.Int64), "evidence": pl.Series(evidence, dtype=pl.String)})
    return shaped, members


def _value(v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return round(v, 12)                   # evidence is descriptive: fixed precision, stable JSON
    return v


def _canonical(d: dict) -> str:
    return json.dumps({k: v for k, v in d.items() if v is not None}, sort_keys=True, separators=(",", ":"))


def exclusion_parts(members: pl.DataFrame) -> list[list[str]]:
    """The parts to leave out: each group's accounts (their interactions with each other go)."""
    return [list(p) for p in members.group_by("group", maintain_order=True).agg(pl.col("account_id"))
            .sort("group")["account_id"].to_list()]


def findings(groups: pl.DataFrame, members: pl.DataFrame, scores: pl.DataFrame, without: pl.DataFrame) -> pl.DataFrame:
    """One row per member or target: its score in the run, without the groups' interactions, and the
    difference, sorted by points (most first), then account id."""
    earners = members.filter(pl.col("role").is_in(list(EARNERS))).select("account_id", "group")
    out = (earners.join(groups.select("group", "pattern"), on="group")
           .join(scores.select("account_id", "score"), on="account_id", how="left")
           .join(without.select("account_id", pl.col("score").alias("score_without")), on="account_id", how="left"))
    if out["score"].null_count() or out["score_without"].null_count():
        raise AuditError("a flagged account has no score in the run or in the counterfactual run")
    out = out.with_columns((pl.col("score") - pl.col("score_without")).alias("points_from_group"))
    return (out.select(list(FINDING_SCHEMA)).cast(FINDING_SCHEMA)
            .sort(["points_from_group", "account_id"], descending=[True, False]))


@dataclass(frozen=True)
class Group:
    """One group found, its accounts by role and the detector's evidence."""
    group: int
    pattern: str
    accounts: int
    members: tuple[tuple[str, str], ...]      # (account_id, role), by role then id
    evidence: dict[str, Any]
    points: float                              # points from the group, added over its flagged accounts
    flagged: int


@dataclass(frozen=True)
class Points:
    """The distribution of points from the group over the flagged accounts."""
    flagged: int
    over_5: int                                # with more than 5 points from their group
    total: float
    median: float | None
    p90: float | None
    max: float | None
    bins: tuple[tuple[float, float, int], ...]  # [low, high) in points, the last one closed


@dataclass(frozen=True)
class GamingAudit:
    """A stored gaming audit of one run by one detector version, with its findings and groups."""
    gaming_id: str
    detector: str
    detector_id: str
    run_id: str
    algorithm: str
    snapshot_id: str
    snapshot_label: str | None
    accounts: int                              # accounts scored in the run
    derived_snapshot_id: str | None            # the snapshot without the groups' interactions
    counterfactual_run_id: str | None
    left_out: int                              # interactions the counterfactual leaves out
    groups: tuple[Group, ...]
    flagged: pl.DataFrame                      # FINDING_SCHEMA + handle + evidence columns
    points: Points
    seconds: float
    created_at: datetime
    new: bool = False


EDGES = (-math.inf, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, math.inf)


def points_summary(flagged: pl.DataFrame) -> Points:
    """Count, total, median, p90 (nearest rank), max and bands of the points from the group."""
    p = np.sort(flagged["points_from_group"].to_numpy()) if flagged.height else np.zeros(0)
    n = len(p)
    q = (lambda f: float(p[max(0, -(-int(round(f * 100)) * n // 100) - 1)])) if n else (lambda f: None)
    counts = np.histogram(p, bins=np.array(EDGES))[0] if n else np.zeros(len(EDGES) - 1, dtype=int)
    return Points(n, int((p > BIG).sum()), float(p.sum()), q(0.5), q(0.9), float(p[-1]) if n else None,
                  tuple((EDGES[i], EDGES[i + 1], int(c)) for i, c in enumerate(counts)))


def assemble(groups: pl.DataFrame, members: pl.DataFrame, found: pl.DataFrame) -> tuple[tuple[Group, ...], pl.DataFrame]:
    """The groups with their members and evidence, and the findings with each account's own evidence."""
    own = members.select("account_id", "role", "received", "from_group", "given", "to_group").with_columns(
        pl.when(pl.col("received") > 0).then(pl.col("from_group") / pl.col("received")).otherwise(0.0)
        .alias("share_from_group"))
    flagged = found.join(own, on="account_id", how="left").sort(["points_from_group", "account_id"],
                                                                 descending=[True, False])
    per = found.group_by("group").agg(pl.col("points_from_group").sum().alias("points"), pl.len().alias("n"))
    per = dict(zip(per["group"].to_list(), zip(per["points"].to_list(), per["n"].to_list())))
    order = {r: i for i, r in enumerate(ROLES)}
    listed = (members.with_columns(pl.col("role").replace_strict(order, return_dtype=pl.Int64).alias("o"))
              .sort("group", "o", "account_id").group_by("group", maintain_order=True)
              .agg(pl.col("account_id"), pl.col("role")))
    by_group = {g: tuple(zip(a, r)) for g, a, r in listed.iter_rows()}
    out = tuple(Group(g, pattern, n, by_group.get(g, ()), json.loads(ev), float(per.get(g, (0.0, 0))[0]),
                      int(per.get(g, (0.0, 0))[1]))
                for g, pattern, n, ev in groups.select("group", "pattern", "accounts", "evidence").iter_rows())
    return out, flagged
