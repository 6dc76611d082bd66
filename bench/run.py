"""The benchmark: audit's steps against bare baselines, one fresh process per measurement.

    python -m bench.run [--accounts 1000000 --interactions 10000000 --days 30] [--quick]
                        [--repeats 3] [--scaling | --no-scaling] [--scaling-sizes 100000,1000000,10000000]

Each measured call runs in a new spawned interpreter, so its peak RSS (VmHWM) is its own; each
step runs --repeats times (whole-process command rows 5 times) and the table shows the min and
the median. A step that needs an earlier step which failed prints "skipped (needs ...)"; the
baselines always run. Exit code 1 when a step failed, 0 otherwise (unmet goals and noisy runs
included).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from audit import api
from bench.harness import (
    NOISE,
    Row,
    at_most_ratio,
    at_most_ratio_and_peak,
    at_most_seconds,
    fmt_value,
    format_machine,
    format_scaling,
    format_table,
    load_average,
    machine,
    noisy_reasons,
    ok,
    scaled,
    size_label,
    summarize,
    table_notes,
)

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
START = datetime(2012, 7, 1, tzinfo=timezone.utc)
WINDOW = timedelta(days=7)
NX_SAMPLE = 100_000
FULL = {"accounts": 1_000_000, "interactions": 10_000_000, "days": 30}
QUICK = {"accounts": 100_000, "interactions": 1_000_000, "days": 7}


# ---- measured work: each function runs inside a fresh process and returns a dict -------------

def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _measured(name: str, kwargs: dict) -> dict:
    """Run WORK[name] here; add the process's peak RSS and the RSS before the work."""
    before = _status_kib("VmRSS")
    try:
        out = WORK[name](**kwargs)
    except Exception as e:
        out = {"failed": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out.setdefault("cpu_seconds", _CPU[0])
    out["start_mib"] = before / 1024
    out["peak_mib"] = _status_kib("VmHWM") / 1024
    return out


def _now() -> datetime:
    return datetime.now(timezone.utc)


_CPU = [0.0]  # CPU seconds (all threads) inside _timed calls of this process


def _timed(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """FN's result and wall seconds; its CPU seconds are added to _CPU."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    _CPU[0] += time.process_time() - c
    return out, time.perf_counter() - t


def w_generate(csv: str, parquet: str, accounts: int, interactions: int, days: int, seed: int) -> dict:
    from bench.generate import generate, write
    frame, seconds = _timed(generate, accounts, interactions, days, seed=seed)
    write(frame, Path(parquet))
    write(frame, Path(csv))
    return {"seconds": seconds, "rows": frame.height}


def w_bare_read_csv(path: str, db: str, **options: str | bool) -> dict:
    from bench.baselines import bare_read_csv
    rows, seconds = _timed(bare_read_csv, path, db, **options)
    return {"seconds": seconds, "rows": rows, "bytes": _size(Path(db))}


def w_ingest(store: str, path: str, fmt: str = "auto") -> dict:
    res, seconds = _timed(api.ingest, store, path, fmt=fmt, now=_now())
    return {"seconds": seconds, "rows": res.rows, "batch_id": res.batch_id}


def w_snapshots(store: str, as_ofs: list[str], window_days: int | None) -> dict:
    window = f"{window_days}d" if window_days else None
    snaps, seconds = _timed(lambda: [api.snapshot(store, as_of=datetime.fromisoformat(a), window=window, now=_now())
                                     for a in as_ofs])
    return {"seconds": seconds, "ids": [s.snapshot_id for s in snaps],
            "interactions": [s.interactions for s in snaps]}


def w_score(store: str, snapshot: str, algorithm: str, counterfactual: bool = False) -> dict:
    run, seconds = _timed(api.score, store, snapshot, algorithm, counterfactual=counterfactual, now=_now())
    return {"seconds": seconds, "run_id": run.run_id, "accounts": run.accounts}


def w_bare_groupby(parquet: str) -> dict:
    import polars as pl

    from bench.baselines import bare_groupby
    frame = pl.read_parquet(parquet)
    out, seconds = _timed(bare_groupby, frame)
    return {"seconds": seconds, "accounts": out.height}


def w_bare_power_iteration(parquet: str) -> dict:
    import polars as pl

    from bench.baselines import (
        DAMPING,
        MAX_ITER,
        TOL,
        csr_power_iteration,
        transition_matrix,
    )
    try:  # stop where network@2 stops, so both do the same number of iterations
        from audit.algorithms.network_v2 import PARAMS as stop
    except (ImportError, AttributeError):
        stop = {}
    stop = {"damping": stop.get("damping", DAMPING), "tol": stop.get("tol", TOL),
            "max_iter": stop.get("max_iter", MAX_ITER)}
    frame = pl.read_parquet(parquet, columns=["source", "target", "kind"])
    (p, dangling, ids), built = _timed(transition_matrix, frame)
    _CPU[0] = 0.0  # the iteration alone is compared
    (_, iterations), seconds = _timed(csr_power_iteration, p, dangling, **stop)
    return {"seconds": seconds, "iterations": iterations, "build_seconds": built, "tol": stop["tol"],
            "accounts": ids.len(), "edges": p.nnz}


def w_networkx(parquet: str, n_edges: int) -> dict:
    import polars as pl

    from bench.baselines import networkx_pagerank_sample
    frame = pl.read_parquet(parquet, columns=["source", "target", "kind"], n_rows=n_edges)
    return _timed(networkx_pagerank_sample, frame, n_edges)[0]


def w_compare(store: str, baseline: str, candidate: str) -> dict:
    # as `audit compare` does: the first call stores the baseline snapshot's features, later ones read them
    _, seconds = _timed(api.compare, store, baseline, candidate, now=_now())
    return {"seconds": seconds}


def w_top_target(parquet: str, since: str) -> dict:
    import polars as pl
    top = (pl.scan_parquet(parquet).filter(pl.col("ts") >= datetime.fromisoformat(since))
           .group_by("target").len().sort(["len", "target"], descending=[True, False]).head(1).collect())
    return {"seconds": 0.0, "account": top["target"].item(), "received": top["len"].item()}


def w_explain(store: str, account: str, from_run: str, to_run: str) -> dict:
    _, seconds = _timed(api.explain, store, account, from_run=from_run, to_run=to_run, now=_now())
    return {"seconds": seconds}


def w_report(store: str, baseline: str, candidate: str, out: str) -> dict:
    """What `audit report compare` does: gather the comparison, render it, write the file."""
    from reports.render import render_compare

    def report() -> None:
        Path(out).write_text(render_compare(api.compare(store, baseline, candidate)), encoding="utf-8")
    _, seconds = _timed(report)
    return {"seconds": seconds, "bytes": _size(Path(out))}


def w_end_to_end(store: str, csv: str, as_of: str) -> dict:

    def pipeline() -> Any:
        api.ingest(store, csv, now=_now())
        snap = api.snapshot(store, as_of=datetime.fromisoformat(as_of), window=None, now=_now())
        return api.score(store, snap.snapshot_id, "network@2", now=_now())
    run, seconds = _timed(pipeline)
    return {"seconds": seconds, "accounts": run.accounts}


def w_gaming(store: str, run: str) -> dict:
    """`audit gaming RUN`: detection, the derived snapshot, the counterfactual run, the stored findings."""
    audit, seconds = _timed(api.gaming, store, run, now=_now())
    cf = api.get_run(store, audit.counterfactual_run_id) if audit.counterfactual_run_id else None
    return {"seconds": seconds, "detect_seconds": audit.seconds, "counterfactual_seconds": cf.seconds if cf else 0.0,
            "flagged": audit.points.flagged, "groups": len(audit.groups), "left_out": audit.left_out}


def w_bare_pipeline(csv: str, store: str) -> dict:
    from bench.baselines import bare_pipeline
    out, seconds = _timed(bare_pipeline, csv, store)
    return {"seconds": seconds, **out}


def w_iteration_bound(parquet: str, tries: int = 5) -> dict:
    """One PageRank power-iteration step (as csr_power_iteration does it) against the memory-bandwidth
    bound: a bare numpy read (sum) of the CSR's indices, data and indptr and of two dense vectors.
    Both on the same arrays in this process, each the best of TRIES."""
    import numpy as np
    import polars as pl

    from bench.baselines import DAMPING, transition_matrix
    frame = pl.read_parquet(parquet, columns=["source", "target", "kind"])
    p, dangling, _ = transition_matrix(frame)
    del frame
    n = p.shape[0]
    x = np.full(n, 1.0 / n)
    y = p @ x
    arrays = (p.indices, p.data, p.indptr, x, y)

    def bound() -> None:
        for a in arrays:
            a.sum()

    def step() -> float:
        new = DAMPING * (p @ x) + (DAMPING * x[dangling].sum() + 1.0 - DAMPING) / n
        return float(np.abs(new - x).sum())

    def best(fn: Callable) -> float:
        times = []
        for _ in range(tries):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)
    b, it, mv = best(bound), best(step), best(lambda: p @ x)
    return {"seconds": it, "bound_seconds": b, "matvec_seconds": mv, "bytes": sum(a.nbytes for a in arrays),
            "nnz": int(p.nnz), "accounts": int(n), "cpu_seconds": None}


def w_small_store(store: str, csv: str, as_of: str) -> dict:
    """A small store for the read command: one batch, a snapshot of everything, an activity@1 run."""
    api.ingest(store, csv, now=_now())
    snap = api.snapshot(store, as_of=datetime.fromisoformat(as_of), window=None, now=_now())
    run = api.score(store, snap.snapshot_id, "activity@1", now=_now())
    return {"seconds": 0.0, "run_id": run.run_id}


WORK = {f.__name__: f for f in (w_generate, w_bare_read_csv, w_ingest, w_snapshots, w_score,
                                w_bare_groupby, w_bare_power_iteration, w_networkx, w_compare,
                                w_top_target, w_explain, w_report, w_end_to_end, w_bare_pipeline, w_gaming,
                                w_iteration_bound, w_small_store)}


def measure(fn: Callable, **kwargs: Any) -> dict:
    """Run one measured function in a freshly spawned interpreter."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_measured, fn.__name__, kwargs).result()


def _size(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def copy_store(src: Path, dst: Path) -> Path:
    remove_store(dst)
    shutil.copyfile(src, dst)
    if _wal(src).exists():
        shutil.copyfile(_wal(src), _wal(dst))
    return dst


def remove_store(path: Path) -> None:
    for p in (path, _wal(path)):
        p.unlink(missing_ok=True)


# ---- repeats -------------------------------------------------------------------------------

class Repeats:
    """How each kind of step is repeated; every function returns the raw results of the repeats
    (stopping at the first failed one), for bench.harness.summarize."""

    def __init__(self, work: Path, repeats: int, process_repeats: int) -> None:
        self.work, self.n, self.process_n = work, max(1, repeats), max(1, process_repeats)

    def same(self, fn: Callable, **kwargs: Any) -> list[dict]:
        """Steps that change nothing (baselines on files, reads): the same call N times."""
        out: list[dict] = []
        for _ in range(self.n):
            out.append(measure(fn, **kwargs))
            if not ok(out[-1]):
                break
        return out

    def new_files(self, fn: Callable, key: str, target: Path, **kwargs: Any) -> list[dict]:
        """Steps that create a store or a DuckDB file (KEY names it): repeat 0 writes TARGET, which
        later steps use; each further repeat writes a new file beside it, removed afterwards."""
        out = [measure(fn, **{key: str(target)}, **kwargs)]
        for i in range(1, self.n):
            if not ok(out[-1]):
                break
            other = target.with_name(f"{target.stem}-repeat{i}{target.suffix}")
            remove_store(other)
            out.append(measure(fn, **{key: str(other)}, **kwargs))
            remove_store(other)
        return out

    def on_copies(self, fn: Callable, store: str, **kwargs: Any) -> list[dict]:
        """Steps that add to a store (snapshots, runs, counterfactual runs): repeat 0 on STORE
        itself (later steps use what it stored); each further repeat on a fresh copy of STORE as
        it was before repeat 0 (the copying is not timed)."""
        if self.n == 1:
            return [measure(fn, store=store, **kwargs)]
        template = copy_store(Path(store), self.work / "template.duckdb")
        scratch = self.work / "scratch.duckdb"
        try:
            out = [measure(fn, store=store, **kwargs)]
            for _ in range(1, self.n):
                if not ok(out[-1]):
                    break
                copy_store(template, scratch)
                out.append(measure(fn, store=str(scratch), **kwargs))
        finally:
            remove_store(template)
            remove_store(scratch)
        return out

    def process(self, argv: Callable[[int], list[str]], cwd: Path) -> list[dict]:
        """A whole command as a child process, N (process repeats) times: wall seconds, its own
        peak RSS (from wait4) and CPU seconds. ARGV(i) is repeat i's command line."""
        out = []
        err_path = self.work / "process.stderr"
        for i in range(self.process_n):
            with open(err_path, "wb") as err:
                t = time.perf_counter()
                proc = subprocess.Popen(argv(i), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                        cwd=cwd)
                _, status, usage = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - t
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            if code != 0:
                tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
                out.append({"failed": f"exit {code}: {' / '.join(tail)}", "command": argv(i)})
                break
            out.append({"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024,
                        "cpu_seconds": usage.ru_utime + usage.ru_stime})
        err_path.unlink(missing_ok=True)
        return out


def print_table(rows: list[Row]) -> None:
    """The table and its notes (bench_gaming prints its rows this way too)."""
    print("\n".join(format_table(rows)))
    print()
    print("\n".join(table_notes(rows)))


def audit_command() -> list[str]:
    """The installed `audit` console script, else the same entry point through this interpreter."""
    script = Path(sys.executable).with_name("audit")
    if script.exists():
        return [str(script)]
    found = shutil.which("audit")
    return [found] if found else [sys.executable, "-c", "import sys; from audit.cli import main; sys.exit(main())"]


# ---- the run -------------------------------------------------------------------------------

def needs(what: str) -> dict:
    return {"skipped": f"needs {what}, which did not run"}


def rate(d: dict) -> str:
    return f"{d['rows'] / d['seconds']:,.0f} rows/s" if ok(d) and d.get("seconds") else "-"


def cache_key(params: dict, seed: int) -> str:
    digest = hashlib.sha256((Path(__file__).parent / "generate.py").read_bytes()).hexdigest()[:8]
    return f"a{params['accounts']}-e{params['interactions']}-d{params['days']}-s{seed}-g{digest}"


def dataset(params: dict, seed: int) -> tuple[Path, Path, dict | None]:
    """The cached CSV and Parquet of PARAMS (generated first when missing: the generation's result)."""
    data = CACHE / cache_key(params, seed)
    csv, pq = data / "interactions.csv", data / "interactions.parquet"
    if csv.exists() and pq.exists():
        print(f"using cached {csv.relative_to(ROOT)}", flush=True)
        return csv, pq, None
    return csv, pq, measure(w_generate, csv=str(csv), parquet=str(pq), seed=seed, **params)


def say(r: Row) -> None:
    def one(d: dict) -> str:
        if not ok(d):
            return "skipped" if "skipped" in d else "FAILED" if "failed" in d else "-"
        v = fmt_value(r.unit, r.value(d))
        return v if not d.get("samples") or len(d["samples"]) == 1 else \
            f"{v} (median {fmt_value(r.unit, r.median_value(d))}, {len(d['samples'])} runs)"
    print(f"  {r.step}: {one(r.audit)}" + (f"; {r.baseline} {one(r.base)}" if r.base else ""), flush=True)


S = summarize
TINY_ROWS = 5


def run(params: dict, seed: int, rep: Repeats) -> tuple[list[Row], dict[str, dict]]:
    """Every measurement, in order (later steps use the store the earlier ones built); the rows
    and the results of the steps the scaling table shows, at this size."""
    work = rep.work
    n_rows, days = params["interactions"], params["days"]
    csv, pq, gen = dataset(params, seed)
    rows: list[Row] = []
    if gen is not None:
        rows.append(Row(f"generate {n_rows:,} rows", gen, note=f"generated at {rate(gen)} (writing excluded)"))

    store = str(work / "audit.duckdb")
    ing = S(rep.new_files(w_ingest, "store", Path(store), path=str(csv)))
    bare = S(rep.new_files(w_bare_read_csv, "db", work / "interactions.duckdb", path=str(csv)))
    rows.append(Row(f"ingest+validate CSV ({n_rows:,} rows)", ing, "bare_read_csv", bare,
                    goal="<= 2x, <= 2 GiB", check=at_most_ratio_and_peak(2.0, 2048),
                    note=f"audit {rate(ing)}, bare {rate(bare)}"))
    say(rows[-1])
    hig = S(rep.new_files(w_ingest, "store", work / "higgs.duckdb", path=str(HIGGS), fmt="snap-higgs"))
    hbare = S(rep.new_files(w_bare_read_csv, "db", work / "higgs-bare.duckdb", path=str(HIGGS), header=False,
                            delim=" "))
    rows.append(Row("ingest Higgs file (snap-higgs)", hig, "bare_read_csv", hbare,
                    note=f"audit {rate(hig)}, bare {rate(hbare)}"))
    say(rows[-1])

    end = START + timedelta(days=days)
    n_snap = min(30, days)
    as_ofs = [(end - timedelta(days=n_snap - 1 - k)).isoformat() for k in range(n_snap)]
    snaps = S(rep.on_copies(w_snapshots, store, as_ofs=as_ofs, window_days=WINDOW.days)) if ok(ing) \
        else needs("ingest")
    rows.append(Row(f"{n_snap} daily snapshots, 7-day window", snaps, note=(
        f"{snaps['seconds'] / n_snap * 1000:.0f} ms each; the last holds {snaps['interactions'][-1]:,} "
        "interactions" if ok(snaps) else "")))
    say(rows[-1])
    size = {"bytes": _size(Path(store))} if ok(snaps) else snaps
    rows.append(Row("store size: batch + snapshots", size, "interactions table alone",
                    {"bytes": bare["bytes"]} if ok(bare) else bare, unit="MiB", key="bytes",
                    goal="<= 1.2x", check=at_most_ratio(1.2)))
    full = S(rep.on_copies(w_snapshots, store, as_ofs=[end.isoformat()], window_days=None)) if ok(snaps) \
        else needs("snapshots")
    rows.append(Row("snapshot of everything", full))
    say(rows[-1])

    s_all = full["ids"][0] if ok(full) else None
    act = S(rep.on_copies(w_score, store, snapshot=s_all, algorithm="activity@1")) if s_all else needs("snapshot")
    gb = S(rep.same(w_bare_groupby, parquet=str(pq)))
    rows.append(Row(f"score activity@1 ({n_rows:,} rows)", act, "bare_groupby", gb,
                    goal="<= 1.5x", check=at_most_ratio(1.5)))
    say(rows[-1])
    net = S(rep.on_copies(w_score, store, snapshot=s_all, algorithm="network@2")) if s_all else needs("snapshot")
    pit_raw = rep.same(w_bare_power_iteration, parquet=str(pq))
    pit = S(pit_raw)
    rows.append(Row(f"score network@2 ({n_rows:,} rows)", net, "csr power iteration", pit,
                    goal="<= 2x", check=at_most_ratio(2.0), note=(
                        f"bare: {pit['iterations']} iterations to L1 < {pit['tol']:g}, {pit['accounts']:,} accounts, "
                        f"{pit['edges']:,} distinct edges; ids + CSR built in {pit['build_seconds']:.2f} s "
                        "more" if ok(pit) else "")))
    say(rows[-1])
    if ok(pit):   # the same work from the same interactions: map ids, build the CSR, iterate
        built = S([{**r, "seconds": r["seconds"] + r["build_seconds"], "cpu_seconds": None} for r in pit_raw])
        rows.append(Row("score network@2 vs ids + CSR + iteration", net, "bare_pagerank", built))
        say(rows[-1])
    ib_raw = rep.same(w_iteration_bound, parquet=str(pq))
    it = S(ib_raw)
    bound = S([{**r, "seconds": r["bound_seconds"]} for r in ib_raw]) if ok(it) else it
    rows.append(Row("one PageRank iteration (scipy CSR)", it, "memory-bandwidth bound", bound,
                    goal="<= 3x (stretch)", check=at_most_ratio(3.0), note=(
                        f"CSR of {it['accounts']:,} accounts, {it['nnz']:,} non-zeros; the bound reads "
                        f"{it['bytes'] / 2**20:,.1f} MiB (indices, data, indptr, two dense vectors) at "
                        f"{it['bytes'] / bound['seconds'] / 2**30:.1f} GiB/s; the mat-vec alone "
                        f"{fmt_value('s', it['matvec_seconds'])}, the whole step {fmt_value('s', it['seconds'])} "
                        "(each the best of 5 tries per run, so the two may come from different runs)" if ok(it) and ok(bound) else "")))
    say(rows[-1])
    nx = S(rep.same(w_networkx, parquet=str(pq), n_edges=NX_SAMPLE))
    per = scaled(net, "per_row", 1 / n_rows)
    nx_per = scaled(nx, "per_row", 1 / nx["interactions"]) if ok(nx) else nx
    rows.append(Row("network@2 per interaction", per, "networkx.pagerank", nx_per,
                    unit="us", key="per_row", goal="<= 0.02x (50x faster)", check=at_most_ratio(0.02), note=(
                        f"networkx sampled the first {nx['interactions']:,} interactions ({nx['nodes']:,} nodes, "
                        f"{nx['edges']:,} weighted edges) in {nx['seconds']:.2f} s, graph building "
                        f"{nx['build_seconds']:.2f} s of it; audit scored all {n_rows:,}" if ok(nx) else "")))
    say(rows[-1])

    runs = ok(act) and ok(net)
    cmp = S(rep.same(w_compare, store=store, baseline=act["run_id"], candidate=net["run_id"])) if runs \
        else needs("both scoring runs")
    rows.append(Row("compare activity@1 -> network@2", cmp, goal="<= 1 s", check=at_most_seconds(1.0),
                    note=f"{net['accounts']:,} accounts, all metrics and the default segments" if ok(cmp) else ""))
    say(rows[-1])

    if ok(snaps) and n_snap >= 2:
        s_old, s_new = snaps["ids"][-2], snaps["ids"][-1]
        top = measure(w_top_target, parquet=str(pq), since=(end - WINDOW).isoformat())
        r1 = measure(w_score, store=store, snapshot=s_old, algorithm="activity@1")
        r2 = S(rep.on_copies(w_score, store, snapshot=s_new, algorithm="network@2"))
        pair = dict(account=top["account"], from_run=r1.get("run_id"), to_run=r2.get("run_id"))
        computed = S(rep.on_copies(w_explain, store, **pair)) if ok(r1) and ok(r2) else needs("the two runs")
        stored = computed
        for snap, algorithm in ((s_old, "network@2"), (s_new, "activity@1")):  # counterfactuals
            if ok(stored):  # a lookup when explain stored them already
                cf = measure(w_score, store=store, snapshot=snap, algorithm=algorithm, counterfactual=True)
                stored = cf if not ok(cf) else stored
        stored = S(rep.same(w_explain, store=store, **pair)) if ok(stored) else stored
        who = f"account {top['account']} ({top['received']:,} interactions received in the last 7 days)"
    else:
        r2 = computed = stored = needs("two snapshots")
        who = ""
    rows.append(Row("explain, counterfactuals computed", computed, "score network@2 (7-day snapshot)", r2,
                    goal="<= 2.5x", check=at_most_ratio(2.5),
                    note=f"{who}, from activity@1 on day {days - 1} to network@2 on day {days}" if who else ""))
    say(rows[-1])
    rows.append(Row("explain, counterfactuals stored", stored, goal="<= 0.2 s", check=at_most_seconds(0.2),
                    note="the most-engaged account, as above" if who else ""))
    say(rows[-1])

    rep_ = S(rep.same(w_report, store=store, baseline=act["run_id"], candidate=net["run_id"],
                      out=str(work / "compare.html"))) if runs else needs("both scoring runs")
    rows.append(Row("report compare", rep_, goal="<= 10 s", check=at_most_seconds(10.0),
                    note=f"{rep_['bytes']:,} bytes" if ok(rep_) else ""))
    say(rows[-1])

    e2e = S(rep.new_files(w_end_to_end, "store", work / "e2e.duckdb", csv=str(csv), as_of=end.isoformat()))
    remove_store(work / "e2e.duckdb")
    bp = S(rep.new_files(w_bare_pipeline, "store", work / "bare-e2e.duckdb", csv=str(csv)))
    remove_store(work / "bare-e2e.duckdb")
    rows.append(Row("end to end: ingest, snapshot, network@2", e2e, "bare_pipeline", bp,
                    goal="<= 2.5x, <= 3 GiB", check=at_most_ratio_and_peak(2.5, 3072)))
    say(rows[-1])

    rows += process_rows(rep, seed)
    steps = {"ingest+validate CSV": ing, "snapshot of everything": full, "score activity@1": act,
             "score network@2": net, "compare activity@1 -> network@2": cmp}
    return rows, steps


def process_rows(rep: Repeats, seed: int) -> list[Row]:
    """Whole commands as a user runs them, start-up included: `audit --help` (beside a bare
    interpreter start), a read command on a small store, a 5-row ingest into a new store."""
    from bench.generate import generate, write
    work, audit = rep.work, audit_command()
    shown = " ".join(audit)
    shown = shown.replace(str(ROOT) + "/", "") if shown.startswith(str(ROOT)) else shown
    tiny = write(generate(10, TINY_ROWS, 1, seed=seed), work / "tiny.csv")
    small = work / "small.duckdb"
    made = measure(w_small_store, store=str(small), csv=str(tiny), as_of=(START + timedelta(days=1)).isoformat())
    bare = S(rep.process(lambda i: [sys.executable, "-c", "pass"], work))
    rows = [Row("`audit --help` (whole process)", S(rep.process(lambda i: audit + ["--help"], work)),
                "python -c pass", bare, goal="<= 0.3 s", check=at_most_seconds(0.3),
                note=f"the command: {shown} --help; the baseline is the bare interpreter start, which "
                     "the two rows below include too")]
    say(rows[-1])
    runs = S(rep.process(lambda i: audit + ["--store", str(small), "runs"], work)) if ok(made) else made
    rows.append(Row("`audit --store SMALL runs` (whole process)", runs, goal="<= 0.3 s",
                    check=at_most_seconds(0.3),
                    note=f"a store of {TINY_ROWS} interactions, one snapshot, one activity@1 run" if ok(made) else ""))
    say(rows[-1])

    def fresh(i: int) -> list[str]:
        remove_store(work / f"tiny-{i}.duckdb")
        return audit + ["--store", str(work / f"tiny-{i}.duckdb"), "ingest", str(tiny)]
    ingest = S(rep.process(fresh, work))
    for i in range(rep.process_n):
        remove_store(work / f"tiny-{i}.duckdb")
    rows.append(Row(f"`audit ingest` {TINY_ROWS}-row file (whole process)", ingest, goal="<= 1.5 s", check=at_most_seconds(1.5), note="each run into a new store"))
    say(rows[-1])
    return rows


# ---- the scaling table ---------------------------------------------------------------------

SCALING_STEPS = ["ingest+validate CSV", "snapshot of everything", "score activity@1", "score network@2",
                 "compare activity@1 -> network@2"]
SCALING_SIZES = [100_000, 1_000_000, 10_000_000]


def scaling_params(interactions: int, days: int) -> dict:
    return {"accounts": max(2, interactions // 10), "interactions": interactions, "days": days}


def scaling_size(params: dict, seed: int, rep: Repeats) -> dict[str, dict]:
    """The scaling table's steps at one size, on a store of their own (removed afterwards)."""
    n = params["interactions"]
    print(f"scaling: {size_label(n)} interactions, {params['accounts']:,} accounts, {params['days']} days",
          flush=True)
    csv, _, gen = dataset(params, seed)
    if gen is not None and not ok(gen):
        return {step: gen for step in SCALING_STEPS}
    store = rep.work / f"scale-{n}.duckdb"
    end = START + timedelta(days=params["days"])
    try:
        ing = S(rep.new_files(w_ingest, "store", store, path=str(csv)))
        full = S(rep.on_copies(w_snapshots, str(store), as_ofs=[end.isoformat()], window_days=None)) if ok(ing) \
            else needs("ingest")
        snap = full["ids"][0] if ok(full) else None
        act = S(rep.on_copies(w_score, str(store), snapshot=snap, algorithm="activity@1")) if snap \
            else needs("snapshot")
        net = S(rep.on_copies(w_score, str(store), snapshot=snap, algorithm="network@2")) if snap \
            else needs("snapshot")
        cmp = S(rep.same(w_compare, store=str(store), baseline=act["run_id"], candidate=net["run_id"])) \
            if ok(act) and ok(net) else needs("both scoring runs")
    finally:
        remove_store(store)
    out = dict(zip(SCALING_STEPS, (ing, full, act, net, cmp)))
    for step, d in out.items():
        print(f"  {step}: " + (f"{d['seconds']:.3f} s" if ok(d) else "skipped" if "skipped" in d else "FAILED"),
              flush=True)
    return out


def scaling(sizes: list[int], days: int, seed: int, rep: Repeats, reuse: dict[int, dict[str, dict]]) -> \
        dict[int, dict[str, dict]]:
    """Each size's steps, measured here unless REUSE holds them (the goals table's own run at that size)."""
    out = {}
    for n in sizes:
        if n in reuse:
            print(f"scaling: {size_label(n)} interactions: the goals table's run", flush=True)
            out[n] = reuse[n]
        else:
            out[n] = scaling_size(scaling_params(n, days), seed, rep)
    return out


# ---- main ----------------------------------------------------------------------------------

def _json_row(r: Row) -> dict:
    return {**{k: v for k, v in asdict(r).items() if k != "check"}, "ratio": r.ratio(),
            "median_ratio": r.median_ratio(), "cpu_ratio": r.cpu_ratio(), "spread": r.spread(), "met": r.met(),
            "noisy": r.noisy()}


def _sizes(text: str) -> list[int]:
    sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 20:
        raise argparse.ArgumentTypeError("a comma-separated list of interaction counts, each >= 20")
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=FULL["accounts"])
    p.add_argument("--interactions", type=int, default=FULL["interactions"])
    p.add_argument("--days", type=int, default=FULL["days"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="100k accounts, 1M interactions, 7 days; no scaling table")
    p.add_argument("--repeats", type=int, default=3, help="runs of each measured step (default 3)")
    p.add_argument("--process-repeats", type=int, default=5,
                   help="runs of each whole-command row (`audit --help`, ...; default 5)")
    p.add_argument("--scaling", action="store_true", help="only the scaling table")
    p.add_argument("--no-scaling", action="store_true", help="the goals table without the scaling table")
    p.add_argument("--scaling-sizes", type=_sizes, default=None, metavar="N,N,N",
                   help="interactions per size (accounts = N/10); default 100000,1000000,10000000")
    p.add_argument("--keep", action="store_true", help="keep the stores in bench/.cache/work")
    a = p.parse_args(argv)
    if a.scaling and a.no_scaling:
        p.error("--scaling and --no-scaling exclude each other")
    params = QUICK if a.quick else {"accounts": a.accounts, "interactions": a.interactions, "days": a.days}
    sizes = a.scaling_sizes or SCALING_SIZES
    # the scaling table: alone with --scaling; after the goals table in the default full run or
    # when sizes are given; never with --no-scaling
    with_scaling = a.scaling or (not a.no_scaling and (a.scaling_sizes is not None or (params == FULL and not a.quick)))
    work = CACHE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rep = Repeats(work, a.repeats, a.process_repeats)
    info = machine()
    for line in format_machine(info):
        print(line)
    if not a.scaling:
        print(f"bench: {params['accounts']:,} accounts, {params['interactions']:,} interactions, "
              f"{params['days']} days, seed {a.seed}; {rep.n} runs per step, {rep.process_n} per whole command",
              flush=True)
    t = time.perf_counter()
    rows: list[Row] = []
    steps: dict[str, dict] = {}
    if not a.scaling:
        rows, steps = run(params, a.seed, rep)
    days = min(30, params["days"])
    reuse = {params["interactions"]: steps} if steps and params == scaling_params(params["interactions"], days) \
        else {}
    table = scaling(sizes, days, a.seed, rep, reuse) if with_scaling else {}
    load_end = load_average()

    print()
    for line in format_machine(info):
        print(line)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in load_end)}")
    if rows:
        print()
        print_table(rows)
        print("\nratio: audit / baseline from the mins of the runs; median ratio: from the medians; spread: how "
              f"far the median is above the min (> {NOISE:.0%}: noisy)")
    if table:
        print(f"\nscaling ({days} days, accounts = interactions / 10; seconds are the min of {rep.n} run{'s' if rep.n > 1 else ''}, "
              f"'!' marks a noisy one; us/i: microseconds per interaction):\n")
        print("\n".join(format_scaling(sizes, SCALING_STEPS, table)))
    spreads = [(r.step, r.spread()) for r in rows]
    spreads += [(f"scaling {size_label(n)} {step}", Row(step, d).spread()) for n, by in table.items()
                if n not in reuse for step, d in by.items()]
    reasons = noisy_reasons(info["load_start"][0], info["cores"] or 1, spreads)
    print(f"\nrun: {'NOISY: ' + '; '.join(reasons) if reasons else 'not noisy'} "
          f"(load average at end {load_end[0]:.2f})")
    print(f"total {time.perf_counter() - t:.0f} s")

    failed = [r for r in rows if "failed" in r.audit or "failed" in r.base]
    failed_scaling = [(n, s, d) for n, by in table.items() for s, d in by.items() if "failed" in d]
    for r in failed:
        for d in (r.audit, r.base):
            if "traceback" in d:
                print(f"\n{r.step}:\n{d['traceback']}", file=sys.stderr)
    for n, s, d in failed_scaling:
        print(f"\nscaling {size_label(n)} {s}:\n{d.get('traceback', d['failed'])}", file=sys.stderr)
    name = "scaling" if a.scaling else cache_key(params, a.seed)
    out = CACHE / f"results-{name}.json"
    out.write_text(json.dumps({
        "params": params, "seed": a.seed, "repeats": rep.n, "process_repeats": rep.process_n,
        "machine": {**info, "load_end": load_end}, "noisy": reasons,
        "rows": [_json_row(r) for r in rows],
        "scaling": {"days": days, "sizes": sizes, "steps": {str(n): by for n, by in table.items()}},
    }, indent=1, sort_keys=True, default=str))
    print(f"results in {out.relative_to(ROOT)}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed or failed_scaling else 0


if __name__ == "__main__":
    sys.exit(main())
