"""The service under a bounded loopback load, idle and while a network@2 job runs, beside the
same single lookup as a DuckDB query in a loop in one process.

    python -m bench.serve [--quick] [--clients 16] [--requests 20000] [--seconds 30]

The store: the benchmark's seeded interactions (`bench/generate.py`, 1M accounts, 10M rows over
30 days by default), three daily 7-day snapshots scored with network@2 and published, and a
snapshot of everything (cached in bench/.cache/serve-<key>.duckdb; each run works on a copy).
The job scores that snapshot of everything with network@2, through the API.

The mix: single lookups 70%, bulk lookups of 1,000 ids 10%, histories 15%, stored
explanations 5% (20 accounts, day D-1 to day D of network@2, each computed once before the
measurement, and that first computation timed apart). Every request goes to 127.0.0.1; each
load is bounded by a request count and a time.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from bench import load
from bench.run import CACHE, FULL, QUICK, START, cache_key

TOKEN = "bench-token-0123456789abcdef"
EXPLAINED = 20              # accounts whose explanation is asked (each computed once first: ~2 s on 1M)
GOALS = {"single_per_second": 1000.0, "p99_idle_ms": 50.0, "p99_job_ms": 250.0, "bulk_p99_ms": 100.0}


def now() -> datetime:
    return datetime.now(timezone.utc)


def data_files(params: dict, seed: int) -> Path:
    """The generated interactions (made once, shared with bench.run's cache)."""
    folder = CACHE / cache_key(params, seed)
    csv = folder / "interactions.csv"
    if not csv.exists():
        from bench.generate import generate, write
        print(f"generating {params['interactions']:,} interactions", flush=True)
        frame = generate(params["accounts"], params["interactions"], params["days"], seed=seed)
        write(frame, folder / "interactions.parquet")
        write(frame, csv)
    return csv


def build_store(params: dict, seed: int) -> tuple[Path, dict]:
    """The base store (cached): periods D-7, D-1, D of network@2 published; everything snapshotted."""
    from audit import api
    key = cache_key(params, seed)
    base, meta_file = CACHE / f"serve-{key}.duckdb", CACHE / f"serve-{key}.json"
    if base.exists() and meta_file.exists():
        return base, json.loads(meta_file.read_text())
    base.unlink(missing_ok=True)
    csv = data_files(params, seed)
    end = START + timedelta(days=params["days"])
    t = time.perf_counter()
    print(f"building {base.name}: ingest", flush=True)
    api.ingest(base, csv, now=now())
    meta: dict = {"periods": {}}
    for days_back in (7, 1, 0):
        as_of = end - timedelta(days=days_back)
        period = (as_of - timedelta(days=1)).date().isoformat()
        snap = api.snapshot(base, as_of=as_of, window="7d", label=period, now=now())
        run = api.score(base, snap.snapshot_id, "network@2", now=now())
        api.publish(base, run.run_id, period=period, now=now())
        meta["periods"][period] = run.run_id
        print(f"  {period}: {snap.interactions:,} interactions, run {run.run_id} ({run.accounts:,} accounts)",
              flush=True)
    everything = api.snapshot(base, as_of=end, window=None, label="everything", now=now())
    meta["everything"] = {"snapshot_id": everything.snapshot_id, "interactions": everything.interactions}
    meta["build_seconds"] = round(time.perf_counter() - t, 1)
    meta_file.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return base, meta


def sample_ids(store: Path, run_id: str, n: int, seed: int) -> list[str]:
    import duckdb
    con = duckdb.connect(str(store), read_only=True)
    try:
        ids = [r[0] for r in con.execute("SELECT account_id FROM score WHERE run_id = ? ORDER BY account_id",
                                         [run_id]).fetchall()]
    finally:
        con.close()
    rng = np.random.default_rng(seed)
    return [ids[i] for i in rng.choice(len(ids), size=min(n, len(ids)), replace=False)]


def baseline(store: Path, run_id: str, ids: list[str], *, requests: int, seconds: float) -> dict:
    """The same single lookup (score, raw, rank) as a DuckDB query in a loop, one process."""
    import duckdb
    con = duckdb.connect(str(store), read_only=True)
    sql = ("SELECT s.account_id, s.score, s.raw, (SELECT count(*) FROM score h WHERE h.run_id = s.run_id "
           "AND h.score > s.score) + 1 AS rank FROM score s WHERE s.run_id = ? AND s.account_id = ?")
    point = "SELECT score, raw FROM score WHERE run_id = ? AND account_id = ?"
    out = {}
    try:
        for name, query in (("score, raw and rank", sql), ("score and raw only", point)):
            lat = []
            t0 = time.perf_counter()
            for i in range(requests):
                t = time.perf_counter()
                con.execute(query, [run_id, ids[i % len(ids)]]).fetchall()
                lat.append(time.perf_counter() - t)
                if time.perf_counter() - t0 > seconds:
                    break
            total = time.perf_counter() - t0
            a = np.asarray(lat) * 1000
            out[name] = {"n": len(lat), "per_second": round(len(lat) / total, 1),
                         **{f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)}}
    finally:
        con.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run) -> dict:
    """A load's summary with the service's CPU milliseconds per request (steadier than wall time
    on a shared machine: what one idle core would give is 1000 / cpu_ms_per_request per second)."""
    c = cpu_seconds(pid)
    s = run().summary()
    s["server_cpu_ms_per_request"] = round((cpu_seconds(pid) - c) * 1000 / max(1, s["requests"]), 3)
    return s


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plan(ids: list[str], explained: list[str], periods: list[str], n: int, seed: int) -> list[load.Request]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.70:
            out.append(load.get("single", f"/api/v1/accounts/{rng.choice(ids)}/score"))
        elif u < 0.80:
            out.append(load.post_json("bulk of 1,000", "/api/v1/scores", {"accounts": rng.sample(ids, 1000)}))
        elif u < 0.95:
            out.append(load.get("history", f"/api/v1/accounts/{rng.choice(ids)}/history"))
        else:
            out.append(load.get("stored explanation", explain_path(rng.choice(explained), periods)))
    return out


