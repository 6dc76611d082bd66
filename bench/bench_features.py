"""Time compare and explain on a store built from a generated file (the setup of bench/run.py:
a snapshot of everything scored by activity@1 and network@2 for compare; two 7-day snapshots a
day apart, activity@1 on the older and network@2 on the newer, counterfactuals stored, for the
explanation of the account that received the most interactions in the newer window).

    python -m bench.bench_features build STORE FILE --days 30
    python -m bench.bench_features time STORE [--repeat 3] [--out RESULT.json]

`build` writes the ids it made to STORE.ids.json; `time` reads them and prints the best of REPEAT
wall times (the results' JSON is written to --out, so that two code versions can be compared).
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from audit import api

START = datetime(2012, 7, 1, tzinfo=timezone.utc)
WINDOW = "7d"


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


def timed(label: str, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"{label}: {time.perf_counter() - t:.2f} s", flush=True)
    return out


def build(store: str, path: str, days: int) -> None:
    now = Clock()
    end = START + timedelta(days=days)
    timed("ingest", api.ingest, store, path, now=now())
    everything = timed("snapshot of everything", api.snapshot, store, as_of=end, window=None, now=now())
    old = timed("snapshot old", api.snapshot, store, as_of=end - timedelta(days=1), window=WINDOW, now=now())
    new = timed("snapshot new", api.snapshot, store, as_of=end, window=WINDOW, now=now())
    act = timed("score activity@1", api.score, store, everything.snapshot_id, "activity@1", now=now())
    net = timed("score network@2", api.score, store, everything.snapshot_id, "network@2", now=now())
    r1 = timed("score activity@1 old", api.score, store, old.snapshot_id, "activity@1", now=now())
    r2 = timed("score network@2 new", api.score, store, new.snapshot_id, "network@2", now=now())
    import duckdb
    con = duckdb.connect(store, read_only=True)
    con.execute("SET TimeZone='UTC'")
    account = con.execute("SELECT target, count(*) AS n FROM interaction WHERE ts >= ? AND ts < ? "
                          "GROUP BY target ORDER BY n DESC, target LIMIT 1", [end - timedelta(days=7), end]).fetchall()
    con.close()
    ids = {"compare": [act.run_id, net.run_id], "explain": [r1.run_id, r2.run_id], "account": account[0][0],
           "received": account[0][1]}
    Path(store + ".ids.json").write_text(json.dumps(ids))
    timed("explain, counterfactuals computed", api.explain, store, ids["account"], from_run=r1.run_id,
          to_run=r2.run_id, now=now())
    print(json.dumps(ids))


def best(repeat: int, fn):
    """Best wall time, every wall time, and the result; CPU seconds (all threads) of each call are
    printed too, since a shared machine inflates wall time."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(round(time.process_time() - c, 2))
    print(f"  cpu seconds: {cpu}", flush=True)
    return min(times), times, out


def run_times(store: str, repeat: int, out: str | None, features: bool = True) -> None:
    from audit.present import common  # noqa: F401  (imported before timing)
    from audit.present.compare import comparison_json
    from audit.present.explain import explanation_json
    ids = json.loads(Path(store + ".ids.json").read_text())
    now = Clock()
    if features:    # a store made by older code: migrate it (what any writing command does)
        from audit.store.db import connect
        with connect(store, write=True):
            pass
    # the first call may store derived records (the features of the snapshots); it is shown apart
    first = time.perf_counter()
    api.compare(store, *ids["compare"], **({"now": now()} if features else {}))
    print(f"compare, first call: {time.perf_counter() - first:.2f} s", flush=True)
    first = time.perf_counter()
    api.explain(store, ids["account"], from_run=ids["explain"][0], to_run=ids["explain"][1], now=now())
    print(f"explain, first call: {time.perf_counter() - first:.2f} s", flush=True)
    c, ct, comparison = best(repeat, lambda: api.compare(store, *ids["compare"]))
    e, et, explanation = best(repeat, lambda: api.explain(store, ids["account"], from_run=ids["explain"][0],
                                                          to_run=ids["explain"][1], now=now()))
    print(f"compare: best {c:.3f} s of {[round(t, 3) for t in ct]}")
    print(f"explain {ids['account']} ({ids['received']:,} received): best {e:.3f} s of {[round(t, 3) for t in et]}")
    if out:
        Path(out).write_text(json.dumps({"compare": comparison_json(comparison), "explain": explanation_json(explanation, engagers=10**9)},
                                        sort_keys=True, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("store")
    b.add_argument("file")
    b.add_argument("--days", type=int, default=30)
    t = sub.add_parser("time")
    t.add_argument("store")
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--out")
    t.add_argument("--old", action="store_true", help="code without stored features (compare takes no now)")
    a = ap.parse_args()
    if a.cmd == "build":
        build(a.store, a.file, a.days)
    else:
        run_times(a.store, a.repeat, a.out, not a.old)


if __name__ == "__main__":
    main()
