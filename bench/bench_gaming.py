"""The gaming audit against one network@3 run (and one network@2 run) measured in the same run.

    python -m bench.bench_gaming [--quick]

The issue's goal: at 1M accounts / 10M interactions the detection takes at most 2x one network@2 run,
plus the counterfactual run. `audit gaming` is timed whole (detection, the derived snapshot, the
counterfactual run, storing the findings); "detection" is that minus the counterfactual run's own
compute time, so it includes loading the snapshot, the detector and writing the records. Each step
runs in a fresh interpreter (bench.run.measure), on the data bench.run generates and caches, with
rings and puppet groups planted as the tests plant them (tests/gaming_data.py; a random graph has
none, and then no counterfactual run would be measured): 1,000 rings and 1,000 puppet groups at the
full size, 100 of each with --quick, as a second batch.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from datetime import timedelta

from bench.run import (
    CACHE,
    FULL,
    QUICK,
    START,
    Row,
    at_most_ratio,
    cache_key,
    measure,
    ok,
    print_table,
    w_gaming,
    w_generate,
    w_ingest,
    w_score,
    w_snapshots,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_gaming", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k accounts, 1M interactions, 7 days")
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    params = QUICK if a.quick else FULL
    data = CACHE / cache_key(params, a.seed)
    csv, pq = data / "interactions.csv", data / "interactions.parquet"
    if not (csv.exists() and pq.exists()):
        gen = measure(w_generate, csv=str(csv), parquet=str(pq), seed=a.seed, **params)
        if not ok(gen):
            print(gen.get("traceback", gen), file=sys.stderr)
            return 1
    work = CACHE / "work-gaming"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = str(work / "audit.duckdb")
    print(f"bench gaming: {params['accounts']:,} accounts, {params['interactions']:,} interactions", flush=True)
    planted = work / "planted.csv"
    import polars as pl

    from tests.gaming_data import plant
    n = 100 if a.quick else 1000
    base = pl.read_parquet(pq, columns=["source", "target", "ts"])
    plant(base, work, rings=n, puppet_groups=n, seed=a.seed, prefix="u")   # puppet ids shaped like the data's
    del base
    steps = [measure(w_ingest, store=store, path=str(pq)), measure(w_ingest, store=store, path=str(planted))]
    end = START + timedelta(days=params["days"])
    steps.append(measure(w_snapshots, store=store, as_ofs=[end.isoformat()], window_days=None))
    if not all(ok(s) for s in steps):
        print(steps, file=sys.stderr)
        return 1
    snap = steps[-1]["ids"][0]
    net3 = measure(w_score, store=store, snapshot=snap, algorithm="network@3")
    net2 = measure(w_score, store=store, snapshot=snap, algorithm="network@2")
    gam = measure(w_gaming, store=store, run=net3["run_id"]) if ok(net3) else {"failed": "network@3 failed"}
    # the CPU time of the call is not split between detection and the counterfactual run: shown on the total only
    detect = {**gam, "seconds": gam["seconds"] - gam["counterfactual_seconds"], "cpu_seconds": None} if ok(gam) else gam
    cf = {**gam, "seconds": gam["counterfactual_seconds"], "cpu_seconds": None} if ok(gam) else gam
    note = (f"{gam['groups']:,} groups, {gam['flagged']:,} accounts flagged, {gam['left_out']:,} interactions left "
            f"out; the detector itself {gam['detect_seconds']:.2f} s") if ok(gam) else ""
    rows = [Row("score network@3", net3),
            Row("score network@2", net2),
            Row("gaming: detection (all but the cf run)", detect, "score network@2", net2, goal="<= 2x",
                check=at_most_ratio(2.0), note=note),
            Row("gaming: detection (all but the cf run)", detect, "score network@3", net3, goal="<= 2x",
                check=at_most_ratio(2.0)),
            Row("gaming: the counterfactual run", cf, "score network@3", net3),
            Row("gaming: total", gam, "score network@3", net3, goal="<= 3x (2x + the cf run)",
                check=at_most_ratio(3.0))]
    print()
    print_table(rows)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(ok(r.audit) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
