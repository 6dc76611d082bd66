"""The benchmark's pure parts: repeats, ratios, the noisy verdict, the tables, the machine header."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is not an installed package; plain `pytest` (unlike `python -m pytest`) needs the root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import (  # noqa: E402
    Row,
    at_most_ratio,
    at_most_ratio_and_peak,
    fmt_value,
    format_machine,
    format_scaling,
    format_table,
    median,
    noisy,
    noisy_reasons,
    parse_cpu_model,
    parse_loadavg,
    parse_mem_total,
    scaled,
    size_label,
    spread,
    summarize,
    table_cells,
)


def test_median() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert median([7]) == 7
    with pytest.raises(ValueError):
        median([])


def test_spread_and_noisy() -> None:
    assert spread([2.0, 1.0, 1.5]) == 0.5
    assert spread([1.0]) == 0.0
    assert spread([0.0, 1.0]) is None
    assert noisy([1.0, 1.3, 1.3])          # median 30% above min
    assert not noisy([4.0, 5.0, 5.0])      # exactly 25%: not more than 25%
    assert not noisy([1.0, 1.2, 2.0])      # a slow outlier alone does not move the median
    assert noisy([1.0, 1.2, 2.0], limit=0.1)


def test_summarize_keeps_the_first_repeat_and_the_min() -> None:
    s = summarize([{"seconds": 3.0, "run_id": "r1", "peak_mib": 100.0, "cpu_seconds": 2.5},
                   {"seconds": 1.0, "run_id": "r2", "peak_mib": 120.0, "cpu_seconds": 0.75},
                   {"seconds": 2.0, "run_id": "r3", "peak_mib": 110.0, "cpu_seconds": 1.5}])
    assert s == {"seconds": 1.0, "samples": [3.0, 1.0, 2.0], "run_id": "r1", "peak_mib": 120.0,
                 "cpu_seconds": 0.75}
    failed = {"failed": "ValueError: x"}
    assert summarize([{"seconds": 1.0}, failed]) is failed
    assert summarize([{"per": 4.0}, {"per": 2.0}], key="per") == {"per": 2.0, "samples": [4.0, 2.0]}


def test_scaled() -> None:
    assert scaled({"seconds": 2.0, "samples": [2.0, 4.0]}, "per_row", 0.5) == \
        {"seconds": 2.0, "per_row": 1.0, "samples": [1.0, 2.0]}
    assert scaled({"skipped": "x"}, "per_row", 0.5) == {"skipped": "x"}


def test_row_ratio_from_mins_and_median_ratio() -> None:
    r = Row("activity", {"seconds": 1.0, "samples": [3.0, 1.0, 2.0], "peak_mib": 150.4, "cpu_seconds": 3.0},
            "bare", {"seconds": 0.5, "samples": [1.0, 0.5, 0.5], "cpu_seconds": 1.5},
            goal="<= 2x", check=at_most_ratio(2.0))
    assert r.ratio() == 2.0            # 1.0 / 0.5, the mins
    assert r.median_ratio() == 4.0     # 2.0 / 0.5, the medians
    assert r.cpu_ratio() == 2.0
    assert r.spread() == 1.0           # audit's median is 100% above its min
    assert r.noisy()
    assert r.met() is True
    assert table_cells(r) == ["activity", "1.000 s", "2.000 s", "150", "bare", "0.500 s", "0.500 s", "",
                              "2.00x", "4.00x", "2.00x", "<= 2x", "yes", "100% noisy"]
    quiet = Row("x", {"seconds": 1.0, "samples": [1.0, 1.1, 1.2]}, "b", {"seconds": 1.0, "samples": [1.0, 1.0, 1.0]})
    assert quiet.spread() == pytest.approx(0.1) and not quiet.noisy()


def test_row_goals_on_peak_and_skips() -> None:
    r = Row("ingest", {"seconds": 3.0, "peak_mib": 2049.0}, "bare", {"seconds": 2.0},
            check=at_most_ratio_and_peak(2.0, 2048))
    assert r.ratio() == 1.5 and r.met() is False   # fast enough, but over 2 GiB
    assert r.median_ratio() == 1.5                 # one value each: it is its own median
    skipped = Row("explain", {"skipped": "needs x"}, check=at_most_ratio(2.0))
    assert skipped.ratio() is None and skipped.met() is None
    assert table_cells(skipped)[1:4] == ["skipped", "", ""]


def test_format_table() -> None:
    rows = [Row("compare", {"seconds": 0.75, "samples": [0.75, 0.8, 1.0], "peak_mib": 99.6}, goal="<= 1 s",
                check=lambda _, a: a["seconds"] <= 1.0)]
    lines = format_table(rows)
    assert lines[0].split() == ["step", "audit", "min", "median", "peak", "MiB", "baseline", "min", "median",
                                "peak", "MiB", "ratio", "median", "ratio", "cpu", "ratio", "goal", "met?",
                                "spread"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["compare", "0.750", "s", "0.800", "s", "100", "<=", "1", "s", "yes", "7%"]


def test_fmt_value() -> None:
    assert fmt_value("s", 1.23456) == "1.235 s"
    assert fmt_value("s", 0.00125) == "1.250 ms"
    assert fmt_value("us", 0.885e-6) == "0.885 us"
    assert fmt_value("MiB", 3 * 2**20) == "3.0 MiB"
    assert fmt_value("s", None) == ""


def test_size_label() -> None:
    assert [size_label(n) for n in (100_000, 1_000_000, 10_000_000, 2_500_000, 20_000, 999)] == \
        ["100k", "1M", "10M", "2.5M", "20k", "999"]


def test_format_scaling() -> None:
    results = {
        100_000: {"ingest": {"seconds": 1.0, "samples": [1.0, 1.5, 2.0], "peak_mib": 200.0},
                  "compare": {"skipped": "needs x"}},
        1_000_000: {"ingest": {"seconds": 5.0, "peak_mib": 400.0}, "compare": {"seconds": 0.5, "peak_mib": 90.0}},
        10_000_000: {"ingest": {"seconds": 60.0, "peak_mib": 2000.0}, "compare": {"seconds": 4.0, "peak_mib": 150.0}},
    }
    lines = format_scaling([100_000, 1_000_000, 10_000_000], ["ingest", "compare"], results)
    assert lines[0].split() == ["step", "100k", "s", "100k", "MiB", "100k", "us/i", "1M", "s", "1M", "MiB",
                                "1M", "us/i", "10M", "s", "10M", "MiB", "10M", "us/i", "us/i", "10M/100k",
                                "us/i", "10M/1M"]
    # ingest: 10, 5 and 6 us per interaction; 10M / 100k = 0.6, 10M / 1M = 1.2; '!' the noisy 100k
    assert lines[2].split() == ["ingest", "1.000!", "200", "10.000", "5.000", "400", "5.000", "60.000", "2000",
                                "6.000", "0.60x", "1.20x"]
    assert lines[3].split() == ["compare", "skipped", "0.500", "90", "0.500", "4.000", "150", "0.400", "0.80x"]
    two = format_scaling([1000, 2000], ["s"], {1000: {"s": {"seconds": 1.0, "peak_mib": 1.0}},
                                                2000: {"s": {"seconds": 4.0, "peak_mib": 1.0}}})
    assert two[0].split()[-2:] == ["us/i", "2k/1k"] and two[2].split()[-1] == "2.00x"


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz
cpu MHz\t\t: 2200.000

processor\t: 1
model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz
"""


