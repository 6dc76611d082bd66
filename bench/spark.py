"""The Spark benchmark: network@3 on Spark local[1] and local[2] beside the local engine and a bare
PySpark PageRank, at 1M and 10M interactions (--quick: 1M only).

    python -m bench.spark [--quick] [--iterations 10]

A converged network@3 takes ~170 iterations on these graphs, ~15 minutes per Spark run at 10M
here, so the Spark rows run a fixed number of iterations: the version `networkfixed@1` is
network@3's stored source with its stopping rule replaced by exactly --iterations iterations
(the update, the exact sums, the export, the output check and the store are network@3's), and
the bare PageRank runs the same number. The local engine runs both that version and the
converged network@3. Every measurement runs in a fresh spawned process (its own JVM); Spark's
start-up is timed apart and left out of the ratios. Results also go to bench/.cache/spark-*.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SIZES = {"1M": (100_000, 1_000_000), "10M": (1_000_000, 10_000_000)}
DAYS = 7
CONF = ("spark.driver.memory=8g",)


def fixed_iterations_source(iterations: int) -> str:
    """network@3's source, renamed networkfixed@1, doing exactly ITERATIONS iterations (tol 0, and no
    error when the L1 change is still above it) on both engines."""
    from audit.records.algorithms import shipped_source
    source = shipped_source("network@3")
    source = source.replace('NAME = "network"\nVERSION = 3', 'NAME = "networkfixed"\nVERSION = 1')
    source = source.replace('"tol": 1e-13,', '"tol": 0.0,').replace('"max_iter": 500,', f'"max_iter": {iterations},')
    source, count = re.subn(r"\n    else:\n        raise RuntimeError\(f\"network@3: PageRank did not converge[^\n]*\n"
                            r"[^\n]*\n", "\n", source)
    if count != 2 or '"tol": 0.0' not in source or "networkfixed" not in source:
        raise RuntimeError("network@3's source no longer has the shape bench/spark.py edits")
    return source


# ---- measured work: each runs in a fresh spawned process -------------------------------------

def w_local(store: str, snapshot: str, algorithm: str) -> dict:
    from audit import api
    t = time.perf_counter()
    run = api.score(store, snapshot, algorithm, now=NOW)
    return {"seconds": time.perf_counter() - t, "run_id": run.run_id, "result": run.result_hash}


def w_engine(store: str, snapshot: str, algorithm: str, master: str, data_dir: str) -> dict:
    from audit import api
    from audit.records import spark
    t = time.perf_counter()
    spark.session(spark.SparkOptions(master=master, conf=spark.parse_conf(CONF)))
    start = time.perf_counter() - t
    t = time.perf_counter()
    run = api.score(store, snapshot, algorithm, now=NOW, engine="spark", master=master, conf=CONF,
                    data_dir=data_dir)
    return {"seconds": time.perf_counter() - t, "start": start, "run_id": run.run_id, "result": run.result_hash}


def w_bare(folder: str, master: str, iterations: int, out: str) -> dict:
    from audit.records import spark
    from bench.spark_pagerank import bare_pagerank
    t = time.perf_counter()
    session = spark.session(spark.SparkOptions(master=master, conf=spark.parse_conf(CONF)))
    start = time.perf_counter() - t
    return bare_pagerank(session, folder, iterations, out) | {"start": start}


WORK: dict[str, Callable[..., dict]] = {"w_local": w_local, "w_engine": w_engine, "w_bare": w_bare}


def _run(name: str, kwargs: dict) -> dict:
    try:
        return WORK[name](**kwargs)
    except Exception as exc:
        return {"failed": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                "traceback": traceback.format_exc()}


def measure(fn: Callable, **kwargs: Any) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_run, fn.__name__, kwargs).result()


# ---- the table --------------------------------------------------------------------------------

def prepare(label: str, accounts: int, interactions: int, iterations: int, seed: int) -> dict:
    """The generated data (cached), a store holding it with one snapshot of everything and the
    fixed-iteration version (cached), and the snapshot exported to Parquet."""
    from audit import api
    from bench.generate import generate, write
    from bench.run import cache_key
    key = cache_key({"accounts": accounts, "interactions": interactions, "days": DAYS}, seed)
    data = CACHE / key
    parquet = data / "interactions.parquet"
    if not parquet.exists():
        write(generate(accounts, interactions, DAYS, seed=seed), parquet)
    base = CACHE / f"spark-{key}"
    base.mkdir(parents=True, exist_ok=True)
    store = base / "audit.duckdb"
    if not (base / "ready").exists():
        store.unlink(missing_ok=True)
        api.ingest(store, parquet, now=NOW)
        (base / "ready").write_text("")
    snap = api.snapshot(store, as_of="2012-07-08", now=NOW)
    module = base / f"networkfixed_{iterations}.py"
    module.write_text(fixed_iterations_source(iterations))
    fixed = "networkfixed@1"
    if any(a.label == fixed and a.params["max_iter"] != iterations for a in api.algorithms(store)):
        raise SystemExit(f"{store} holds {fixed} with another iteration count; remove {base}")
    api.register(store, module, now=NOW)
    t = time.perf_counter()
    export = api.export_snapshot(store, snap.snapshot_id, base / "parquet")
    return {"label": label, "store": store, "snapshot": snap.snapshot_id, "fixed": fixed, "base": base,
            "export": export, "export_seconds": time.perf_counter() - t, "interactions": interactions}


def fresh_store(p: dict, name: str) -> str:
    """A copy of the prepared store, so each engine measurement makes its run anew."""
    work = p["base"] / "work"
    work.mkdir(exist_ok=True)
    target = work / f"{name}.duckdb"
    shutil.copy(p["store"], target)
    return str(target)


def run_size(p: dict, iterations: int) -> list[dict]:
    rows = []

    def row(what: str, d: dict, **extra: Any) -> dict:
        r = {"size": p["label"], "what": what, **d, **extra}
        rows.append(r)
        shown = "FAILED " + d["failed"] if "failed" in d else f"{d['seconds']:.1f} s"
        print(f"  {p['label']:>4}  {what:<46} {shown}", flush=True)
        return r

    ex = p["export"]
    row("export snapshot to Parquet", {"seconds": p["export_seconds"]},
        note=f"{ex.interactions:,} interactions" + (" (reused)" if ex.reused else ""))
    row("local engine, network@3 converged", measure(w_local, store=fresh_store(p, "local-conv"),
                                                                   snapshot=p["snapshot"], algorithm="network@3"))
    local = row(f"local engine, {iterations} iterations", measure(w_local, store=fresh_store(p, "local"),
                                                                  snapshot=p["snapshot"], algorithm=p["fixed"]))
    for master in ("local[1]", "local[2]"):
        eng = row(f"Spark engine {master}, {iterations} iterations",
                  measure(w_engine, store=fresh_store(p, f"spark-{master[6]}"), snapshot=p["snapshot"],
                          algorithm=p["fixed"], master=master, data_dir=str(p["base"] / "parquet")))
        row(f"bare PySpark PageRank {master}, {iterations} iterations",
            measure(w_bare, folder=str(ex.folder), master=master, iterations=iterations,
                    out=str(p["base"] / "work" / f"bare-{master[6]}")))
        if "failed" not in eng and "failed" not in local:
            eng["same_as_local"] = eng["result"] == local["result"]
    return rows


def ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or "failed" in a or "failed" in b:
        return "-"
    return f"{a['seconds'] / b['seconds']:.2f}x"


def summary(rows: list[dict]) -> list[str]:
    by = {(r["size"], r["what"].split(",")[0]): r for r in rows}
    lines = []
    for size in dict.fromkeys(r["size"] for r in rows):
        def get(what: str) -> dict | None:
            return by.get((size, what))
        local = get("local engine")
        e1, e2 = get("Spark engine local[1]"), get("Spark engine local[2]")
        b1, b2 = get("bare PySpark PageRank local[1]"), get("bare PySpark PageRank local[2]")
        lines += [
            f"{size}: engine / bare: local[1] {ratio(e1, b1)}, local[2] {ratio(e2, b2)} (goal <= 1.5x)",
            f"{size}: local[2] / local[1] speed-up: engine {ratio(e1, e2)}, bare {ratio(b1, b2)} (goal >= 1.6x)",
            f"{size}: Spark engine / local engine, same iterations: local[1] {ratio(e1, local)}, "
            f"local[2] {ratio(e2, local)}",
            f"{size}: Spark results equal the local engine's bit for bit: "
            + ", ".join(f"{m} {e.get('same_as_local')}" for m, e in (("local[1]", e1), ("local[2]", e2)) if e),
        ]
        for name, b in (("local[1]", b1), ("local[2]", b2)):
            if b and "failed" not in b:
                lines.append(f"{size}: bare {name}: prepare {b['prepare']:.1f} s, {b['per_iteration']:.2f} s per "
                             f"iteration, write {b['write']:.1f} s; Spark start {b['start']:.1f} s (not counted)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.spark", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M interactions only")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    import importlib.util

    from audit.records.spark import java_path
    if importlib.util.find_spec("pyspark") is None or java_path() is None:
        print("bench.spark: skipped (needs pyspark and Java: make test installs pyspark; Debian: "
              "apt-get install openjdk-17-jre-headless)")
        return 0
    rows: list[dict] = []
    for label in (["1M"] if a.quick else ["1M", "10M"]):
        accounts, interactions = SIZES[label]
        print(f"network@3 on Spark, {interactions:,} interactions among {accounts:,} accounts:", flush=True)
        p = prepare(label, accounts, interactions, a.iterations, a.seed)
        rows += run_size(p, a.iterations)
        shutil.rmtree(p["base"] / "work", ignore_errors=True)
    print()
    for line in summary(rows):
        print(line)
    out = CACHE / f"spark-results-{'quick' if a.quick else 'full'}.json"
    out.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return 1 if any("failed" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
