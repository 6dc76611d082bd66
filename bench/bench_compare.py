"""Time compare_runs (every metric) on 1M accounts next to scipy's kendalltau + spearmanr alone.

Run: .venv/bin/python bench/bench_compare.py [--accounts N] [--repeat R]
Scores are heavy-tailed (seeded numpy): most accounts sit on a few low scores, as real ones do.
Two cases: the same accounts in both runs (a new version on the same snapshot), and 3% of the
accounts only on each side (one version on two snapshots, which needs a join).
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import scipy.stats

from audit.analysis import compare
from audit.analysis.compare import RunInfo, compare_runs, kendall_tau_b

SEGMENTS = {"heavy": "CASE WHEN received >= 100 THEN 'heavy' ELSE 'light' END"}


def scores(raw: np.ndarray) -> np.ndarray:
    """Raw activity -> 1..100 on a log scale, 2 decimals (ties as in a published score)."""
    return np.round(1 + 99 * np.log1p(raw) / np.log1p(raw.max()), 2)


def make_runs(n: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Baseline, candidate and features for n accounts, sorted by account_id."""
    rng = np.random.default_rng(seed)
    ids = pl.Series("account_id", [f"u{i:07d}" for i in range(n)])
    received = np.floor(rng.pareto(1.2, n) * 2).astype(np.int64)
    raw_b = received.astype(np.float64)
    raw_c = np.floor(raw_b * rng.lognormal(0.0, 0.4, n) + rng.poisson(0.3, n))
    features = pl.DataFrame({
        "account_id": ids, "received": received, "given": rng.poisson(3, n).astype(np.int64),
        "distinct_engagers": np.minimum(received, np.floor(received * 0.7 + 1).astype(np.int64)),
        "followers": np.floor(rng.pareto(1.1, n) * 50).astype(np.int64),
        "age_days": rng.uniform(0, 3000, n)})
    baseline = pl.DataFrame({"account_id": ids, "raw": raw_b, "score": scores(raw_b)})
    candidate = pl.DataFrame({"account_id": ids, "raw": raw_c, "score": scores(raw_c)})
    return baseline, candidate, features


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Best wall time and best CPU time (all threads) of repeat calls, in seconds.

    CPU time is printed too because a shared machine inflates wall time: on an idle 2-core
    machine the wall time lies between CPU/2 and CPU.
    """
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main() -> None:
    """Print the timings of both cases."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    baseline, candidate, features = make_runs(args.accounts)
    b_info = RunInfo("r_base", "s_1", "activity@1", {"weights": {"retweet": 1.0}}, "W = 1.0\n")
    c_info = RunInfo("r_cand", "s_1", "activity@2", {"weights": {"retweet": 2.0}}, "W = 2.0\n")
    rng = np.random.default_rng(11)
    drop_b, drop_c = rng.random(args.accounts) < 0.03, rng.random(args.accounts) < 0.03
    cases = {
        "same accounts": (baseline, candidate),
        "3% only on each side": (baseline.filter(~pl.Series(drop_b)), candidate.filter(~pl.Series(drop_c))),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.accounts:,} accounts, best of {args.repeat}; {os.cpu_count()} cores, load average {load:.2f}")
    for name, (b, c) in cases.items():
        def run(b: pl.DataFrame = b, c: pl.DataFrame = c) -> None:
            compare_runs(b, c, features=features, baseline_info=b_info, candidate_info=c_info,
                         top=20, segments=SEGMENTS)
        both = b.join(c, on="account_id", how="inner", maintain_order="left")
        x, y = both["score"].to_numpy(), both["score_right"].to_numpy()

        def reference(x: np.ndarray = x, y: np.ndarray = y) -> None:
            scipy.stats.kendalltau(x, y)
            scipy.stats.spearmanr(x, y)
        (w_cmp, c_cmp), (w_ref, c_ref) = best_of(args.repeat, run), best_of(args.repeat, reference)
        print(f"{name}:\n"
              f"  compare_runs, every metric        wall {w_cmp * 1000:7.1f} ms  cpu {c_cmp * 1000:7.1f} ms\n"
              f"  scipy kendalltau + spearmanr only wall {w_ref * 1000:7.1f} ms  cpu {c_ref * 1000:7.1f} ms\n"
              f"  ratio compare_runs / scipy        wall {w_cmp / w_ref:7.2f}     cpu {c_cmp / c_ref:7.2f}")
    # why the discordant-pair count uses scipy's compiled Fenwick tree when it can
    x, y = baseline["score"].to_numpy(), candidate["score"].to_numpy()
    w_fast, _ = best_of(args.repeat, lambda: kendall_tau_b(x, y))
    saved, compare._kendall_dis = compare._kendall_dis, None
    try:
        w_numpy, _ = best_of(args.repeat, lambda: kendall_tau_b(x, y))
    finally:
        compare._kendall_dis = saved
    print(f"kendall_tau_b alone: {w_fast * 1000:.1f} ms with scipy's compiled count, "
          f"{w_numpy * 1000:.1f} ms with the pure-numpy fallback")


if __name__ == "__main__":
    main()
