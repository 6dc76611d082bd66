"""Planted gaming on the real Higgs week, for the gaming audit tests: closed rings (sizes 3-20, members
among real low-activity accounts, dense reciprocal engagement inside the window) and puppet groups
(fresh accounts that only engage one real low-activity target), written as one interactions CSV
that is ingested as its own batch beside the bundled data. Seeded: the same rows every time."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

KINDS = np.array(["retweet", "mention", "reply"])
FIRST_PUPPET = 10_000_000           # above every Higgs id (the largest is 456,626): fresh accounts


@dataclass(frozen=True)
class Planted:
    csv: Path
    rings: tuple[tuple[str, ...], ...]
    targets: tuple[str, ...]
    puppets: tuple[tuple[str, ...], ...]
    rows: int

    @property
    def members(self) -> set[str]:
        return {a for r in self.rings for a in r}

    @property
    def earners(self) -> set[str]:
        """What the audit should flag: ring members and puppet targets."""
        return self.members | set(self.targets)

    @property
    def all_accounts(self) -> set[str]:
        return self.earners | {p for g in self.puppets for p in g}


def plant(base: pl.DataFrame, folder: Path, *, rings: int = 200, puppet_groups: int = 150, seed: int = 17,
          density: float = 0.85, prefix: str = "") -> Planted:
    """Plant into the interactions BASE (source, target, kind, ts): low-activity accounts are those
    that received at most 1 and gave at most 2 interactions in BASE. Puppet ids are PREFIX + a number
    (the ids of BASE have the same shape, e.g. "u123" in the benchmark's data)."""
    rng = np.random.default_rng(seed)
    received = base.group_by("target").len().rename({"target": "a", "len": "r"})
    given = base.group_by("source").len().rename({"source": "a", "len": "g"})
    ids = pl.concat([base.select(pl.col("source").alias("a")), base.select(pl.col("target").alias("a"))]).unique()
    activity = ids.join(received, on="a", how="left").join(given, on="a", how="left").fill_null(0)
    low = activity.filter((pl.col("r") <= 1) & (pl.col("g") <= 2)).sort("a")["a"].to_numpy()
    rng.shuffle(low)
    t0 = int(base["ts"].min().timestamp())
    span = int(base["ts"].max().timestamp()) - t0
    src, tgt, kind, ts = [], [], [], []

    def add(s: str, t: str, n: int, lo: float, width: float) -> None:
        for _ in range(n):
            src.append(s)
            tgt.append(t)
            kind.append(KINDS[rng.integers(0, 3)])
            ts.append(t0 + int(lo + rng.random() * width))

    ring_sets, at = [], 0
    for _ in range(rings):
        k = int(rng.integers(3, 21))
        members = [str(a) for a in low[at:at + k]]
        at += k
        ring_sets.append(tuple(members))
        for u in members:
            for v in members:
                if u != v and rng.random() < density:
                    add(u, v, int(rng.integers(1, 5)), 0, span)
    targets, puppet_sets, nxt = [], [], FIRST_PUPPET
    for _ in range(puppet_groups):
        target = str(low[at])
        at += 1
        targets.append(target)
        m = int(rng.integers(5, 31))
        group = tuple(f"{prefix}{nxt + i}" for i in range(m))
        nxt += m
        puppet_sets.append(group)
        start = rng.random() * span * 0.5            # created close together: active in the same half-week
        for p in group:
            add(p, target, int(rng.integers(2, 6)), start, span * 0.5)
    order = np.argsort(np.array(ts), kind="stable")
    frame = pl.DataFrame({"source": src, "target": tgt, "kind": kind, "ts": ts})[order]
    csv = folder / "planted.csv"
    frame.write_csv(csv)
    return Planted(csv, tuple(ring_sets), tuple(targets), tuple(puppet_sets), frame.height)
