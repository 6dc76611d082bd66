"""The benchmark's pure parts: repeats summarised (min, median, spread), the noisy verdict, the
machine header, the goals table and the scaling table. Nothing here times or spawns anything;
tests/test_bench_harness.py checks it on small inputs."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

NOISE = 0.25  # a step whose median is more than 25% above its min is noisy


# ---- repeats --------------------------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not xs:
        raise ValueError("median of no values")
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def spread(xs: Sequence[float]) -> float | None:
    """How far the median is above the min, as a fraction of the min (None without a positive min)."""
    if not xs or min(xs) <= 0:
        return None
    return (median(xs) - min(xs)) / min(xs)


def noisy(xs: Sequence[float], limit: float = NOISE) -> bool:
    """Min and median differ by more than LIMIT (a fraction of the min)."""
    s = spread(xs)
    return s is not None and s > limit


def summarize(results: Sequence[dict], key: str = "seconds") -> dict:
    """One step's repeats as one dict: the first repeat's fields (ids, counts: later steps use
    what it built), KEY = the min over the repeats, `samples` = every repeat's KEY in order,
    `cpu_seconds` = the min, `peak_mib` = the max. A skipped or failed repeat is the result."""
    if not results:
        return {"skipped": "no repeats"}
    for r in results:
        if "skipped" in r or "failed" in r:
            return r
    out = dict(results[0])
    values = [r[key] for r in results]
    out[key] = min(values)
    out["samples"] = values
    cpu = [r["cpu_seconds"] for r in results if r.get("cpu_seconds") is not None]
    if cpu:
        out["cpu_seconds"] = min(cpu)
    peaks = [r["peak_mib"] for r in results if "peak_mib" in r]
    if peaks:
        out["peak_mib"] = max(peaks)
    return out


def scaled(d: dict, key: str, factor: float, source: str = "seconds") -> dict:
    """D with KEY = D[SOURCE] * FACTOR, its samples scaled the same way (seconds per interaction)."""
    if "skipped" in d or "failed" in d:
        return d
    out = {**d, key: d[source] * factor}
    if "samples" in d:
        out["samples"] = [v * factor for v in d["samples"]]
    return out


def ok(d: dict) -> bool:
    return bool(d) and "skipped" not in d and "failed" not in d


# ---- the goals table ------------------------------------------------------------------------

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
        """The min over the repeats (the only value when there are no samples)."""
        return d.get(self.key) if ok(d) else None

    def median_value(self, d: dict) -> float | None:
        if not ok(d) or d.get(self.key) is None:
            return None
        return median(d["samples"]) if d.get("samples") else d[self.key]

    def ratio(self) -> float | None:
        """audit / baseline, from the mins."""
        a, b = self.value(self.audit), self.value(self.base)
        return a / b if a is not None and b else None

    def median_ratio(self) -> float | None:
        a, b = self.median_value(self.audit), self.median_value(self.base)
        return a / b if a is not None and b else None

    def cpu_ratio(self) -> float | None:
        """Like ratio, on CPU seconds: steadier than wall time when the machine is shared."""
        if (self.key != "seconds" or self.ratio() is None or not self.base.get("cpu_seconds")
                or self.audit.get("cpu_seconds") is None):
            return None
        return self.audit["cpu_seconds"] / self.base["cpu_seconds"]

    def spread(self) -> float | None:
        """The larger spread (median over min) of the two sides."""
        s = [spread(d["samples"]) for d in (self.audit, self.base) if ok(d) and d.get("samples")]
        s = [x for x in s if x is not None]
        return max(s) if s else None

    def noisy(self) -> bool:
        s = self.spread()
        return s is not None and s > NOISE

    def met(self) -> bool | None:
        if self.check is None or self.value(self.audit) is None:
            return None
        return self.check(self.ratio(), self.audit)


def at_most_ratio(limit: float) -> Callable:
    return lambda ratio, _: None if ratio is None else ratio <= limit


def at_most_seconds(limit: float) -> Callable:
    return lambda _, audit: audit["seconds"] <= limit


def at_most_ratio_and_peak(limit: float, peak_mib: float) -> Callable:
    return lambda ratio, audit: None if ratio is None else ratio <= limit and audit["peak_mib"] <= peak_mib


def fmt_value(unit: str, v: float | None) -> str:
    if v is None:
        return ""
    if unit == "s" and 0 < v < 0.01:  # a step of a few milliseconds (one iteration at small sizes)
        return f"{v * 1e3:.3f} ms"
    return {"s": f"{v:.3f} s", "us": f"{v * 1e6:.3f} us", "MiB": f"{v / 2**20:.1f} MiB"}[unit]


def _cell(row: Row, d: dict, median_of: bool = False) -> str:
    if not d:
        return ""
    if "skipped" in d:
        return "skipped" if not median_of else ""
    if "failed" in d:
        return "FAILED" if not median_of else ""
    if median_of and not d.get("samples"):
        return ""
    return fmt_value(row.unit, row.median_value(d) if median_of else row.value(d))


def _peak(d: dict) -> str:
    return f"{d['peak_mib']:.0f}" if ok(d) and "peak_mib" in d else ""


def _x(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}x"


HEAD = ["step", "audit min", "median", "peak MiB", "baseline", "min", "median", "peak MiB", "ratio",
        "median ratio", "cpu ratio", "goal", "met?", "spread"]


def align(head: list[str], body: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, a dashed rule under the head, trailing blanks cut."""
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(head), line(["-" * w for w in widths])] + [line(cells) for cells in body]


