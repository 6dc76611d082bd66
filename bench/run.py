"""The benchmark: audit's steps against bare baselines, one fresh process per measurement.

    python -m bench.run [--accounts 1000000 --interactions 10000000 --days 30] [--quick]

Each measured call runs in a new spawned interpreter, so its peak RSS (VmHWM) is its own.
A step that needs an earlier step which failed prints "skipped (needs ...)"; the baselines
always run. Exit code 1 when a step failed, 0 otherwise (unmet goals included).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from audit import api

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
    from bench.baselines import DAMPING, MAX_ITER, TOL, csr_power_iteration, transition_matrix
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
    _, seconds = _timed(api.compare, store, baseline, candidate)
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


WORK = {f.__name__: f for f in (w_generate, w_bare_read_csv, w_ingest, w_snapshots, w_score,
                                w_bare_groupby, w_bare_power_iteration, w_networkx, w_compare,
                                w_top_target, w_explain, w_report, w_end_to_end, w_bare_pipeline, w_gaming)}


def measure(fn: Callable, **kwargs: Any) -> dict:
    """Run one measured function in a freshly spawned interpreter."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_measured, fn.__name__, kwargs).result()


def _size(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


# ---- the table -----------------------------------------------------------------------------

@dataclass
class Row:
    step: str
    audit: dict = field(default_factory=dict)
    baseline: str = ""
    base: dict = field(default_factory=dict)
    unit: str = "s"
    key: str = "seconds"          # which field of the two dicts is compared
    goal: str = ""
    check: Callable[[float | None, dict], bool | None] | None = None
    note: str = ""

    def value(self, d: dict) -> float | None:
        return None if "skipped" in d or "failed" in d else d.get(self.key)

    def ratio(self) -> float | None:
        a, b = self.value(self.audit), self.value(self.base)
        return a / b if a is not None and b else None

    def cpu_ratio(self) -> float | None:
        """Like ratio, on CPU seconds: steadier than wall time when the machine is shared."""
        if (self.key != "seconds" or self.ratio() is None or not self.base.get("cpu_seconds")
                or self.audit.get("cpu_seconds") is None):
            return None
        return self.audit["cpu_seconds"] / self.base["cpu_seconds"]

    def met(self) -> bool | None:
        if self.check is None or self.value(self.audit) is None:
            return None
        return self.check(self.ratio(), self.audit)


def at_most_ratio(limit: float) -> Callable:
    return lambda ratio, _: None if ratio is None else ratio <= limit


def at_most_seconds(limit: float) -> Callable:
    return lambda _, audit: audit["seconds"] <= limit


def _fmt(row: Row, d: dict) -> str:
    if not d:
        return ""
    if "skipped" in d:
        return "skipped"
    if "failed" in d:
        return "FAILED"
    v = d.get(row.key)
    if v is None:
        return ""
    return {"s": f"{v:.3f} s", "us": f"{v * 1e6:.3f} us", "MiB": f"{v / 2**20:.1f} MiB"}[row.unit]


def _peak(d: dict) -> str:
    return f"{d['peak_mib']:.0f}" if "peak_mib" in d and "skipped" not in d else ""


def print_table(rows: list[Row]) -> None:
    head = ["step", "audit", "peak MiB", "baseline", "baseline", "peak MiB", "ratio", "cpu ratio", "goal",
            "met?"]
    body = []
    for r in rows:
        ratio, cpu = r.ratio(), r.cpu_ratio()
        met = {True: "yes", False: "NO", None: "-"}[r.met()]
        body.append([r.step, _fmt(r, r.audit), _peak(r.audit), r.baseline, _fmt(r, r.base), _peak(r.base),
                     "" if ratio is None else f"{ratio:.2f}x", "" if cpu is None else f"{cpu:.2f}x",
                     r.goal, met if r.goal else ""])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    print(line(head))
    print(line(["-" * w for w in widths]))
    for r, cells in zip(rows, body):
        print(line(cells))
    print()
    for r in rows:
        for label, d in (("audit", r.audit), (r.baseline or "baseline", r.base)):
            if "skipped" in d:
                print(f"- {r.step}: {label} skipped (not available: {d['skipped']})")
            elif "failed" in d:
                print(f"- {r.step}: {label} FAILED: {d['failed']}")
        if r.note:
            print(f"- {r.step}: {r.note}")


# ---- the run -------------------------------------------------------------------------------

def ok(d: dict) -> bool:
    return bool(d) and "skipped" not in d and "failed" not in d


def needs(what: str) -> dict:
    return {"skipped": f"needs {what}, which did not run"}


def rate(d: dict) -> str:
    return f"{d['rows'] / d['seconds']:,.0f} rows/s" if ok(d) and d.get("seconds") else "-"


def cache_key(params: dict, seed: int) -> str:
    digest = hashlib.sha256((Path(__file__).parent / "generate.py").read_bytes()).hexdigest()[:8]
    return f"a{params['accounts']}-e{params['interactions']}-d{params['days']}-s{seed}-g{digest}"


def run(params: dict, seed: int, work: Path) -> list[Row]:
    """Every measurement, in order (later steps use the store the earlier ones built)."""
    n_rows, days = params["interactions"], params["days"]
    data = CACHE / cache_key(params, seed)
    csv, pq = data / "interactions.csv", data / "interactions.parquet"
    rows: list[Row] = []
    if csv.exists() and pq.exists():
        print(f"using cached {csv}", flush=True)
    else:
        gen = measure(w_generate, csv=str(csv), parquet=str(pq), seed=seed, **params)
        rows.append(Row(f"generate {n_rows:,} rows", gen, note=f"generated at {rate(gen)} (writing excluded)"))
    say = lambda r: print(f"  {r.step}: {_fmt(r, r.audit) or '-'}", flush=True)  # noqa: E731

    store = str(work / "audit.duckdb")
    ing = measure(w_ingest, store=store, path=str(csv))
    bare = measure(w_bare_read_csv, path=str(csv), db=str(work / "interactions.duckdb"))
    rows.append(Row(f"ingest+validate CSV ({n_rows:,} rows)", ing, "bare_read_csv", bare,
                    note=f"audit {rate(ing)}, bare {rate(bare)}"))
    say(rows[-1])
    hig = measure(w_ingest, store=str(work / "higgs.duckdb"), path=str(HIGGS), fmt="snap-higgs")
    hbare = measure(w_bare_read_csv, path=str(HIGGS), db=str(work / "higgs-bare.duckdb"), header=False, delim=" ")
    rows.append(Row("ingest Higgs file (snap-higgs)", hig, "bare_read_csv", hbare,
                    note=f"audit {rate(hig)}, bare {rate(hbare)}"))
    say(rows[-1])

    end = START + timedelta(days=days)
    n_snap = min(30, days)
    as_ofs = [(end - timedelta(days=n_snap - 1 - k)).isoformat() for k in range(n_snap)]
    snaps = measure(w_snapshots, store=store, as_ofs=as_ofs, window_days=WINDOW.days) if ok(ing) else needs("ingest")
    rows.append(Row(f"{n_snap} daily snapshots, 7-day window", snaps, note=(
        f"{snaps['seconds'] / n_snap * 1000:.0f} ms each; the last holds {snaps['interactions'][-1]:,} "
        "interactions" if ok(snaps) else "")))
    say(rows[-1])
    size = {"bytes": _size(Path(store))} if ok(snaps) else snaps
    rows.append(Row("store size: batch + snapshots", size, "interactions table alone",
                    {"bytes": bare["bytes"]} if ok(bare) else bare, unit="MiB", key="bytes",
                    goal="<= 1.2x", check=at_most_ratio(1.2)))
    full = measure(w_snapshots, store=store, as_ofs=[end.isoformat()], window_days=None) if ok(snaps) \
        else needs("snapshots")
    rows.append(Row("snapshot of everything", full))
    say(rows[-1])

    s_all = full["ids"][0] if ok(full) else None
    act = measure(w_score, store=store, snapshot=s_all, algorithm="activity@1") if s_all else needs("snapshot")
    gb = measure(w_bare_groupby, parquet=str(pq))
    rows.append(Row(f"score activity@1 ({n_rows:,} rows)", act, "bare_groupby", gb,
                    goal="<= 1.5x", check=at_most_ratio(1.5)))
    say(rows[-1])
    net = measure(w_score, store=store, snapshot=s_all, algorithm="network@2") if s_all else needs("snapshot")
    pit = measure(w_bare_power_iteration, parquet=str(pq))
    rows.append(Row(f"score network@2 ({n_rows:,} rows)", net, "csr power iteration", pit,
                    goal="<= 1.5x", check=at_most_ratio(1.5), note=(
                        f"bare: {pit['iterations']} iterations to L1 < {pit['tol']:g}, {pit['accounts']:,} accounts, "
                        f"{pit['edges']:,} distinct edges; ids + CSR built in {pit['build_seconds']:.2f} s "
                        "more" if ok(pit) else "")))
    say(rows[-1])
    if ok(pit):   # the same work from the same interactions: map ids, build the CSR, iterate
        built = {**pit, "seconds": pit["seconds"] + pit["build_seconds"]}
        rows.append(Row("score network@2 vs ids + CSR + iteration", net, "bare_pagerank", built,
                        goal="<= 1.5x", check=at_most_ratio(1.5)))
        say(rows[-1])
    nx = measure(w_networkx, parquet=str(pq), n_edges=NX_SAMPLE)
    per = {**net, "per_row": net["seconds"] / n_rows} if ok(net) else net
    rows.append(Row("network@2 per interaction", per, "networkx.pagerank", {**nx, "per_row": nx.get("per_interaction")},
                    unit="us", key="per_row", goal="<= 0.02x (50x faster)", check=at_most_ratio(0.02), note=(
                        f"networkx sampled the first {nx['interactions']:,} interactions ({nx['nodes']:,} nodes, "
                        f"{nx['edges']:,} weighted edges) in {nx['seconds']:.2f} s, graph building "
                        f"{nx['build_seconds']:.2f} s of it; audit scored all {n_rows:,}" if ok(nx) else "")))
    say(rows[-1])

    runs = ok(act) and ok(net)
    cmp = measure(w_compare, store=store, baseline=act["run_id"], candidate=net["run_id"]) if runs \
        else needs("both scoring runs")
    rows.append(Row("compare activity@1 -> network@2", cmp, goal="<= 1 s", check=at_most_seconds(1.0)))
    say(rows[-1])

    if ok(snaps) and n_snap >= 2:
        s_old, s_new = snaps["ids"][-2], snaps["ids"][-1]
        top = measure(w_top_target, parquet=str(pq), since=(end - WINDOW).isoformat())
        r1 = measure(w_score, store=store, snapshot=s_old, algorithm="activity@1")
        r2 = measure(w_score, store=store, snapshot=s_new, algorithm="network@2")
        pair = dict(store=store, account=top["account"], from_run=r1.get("run_id"), to_run=r2.get("run_id"))
        computed = measure(w_explain, **pair) if ok(r1) and ok(r2) else needs("the two runs")
        stored = computed
        for snap, algorithm in ((s_old, "network@2"), (s_new, "activity@1")):  # counterfactuals
            if ok(stored):  # a lookup when explain stored them already
                cf = measure(w_score, store=store, snapshot=snap, algorithm=algorithm, counterfactual=True)
                stored = cf if not ok(cf) else stored
        stored = measure(w_explain, **pair) if ok(stored) else stored
        who = f"account {top['account']} ({top['received']:,} interactions received in the last 7 days)"
    else:
        r2 = computed = stored = needs("two snapshots")
        who = ""
    rows.append(Row("explain, counterfactuals computed", computed, "score network@2 (7-day snapshot)", r2,
                    goal="<= 2.5x", check=at_most_ratio(2.5),
                    note=f"{who}, from activity@1 on day {days - 1} to network@2 on day {days}" if who else ""))
    say(rows[-1])
    rows.append(Row("explain, counterfactuals stored", stored, goal="<= 0.2 s", check=at_most_seconds(0.2)))
    say(rows[-1])

    rep = measure(w_report, store=store, baseline=act["run_id"], candidate=net["run_id"],
                  out=str(work / "compare.html")) if runs else needs("both scoring runs")
    rows.append(Row("report compare", rep, goal="<= 10 s", check=at_most_seconds(10.0),
                    note=f"{rep['bytes']:,} bytes" if ok(rep) else ""))
    say(rows[-1])

    e2e = measure(w_end_to_end, store=str(work / "e2e.duckdb"), csv=str(csv), as_of=end.isoformat())
    bp = measure(w_bare_pipeline, csv=str(csv), store=str(work / "bare-e2e.duckdb"))
    rows.append(Row("end to end: ingest, snapshot, network@2", e2e, "bare_pipeline", bp,
                    goal="<= 2.5x, <= 3 GiB",
                    check=lambda ratio, a: None if ratio is None else ratio <= 2.5 and a["peak_mib"] <= 3072))
    say(rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=FULL["accounts"])
    p.add_argument("--interactions", type=int, default=FULL["interactions"])
    p.add_argument("--days", type=int, default=FULL["days"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="100k accounts, 1M interactions, 7 days")
    p.add_argument("--keep", action="store_true", help="keep the stores in bench/.cache/work")
    a = p.parse_args(argv)
    params = QUICK if a.quick else {"accounts": a.accounts, "interactions": a.interactions, "days": a.days}
    work = CACHE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"bench: {params['accounts']:,} accounts, {params['interactions']:,} interactions, "
          f"{params['days']} days, seed {a.seed}", flush=True)
    t = time.perf_counter()
    rows = run(params, a.seed, work)
    print()
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - t:.0f} s")
    failed = [r for r in rows if "failed" in r.audit or "failed" in r.base]
    for r in failed:
        for d in (r.audit, r.base):
            if "traceback" in d:
                print(f"\n{r.step}:\n{d['traceback']}", file=sys.stderr)
    out = CACHE / f"results-{cache_key(params, a.seed)}.json"
    out.write_text(json.dumps({"params": params, "seed": a.seed, "rows": [
        {**{k: v for k, v in asdict(r).items() if k != "check"}, "ratio": r.ratio(), "cpu_ratio": r.cpu_ratio(),
         "met": r.met()}
        for r in rows]}, indent=1, sort_keys=True, default=str))
    print(f"results in {out.relative_to(ROOT)}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
