"""Real datasets for the explanation tests: each stored once per session with dated snapshots and
every shipped version, and read again straight from its raw file (with polars, not through
audit) so that the numbers a sentence names can be checked independently."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from audit import api

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VERSIONS = ("activity@1", "network@2", "network@3")


@dataclass(frozen=True)
class Dataset:
    files: tuple[tuple[str, str, str | None], ...]     # (path under SHARED, format, kind)
    days: tuple[str, ...]                              # snapshot as-of dates (a bare date: the end of it)
    window_days: int
    extra: tuple[tuple[str, int], ...] = ()            # (day, window days) snapshots beside the series


DATASETS = {
    "alpha": Dataset((("soc-sign-bitcoinalpha/soc-sign-bitcoinalpha.csv", "signed-csv", None),),
                     ("2012-04-01", "2012-07-01", "2012-10-01", "2013-01-01"), 180),
    "mo": Dataset((("sx-mathoverflow/sx-mathoverflow-a2q.txt", "uvt", "reply"),),
                  ("2013-05-01", "2013-06-01", "2013-07-01"), 30, (("2013-06-01", 90),)),
    "qc": Dataset((("se-quantumcomputing/interactions.csv", "csv", None),
                   ("se-quantumcomputing/accounts.csv", "csv", None)),
                  ("2018-06-01", "2018-07-01", "2018-08-01"), 30),
    "cm": Dataset((("collegemsg/CollegeMsg.txt", "uvt", "message"),), ("2004-05-01", "2004-06-01"), 30),
}


class Clock:
    """A deterministic `now`: one second later at every call."""

    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


@dataclass
class Built:
    path: Path
    now: Clock
    snapshots: dict[str, str]                  # key -> snapshot id; key = day, or "day window" for extras
    runs: dict[tuple[str, str], str]           # (key, version) -> run id

    def run(self, key: str, version: str) -> str:
        return self.runs[(key, version)]


def build(name: str, folder: Path) -> Built:
    spec = DATASETS[name]
    for path, _, _ in spec.files:
        if not (SHARED / path).is_file():
            pytest.skip(f"the shared dataset {path} is not beside the checkout ({SHARED})")
    store, clock = folder / f"{name}.duckdb", Clock()
    for path, fmt, kind in spec.files:
        api.ingest(store, SHARED / path, fmt=fmt, kind=kind, now=clock())
    snapshots, runs = {}, {}
    points = [(d, spec.window_days, d) for d in spec.days] + [(d, w, f"{d} {w}d") for d, w in spec.extra]
    for day, window, key in points:
        snapshots[key] = api.snapshot(store, as_of=day, window=f"{window}d", label=key, now=clock()).snapshot_id
        for version in VERSIONS:
            runs[(key, version)] = api.score(store, snapshots[key], version, now=clock()).run_id
    return Built(store, clock, snapshots, runs)


# ---------------------------------------------------------------- the raw files, read independently

def raw(name: str) -> pl.DataFrame:
    """The dataset's interactions straight from the file: source, target, kind, ts (UTC), weight."""
    path = SHARED / DATASETS[name].files[0][0]
    if name == "alpha":
        f = pl.read_csv(path, has_header=False, new_columns=["source", "target", "weight", "t"],
                        schema_overrides={"source": pl.String, "target": pl.String, "weight": pl.Float64, "t": pl.Int64})
        return f.select("source", "target", pl.lit("rating").alias("kind"),
                        pl.from_epoch("t").dt.replace_time_zone("UTC").alias("ts"), "weight")
    if name in ("mo", "cm"):
        f = pl.read_csv(path, has_header=False, separator=" ", new_columns=["source", "target", "t"],
                        schema_overrides={"source": pl.String, "target": pl.String, "t": pl.Int64})
        return f.select("source", "target", pl.lit("reply" if name == "mo" else "message").alias("kind"),
                        pl.from_epoch("t").dt.replace_time_zone("UTC").alias("ts"), pl.lit(1.0).alias("weight"))
    f = pl.read_csv(path, schema_overrides={"source": pl.String, "target": pl.String})
    return f.select("source", "target", "kind",
                    pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC"), pl.lit(1.0).alias("weight"))


def accounts_file(name: str) -> pl.DataFrame:
    f = pl.read_csv(SHARED / DATASETS[name].files[1][0], schema_overrides={"account_id": pl.String})
    return f.select("account_id", "handle", pl.col("created_at").str.to_date().alias("created"))


def end_of(day: str) -> datetime:
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + timedelta(days=1)


def window(frame: pl.DataFrame, day: str, days: int, *, selves: bool = False) -> pl.DataFrame:
    """The interactions of a snapshot as of the end of DAY over DAYS days; self-interactions (which
    put an account in the snapshot but engage nobody) only with selves."""
    end = end_of(day)
    inside = frame.filter((pl.col("ts") >= end - timedelta(days=days)) & (pl.col("ts") < end))
    return inside if selves else inside.filter(pl.col("source") != pl.col("target"))


def received(frame: pl.DataFrame, account: str, day: str, days: int) -> pl.DataFrame:
    """What ACCOUNT received in that window."""
    return window(frame, day, days).filter(pl.col("target") == account)


def dumps(e) -> str:
    from audit import present
    return json.dumps(present.explanation_json(e), sort_keys=True)