def table_cells(r: Row) -> list[str]:
    met = {True: "yes", False: "NO", None: "-"}[r.met()]
    s = r.spread()
    return [r.step, _cell(r, r.audit), _cell(r, r.audit, True), _peak(r.audit), r.baseline,
            _cell(r, r.base), _cell(r, r.base, True), _peak(r.base), _x(r.ratio()), _x(r.median_ratio()),
            _x(r.cpu_ratio()), r.goal, met if r.goal else "",
            "" if s is None else f"{s * 100:.0f}%" + (" noisy" if s > NOISE else "")]


def format_table(rows: Iterable[Row]) -> list[str]:
    return align(HEAD, [table_cells(r) for r in rows])


def table_notes(rows: Iterable[Row]) -> list[str]:
    out = []
    for r in rows:
        for label, d in (("audit", r.audit), (r.baseline or "baseline", r.base)):
            if "skipped" in d:
                out.append(f"- {r.step}: {label} skipped (not available: {d['skipped']})")
            elif "failed" in d:
                out.append(f"- {r.step}: {label} FAILED: {d['failed']}")
        if r.note:
            out.append(f"- {r.step}: {r.note}")
    return out


# ---- the scaling table ----------------------------------------------------------------------

def size_label(n: int) -> str:
    """100000 -> "100k", 1000000 -> "1M", 2500000 -> "2.5M", 999 -> "999"."""
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            v = n / div
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:g}{unit}"
    return str(n)


def format_scaling(sizes: Sequence[int], steps: Sequence[str], results: dict[int, dict[str, dict]]) -> list[str]:
    """Per step (rows) and size (column groups): min seconds, peak MiB and microseconds per
    interaction; then the per-interaction ratio of the largest size to the smallest (and to the
    one before it when there are three or more). A '!' marks a noisy time (median > 1.25 x min)."""
    labels = [size_label(n) for n in sizes]
    head = ["step"]
    for label in labels:
        head += [f"{label} s", f"{label} MiB", f"{label} us/i"]
    pairs = [(len(sizes) - 1, 0)] + ([(len(sizes) - 1, len(sizes) - 2)] if len(sizes) > 2 else [])
    pairs = [(i, j) for i, j in pairs if i != j]
    head += [f"us/i {labels[i]}/{labels[j]}" for i, j in pairs]
    body = []
    for step in steps:
        cells, per = [step], {}
        for k, n in enumerate(sizes):
            d = results.get(n, {}).get(step, {})
            if ok(d):
                per[k] = d["seconds"] / n
                mark = "!" if d.get("samples") and noisy(d["samples"]) else ""
                cells += [f"{d['seconds']:.3f}{mark}", f"{d.get('peak_mib', 0):.0f}", f"{per[k] * 1e6:.3f}"]
            else:
                cells += ["skipped" if "skipped" in d else "FAILED" if "failed" in d else "", "", ""]
        cells += [f"{per[i] / per[j]:.2f}x" if i in per and j in per and per[j] else "" for i, j in pairs]
        body.append(cells)
    return align(head, body)


# ---- the machine ----------------------------------------------------------------------------

def parse_cpu_model(cpuinfo: str) -> str:
    """The first "model name" of /proc/cpuinfo (ARM: "Hardware" or "Processor"), else "unknown"."""
    found: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if sep and value.strip() and name not in found:
            found[name] = " ".join(value.split())
    for name in ("model name", "hardware", "processor"):
        if name in found and not found[name].isdigit():
            return found[name]
    return "unknown"


def parse_mem_total(meminfo: str) -> int | None:
    """MemTotal of /proc/meminfo in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            value, *unit = line.split()[1:]
            return int(value) * (1024 if unit and unit[0].lower() == "kb" else 1)
    return None


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages of /proc/loadavg."""
    one, five, fifteen = (float(x) for x in text.split()[:3])
    return one, five, fifteen


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def load_average() -> tuple[float, float, float]:
    text = _read("/proc/loadavg")
    return parse_loadavg(text) if text else os.getloadavg()


def machine() -> dict:
    """Cores, CPU model, memory, load average now, versions, date."""
    import duckdb
    import numpy
    import polars
    import scipy
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable, "cpu_model": parse_cpu_model(_read("/proc/cpuinfo")),
            "mem_total": parse_mem_total(_read("/proc/meminfo")), "load_start": load_average(),
            "python": platform.python_version(), "duckdb": duckdb.__version__, "polars": polars.__version__,
            "scipy": scipy.__version__, "numpy": numpy.__version__, "platform": sys.platform,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _load(load: Sequence[float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def format_machine(m: dict) -> list[str]:
    mem = f"{m['mem_total'] / 2**30:.1f} GiB" if m.get("mem_total") else "unknown"
    return [f"machine: {m['cores']} cores ({m['usable_cores']} usable), {m['cpu_model']}, {mem} memory",
            f"load average at start: {_load(m['load_start'])} (1, 5, 15 min)",
            f"Python {m['python']}, DuckDB {m['duckdb']}, polars {m['polars']}, scipy {m['scipy']}, "
            f"numpy {m['numpy']}; {m['date']}"]


def noisy_reasons(load_start: float, cores: int, steps: Iterable[tuple[str, float | None]],
                  limit: float = NOISE) -> list[str]:
    """Why the run is noisy: the load average (1 min) at start above the core count, and each
    step (name, spread) whose median is more than LIMIT above its min. Empty: not noisy."""
    out = []
    if load_start > cores:
        out.append(f"load average {load_start:.2f} at start > {cores} cores")
    for name, s in steps:
        if s is not None and s > limit:
            out.append(f"{name}: median {s * 100:.0f}% above min")
    return out