def explain_path(account: str, periods: list[str]) -> str:
    return f"/api/v1/accounts/{account}/explain?from={periods[-2]}&to={periods[-1]}&release=network@2"


def show(title: str, s: dict) -> None:
    print(f"\n{title}: {s['requests']:,} requests in {s['seconds']:.1f} s = {s['throughput']:,.0f}/s, "
          f"errors {s['errors']}" + (f" {s['error_kinds']}" if s["errors"] else "")
          + f"; service CPU {s['server_cpu_ms_per_request']:.2f} ms per request")
    print(f"  {'kind':<20} {'n':>7} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, k in s["kinds"].items():
        print(f"  {kind:<20} {k['n']:>7,} {k['per_second']:>8,.0f} {k['p50']:>8.2f} {k['p95']:>8.2f} "
              f"{k['p99']:>8.2f} {k['max']:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k accounts, 1M interactions, 7 days")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=20_000, help="at most this many requests per load")
    p.add_argument("--seconds", type=float, default=30.0, help="at most this long per load")
    a = p.parse_args(argv)
    params = QUICK if a.quick else FULL
    print(f"bench.serve: {params['accounts']:,} accounts, {params['interactions']:,} interactions, "
          f"{a.clients} clients, at most {a.requests:,} requests and {a.seconds:.0f} s per load", flush=True)
    base, meta = build_store(params, a.seed)
    periods = sorted(meta["periods"])
    latest = meta["periods"][periods[-1]]
    work = CACHE / "serve-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = work / "audit.duckdb"
    shutil.copy(base, store)
    ids = sample_ids(store, latest, 50_000, a.seed)
    base_line = baseline(store, latest, ids, requests=min(a.requests, 5000), seconds=min(a.seconds, 15))
    print("  baseline measured; starting audit serve", flush=True)

    token_file = work / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    log = open(work / "serve.log", "w")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from audit.cli import main; main()", "--store", str(store),
                             "serve", "--port", str(port), "--token-file", str(token_file)],
                            stdout=log, stderr=subprocess.STDOUT)
    results: dict = {"params": params, "baseline": base_line}
    try:
        while True:
            try:
                if call(port, "GET", "/api/v1/runs")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit("audit serve did not start: " + (work / "serve.log").read_text())
            time.sleep(0.2)
        results["start_seconds"] = round(time.perf_counter() - t, 2)
        results["rss_mib_started"] = round(rss_mib(proc.pid), 0)
        explained, cold = [], []
        for account in ids[:200]:           # accounts scored on both days (the others get a 400)
            t = time.perf_counter()
            status, _ = call(port, "GET", explain_path(account, periods))
            if status == 200:
                cold.append(time.perf_counter() - t)
                explained.append(account)
            if len(explained) == EXPLAINED:
                break
        print(f"  {len(explained)} explanations computed once, {sum(cold):.1f} s", flush=True)
        c = np.asarray(cold) * 1000
        results["explain_first_ms"] = {"p50": round(float(np.percentile(c, 50)), 1),
                                       "max": round(float(c.max()), 1)}
        singles = [load.get("single", f"/api/v1/accounts/{i}/score") for i in ids]
        mixed = plan(ids, explained, periods, a.requests, a.seed)
        load.run(port, singles[:2000], clients=a.clients, requests=2000, seconds=10)          # warm-up
        results["single_idle"] = measured(proc.pid, lambda: load.run(port, singles, clients=a.clients,
                                                                      requests=a.requests, seconds=a.seconds))
        results["mixed_idle"] = measured(proc.pid, lambda: load.run(port, mixed, clients=a.clients,
                                                                     requests=a.requests, seconds=a.seconds))
        results["rss_mib_idle"] = round(rss_mib(proc.pid), 0)

        status, sub = call(port, "POST", "/api/v1/jobs", {"op": "score", "snapshot": meta["everything"]["snapshot_id"],
                                                          "algorithm": "network@2"}, token=TOKEN)
        assert status == 202, sub
        job_id, finished = sub["job_id"], threading.Event()
        job: dict = {}

        def poll() -> None:
            while True:
                job.update(call(port, "GET", f"/api/v1/jobs/{job_id}")[1])
                if job["state"] in ("done", "failed"):
                    finished.set()
                    return
                time.sleep(0.25)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t = time.perf_counter()
        results["mixed_during_job"] = measured(proc.pid, lambda: load.run(
            port, mixed, clients=a.clients, requests=10 * a.requests, seconds=max(a.seconds, 300), stop=finished))
        finished.wait(timeout=900)
        results["job"] = {"state": job.get("state"), "seconds": round(time.perf_counter() - t, 1),
                          "steps": job.get("progress", {}).get("steps"), "error": job.get("error"),
                          "accounts": (job.get("result") or {}).get("accounts"),
                          "interactions": meta["everything"]["interactions"]}
        results["rss_mib_after_job"] = round(rss_mib(proc.pid), 0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()

    print(f"\nbaseline, one process, the same lookup as a DuckDB query in a loop ({len(ids):,} sampled ids):")
    for name, b in base_line.items():
        print(f"  {name:<22} {b['per_second']:>8,.0f}/s  p50 {b['p50']:.2f} ms  p95 {b['p95']:.2f} ms  "
              f"p99 {b['p99']:.2f} ms  ({b['n']:,} queries)")
    print(f"service: started in {results['start_seconds']} s, RSS {results['rss_mib_started']:.0f} MiB after "
          f"start, {results['rss_mib_idle']:.0f} MiB idle under load, {results['rss_mib_after_job']:.0f} MiB after "
          f"the job; first computation of the {EXPLAINED} explanations p50 {results['explain_first_ms']['p50']} ms, max "
          f"{results['explain_first_ms']['max']} ms")
    show("single lookups only, idle", results["single_idle"])
    show("mixed, idle", results["mixed_idle"])
    j = results["job"]
    show(f"mixed, during the network@2 job on {j['interactions']:,} interactions ({j['state']} in {j['seconds']} s, "
         f"{j['accounts'] or 0:,} accounts)", results["mixed_during_job"])
    single = results["single_idle"]["kinds"].get("single", {})
    idle, busy = results["mixed_idle"]["kinds"], results["mixed_during_job"]["kinds"]
    checks = [
        ("single lookups/s (singles only, idle)", single.get("per_second", 0), ">=", GOALS["single_per_second"]),
        ("single p99 ms, idle (mixed)", idle.get("single", {}).get("p99", 1e9), "<=", GOALS["p99_idle_ms"]),
        ("worst p99 ms of any kind, idle (mixed)", max(k["p99"] for k in idle.values()), "<=", GOALS["p99_idle_ms"]),
        ("single p99 ms, during the job", busy.get("single", {}).get("p99", 1e9), "<=", GOALS["p99_job_ms"]),
        ("worst p99 ms of any kind, during the job", max(k["p99"] for k in busy.values()), "<=", GOALS["p99_job_ms"]),
        ("bulk of 1,000 p99 ms, idle", idle.get("bulk of 1,000", {}).get("p99", 1e9), "<=", GOALS["bulk_p99_ms"]),
        ("errors (all loads)", sum(results[k]["errors"] for k in ("single_idle", "mixed_idle", "mixed_during_job")),
         "<=", 0),
    ]
    print("\ngoals:")
    for name, value, op, goal in checks:
        met = value >= goal if op == ">=" else value <= goal
        print(f"  {name:<42} {value:>10,.1f}  goal {op} {goal:,.0f}  {'yes' if met else 'NO'}")
    out = CACHE / f"serve-results-{cache_key(params, a.seed)}.json"
    out.write_text(json.dumps(results, indent=1, sort_keys=True, default=str))
    print(f"results in {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if results["job"]["state"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
