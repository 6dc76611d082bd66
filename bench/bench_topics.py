"""Topic scores, influence and engagers at scale (issue 18).

    python -m bench.bench_topics [--quick]

The issue's goals: topics@1 on 1M accounts, 10M interactions and 1,000 topics with a heavy-tailed
topic-size distribution (bench.generate --topics) in at most 3x one network@2 run of the same
snapshot; `audit engagers` and `audit influence` for the most-engaged account in at most 0.2 s once
the run is stored. Each step runs in a fresh interpreter; engagers and influence are timed as the
facade call (the store opened and read), after one call that warms the file cache. --quick: 100k
accounts, 1M interactions, 100 topics.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
FULL = {"accounts": 1_000_000, "interactions": 10_000_000, "days": 30, "topics": 1000}
QUICK = {"accounts": 100_000, "interactions": 1_000_000, "days": 7, "topics": 100}
START = datetime(2012, 7, 1, tzinfo=timezone.utc)


def _work(name: str, kwargs: dict) -> dict:
    from audit import api
    now = datetime.now(timezone.utc)
    t = time.perf_counter()
    if name == "generate":
        from bench.generate import generate, write
        write(generate(kwargs["accounts"], kwargs["interactions"], kwargs["days"], topics=kwargs["topics"]),
              Path(kwargs["out"]))
    elif name == "ingest":
        api.ingest(kwargs["store"], kwargs["path"], now=now)
    elif name == "snapshot":
        return {"seconds": time.perf_counter() - t,
                "id": api.snapshot(kwargs["store"], as_of=kwargs["as_of"], now=now).snapshot_id}
    elif name == "score":
        run = api.score(kwargs["store"], kwargs["snapshot"], kwargs["algorithm"], now=now)
        return {"seconds": time.perf_counter() - t, "run_id": run.run_id, "rows": run.accounts}
    elif name == "ask":
        from audit.store.db import connect
        with connect(kwargs["store"]) as con:
            top = con.execute("SELECT target, count(*) AS n FROM interaction GROUP BY target "
                              "ORDER BY n DESC, target LIMIT 1").fetchall()[0]
        out = {"account": top[0], "received": top[1]}
        for what, call in (("engagers", lambda: api.engagers(kwargs["store"], top[0], run=kwargs["run"],
                                                             min_score=50)),
                           ("influence", lambda: api.influence(kwargs["store"], top[0], run=kwargs["run"], top=10)),
                           ("influence --relative", lambda: api.influence(kwargs["store"], top[0], run=kwargs["run"],
                                                                           top=10, relative=True))):
            call()                                      # warm: file cache, imports
            t = time.perf_counter()
            call()
            out[what] = time.perf_counter() - t
        return out
    return {"seconds": time.perf_counter() - t}


def measure(name: str, **kwargs) -> dict:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_work, name, kwargs).result()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_topics", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k accounts, 1M interactions, 100 topics")
    a = p.parse_args(argv)
    params = QUICK if a.quick else FULL
    data = CACHE / "topics-a{accounts}-e{interactions}-d{days}-t{topics}".format(**params)
    pq = data / "interactions.parquet"
    if not pq.exists():
        print(f"generate: {measure('generate', out=str(pq), **params)['seconds']:.1f} s", flush=True)
    work = CACHE / "work-topics"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = str(work / "audit.duckdb")
    print(f"bench topics: {params['accounts']:,} accounts, {params['interactions']:,} interactions, "
          f"{params['topics']:,} topics", flush=True)
    print(f"ingest: {measure('ingest', store=store, path=str(pq))['seconds']:.1f} s", flush=True)
    snap = measure("snapshot", store=store, as_of=(START + timedelta(days=params["days"])).isoformat())["id"]
    net2 = measure("score", store=store, snapshot=snap, algorithm="network@2")
    net3 = measure("score", store=store, snapshot=snap, algorithm="network@3")
    top = measure("score", store=store, snapshot=snap, algorithm="topics@1")
    ratio = top["seconds"] / net2["seconds"]
    print("| step | seconds | goal |\n|---|---:|---|")
    print(f"| network@2 run (baseline) | {net2['seconds']:.1f} | |")
    print(f"| network@3 run | {net3['seconds']:.1f} | |")
    print(f"| topics@1 run ({top['rows']:,} (account, topic) rows) | {top['seconds']:.1f} | <= 3x network@2: "
          f"{ratio:.2f}x {'met' if ratio <= 3 else 'NOT met'} |")
    asked = measure("ask", store=store, run=net3["run_id"])
    for what in ("engagers", "influence", "influence --relative"):
        goal = "<= 0.2 s: " + ("met" if asked[what] <= 0.2 else "NOT met") if what != "influence --relative" else ""
        print(f"| {what} (account {asked['account']}, {asked['received']:,} received) | {asked[what]:.3f} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
