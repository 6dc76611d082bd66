"""Synthetic interactions for the benchmark: deterministic for a seed, vectorised, Higgs-shaped.

Sources (engagers) and targets (authors) are drawn from two independent power laws over the
same accounts, so the most active engagers are not the most popular authors; the kinds come
in the real Higgs proportions; timestamps follow a daily cycle. Rows are sorted by ts.

    python -m bench.generate --accounts 1000000 --interactions 10000000 --days 30 --out x.csv
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

# Real counts in data/higgs-activity_time.txt.gz (563,069 rows).
HIGGS_KINDS = {"retweet": 354_930, "mention": 171_237, "reply": 36_902}
KINDS = list(HIGGS_KINDS)
SOURCE_EXPONENT = 0.6   # activity: top 1% of engagers ~16% of rows (Higgs: 12%)
TARGET_EXPONENT = 1.0   # in-degree: top 1% of authors ~50% of rows (Higgs: 54%)
PEAK_HOUR = 19          # Higgs activity peaks around 19:00 UTC, trough 12 h later
CYCLE_AMPLITUDE = 0.45  # Higgs busiest hour / quietest hour ~ 2.7 = (1 + a) / (1 - a)
TOPIC_EXPONENT = 1.1    # topic sizes: Zipf-like, the largest topic ~1/6 of rows, most topics small
SECOND_TOPIC = 0.3      # share of rows that carry a second topic ("a|b")
CSV_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SCHEMA = {"source": pl.String, "target": pl.String, "kind": pl.String,
          "ts": pl.Datetime("us", "UTC"), "weight": pl.Float64}


def _power_law_ranks(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """Ranks in [0, n) with P(rank r) ~ (r + 1) ** -exponent (continuous inverse CDF, floored)."""
    u = rng.random(size)
    if exponent == 1.0:
        x = np.exp(u * np.log(n + 1.0))
    else:
        e = 1.0 - exponent
        x = ((np.power(n + 1.0, e) - 1.0) * u + 1.0) ** (1.0 / e)
    return np.minimum(x.astype(np.int64) - 1, n - 1)


def _exact_kinds(rng: np.random.Generator, size: int) -> np.ndarray:
    """Kind codes in exactly the Higgs proportions (largest remainder), shuffled."""
    counts = np.array(list(HIGGS_KINDS.values()), dtype=np.float64)
    quota = counts / counts.sum() * size
    whole = np.floor(quota).astype(np.int64)
    rest = size - int(whole.sum())
    whole[np.argsort(-(quota - whole), kind="stable")[:rest]] += 1
    codes = np.repeat(np.arange(len(KINDS), dtype=np.uint8), whole)
    rng.shuffle(codes)
    return codes


def _sorted_seconds(rng: np.random.Generator, size: int, days: int) -> np.ndarray:
    """Sorted second offsets in [0, days * 86400) with a daily cycle.

    Density 1 + a * cos(2 pi (t - peak) / day). Drawing the count per second (multinomial)
    and repeating gives i.i.d. draws already in order, so no sort of the rows is needed.
    """
    second = np.arange(86_400) + 0.5
    density = 1.0 + CYCLE_AMPLITUDE * np.cos(2 * np.pi * (second - PEAK_HOUR * 3600) / 86_400)
    p = np.tile(density / (density.sum() * days), days)
    counts = rng.multinomial(size, p / p.sum())
    return np.repeat(np.arange(p.size, dtype=np.int64), counts)


def topics_for(size: int, n_topics: int, seed: int) -> pl.Series:
    """A `topic` per row: one topic drawn from a heavy-tailed (Zipf-like) distribution over
    "t0".."t<n-1>", and for SECOND_TOPIC of the rows a second, distinct one ("t3|t17"). Drawn from its
    own generator, so the other columns are those of the same seed without topics."""
    rng = np.random.Generator(np.random.PCG64([seed, 18]))
    first = _power_law_ranks(rng, n_topics, size, TOPIC_EXPONENT)
    second = _power_law_ranks(rng, n_topics, size, TOPIC_EXPONENT)
    two = (rng.random(size) < SECOND_TOPIC) & (second != first)
    names = pl.Series([f"t{i}" for i in range(n_topics)], dtype=pl.String)
    a, b = names.gather(first), names.gather(second)
    return pl.select(pl.when(pl.Series(two)).then(pl.concat_str([pl.lit(a), pl.lit("|"), pl.lit(b)]))
                     .otherwise(pl.lit(a)).alias("topic")).to_series()


def generate(n_accounts: int, n_interactions: int, days: int, *, seed: int = 7,
             start: str = "2012-07-01", topics: int = 0) -> pl.DataFrame:
    """Interactions `source, target, kind, ts, weight` (ids "u<n>", ts UTC), sorted by ts; with
    `topics`, a `topic` column too (see topics_for)."""
    if n_accounts < 2 or n_interactions < 0 or days < 1:
        raise ValueError("need at least 2 accounts, 0 interactions and 1 day")
    rng = np.random.Generator(np.random.PCG64(seed))
    n, size = n_accounts, n_interactions
    # Two independent rank -> account maps: popularity as author is not activity as engager.
    source_of_rank = rng.permutation(n)
    target_of_rank = rng.permutation(n)
    source = source_of_rank[_power_law_ranks(rng, n, size, SOURCE_EXPONENT)]
    target = target_of_rank[_power_law_ranks(rng, n, size, TARGET_EXPONENT)]
    for _ in range(20):  # redraw self-loops; each round leaves ~P(top target) of them
        loops = np.flatnonzero(source == target)
        if loops.size == 0:
            break
        target[loops] = target_of_rank[_power_law_ranks(rng, n, loops.size, TARGET_EXPONENT)]
    loops = source == target
    target[loops] = (target[loops] + 1) % n
    kind = _exact_kinds(rng, size)
    first = datetime.fromisoformat(start)
    t0 = int((first if first.tzinfo else first.replace(tzinfo=timezone.utc)).timestamp())
    # Rows are exchangeable, so sorted timestamps can be zipped with unsorted draws.
    ts = (t0 + _sorted_seconds(rng, size, days)) * 1_000_000
    ids = pl.select(pl.concat_str([pl.lit("u"), pl.int_range(0, n).cast(pl.String)])).to_series()
    frame = pl.DataFrame({
        "source": ids.gather(source),
        "target": ids.gather(target),
        "kind": pl.Series(KINDS, dtype=pl.String).gather(kind),
        "ts": pl.Series(ts).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "weight": np.ones(size),
    }, schema=SCHEMA)
    return frame.with_columns(topics_for(size, topics, seed)) if topics else frame


def write(frame: pl.DataFrame, out: Path) -> Path:
    """Write as CSV (ISO-8601 UTC strings) or Parquet (Datetime us UTC), by the suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix == ".csv":
        frame.write_csv(tmp, datetime_format=CSV_TS_FORMAT)
    elif out.suffix == ".parquet":
        frame.write_parquet(tmp)
    else:
        raise ValueError(f"unknown output type {out.suffix!r}; use .csv or .parquet")
    tmp.replace(out)  # a cache never holds a half-written file
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--interactions", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", default="2012-07-01")
    p.add_argument("--topics", type=int, default=0, help="emit a topic column over this many topics")
    p.add_argument("--out", type=Path, required=True, help="FILE.csv or FILE.parquet")
    a = p.parse_args(argv)
    if a.out.suffix not in (".csv", ".parquet"):
        p.error(f"--out must end in .csv or .parquet, not {a.out.name!r}")
    t = time.perf_counter()
    frame = generate(a.accounts, a.interactions, a.days, seed=a.seed, start=a.start, topics=a.topics)
    made = time.perf_counter() - t
    write(frame, a.out)
    print(f"{frame.height:,} interactions over {a.accounts:,} accounts and {a.days} days "
          f"generated in {made:.2f} s, written to {a.out} in {time.perf_counter() - t - made:.2f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