def test_machine_parsing() -> None:
    assert parse_cpu_model(CPUINFO) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert parse_cpu_model("processor\t: 0\nHardware\t: BCM2835\n") == "BCM2835"
    assert parse_cpu_model("") == "unknown"
    assert parse_mem_total("MemTotal:       24567890 kB\nMemFree:  1 kB\n") == 24567890 * 1024
    assert parse_mem_total("MemFree:  1 kB\n") is None
    assert parse_loadavg("0.50 1.25 2.00 3/456 7890\n") == (0.5, 1.25, 2.0)


def test_noisy_reasons() -> None:
    assert noisy_reasons(3.0, 2, [("a", 0.3), ("b", 0.25), ("c", None)]) == \
        ["load average 3.00 at start > 2 cores", "a: median 30% above min"]
    assert noisy_reasons(2.0, 2, [("b", 0.25)]) == []   # load equal to the cores is not above them


def test_format_machine() -> None:
    m = {"cores": 4, "usable_cores": 2, "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz", "mem_total": 24 * 2**30,
         "load_start": (0.5, 1.25, 2.0), "python": "3.11.7", "duckdb": "1.2.0", "polars": "1.0.0",
         "scipy": "1.14.0", "numpy": "2.0.0", "date": "2025-01-02 03:04 UTC"}
    assert format_machine(m) == [
        "machine: 4 cores (2 usable), Intel(R) Xeon(R) CPU @ 2.20GHz, 24.0 GiB memory",
        "load average at start: 0.50 1.25 2.00 (1, 5, 15 min)",
        "Python 3.11.7, DuckDB 1.2.0, polars 1.0.0, scipy 1.14.0, numpy 2.0.0; 2025-01-02 03:04 UTC",
    ]
