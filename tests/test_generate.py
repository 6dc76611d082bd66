"""The benchmark's generator: deterministic, Higgs-shaped, in the documented input format."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

# bench/ is not an installed package; plain `pytest` (unlike `python -m pytest`) needs the root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.generate import HIGGS_KINDS, SCHEMA, generate, main, write  # noqa: E402

ACCOUNTS, ROWS, DAYS = 20_000, 100_000, 7
START = datetime(2012, 7, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return generate(ACCOUNTS, ROWS, DAYS)


def top_share(frame: pl.DataFrame, column: str, fraction: float = 0.01) -> float:
    """Share of all rows that go to the top `fraction` of the column's distinct values."""
    counts = frame.group_by(column).len().sort("len", descending=True)["len"]
    return counts.head(max(1, int(counts.len() * fraction))).sum() / frame.height


def test_same_seed_same_frame_other_seed_other_frame(sample):
    assert_frame_equal(generate(ACCOUNTS, ROWS, DAYS, seed=7), sample)
    other = generate(ACCOUNTS, ROWS, DAYS, seed=8)
    assert other.height == sample.height
    assert not other.equals(sample)
    assert (other["source"] != sample["source"]).mean() > 0.9


def test_schema_and_ids(sample):
    assert sample.schema == pl.Schema(SCHEMA)
    assert sample.height == ROWS
    assert sample["source"].str.contains(r"^u\d+$").all()
    assert sample["target"].str.contains(r"^u\d+$").all()
    assert sample["weight"].eq(1.0).all()
    assert sample.null_count().sum_horizontal().item() == 0
    ids = pl.concat([sample["source"], sample["target"]]).str.slice(1).cast(pl.Int64)
    assert 0 <= ids.min() and ids.max() < ACCOUNTS


def test_kind_proportions_match_higgs(sample):
    total = sum(HIGGS_KINDS.values())
    assert total == 563_069
    got = dict(sample["kind"].value_counts().iter_rows())
    assert set(got) == set(HIGGS_KINDS)
    for kind, count in HIGGS_KINDS.items():
        assert abs(got[kind] / ROWS - count / total) < 0.01, kind


def test_no_self_loops(sample):
    assert sample.filter(pl.col("source") == pl.col("target")).height == 0
    # Also with few accounts, where a self-loop is drawn often and must be redrawn.
    tiny = generate(3, 10_000, 1, seed=1)
    assert tiny.filter(pl.col("source") == pl.col("target")).height == 0


def test_timestamps_within_days_sorted_with_a_daily_cycle(sample):
    ts = sample["ts"]
    assert ts.min() >= START
    assert ts.max() < START + timedelta(days=DAYS)
    assert ts.is_sorted()
    per_day = sample.group_by(pl.col("ts").dt.date()).len()["len"]
    assert per_day.len() == DAYS and per_day.min() > ROWS / DAYS * 0.9
    per_hour = sample.group_by(pl.col("ts").dt.hour()).len()["len"]
    assert per_hour.max() / per_hour.min() > 2.0  # Higgs: 2.7


def test_start_is_taken_as_utc():
    frame = generate(100, 1_000, 2, start="2020-02-28")
    assert frame["ts"].min() >= datetime(2020, 2, 28, tzinfo=timezone.utc)
    assert frame["ts"].max() < datetime(2020, 3, 1, tzinfo=timezone.utc)


def test_heavy_tails_differ_for_engagers_and_authors(sample):
    assert top_share(sample, "target") > 0.20        # popular authors (Higgs: 54%)
    assert top_share(sample, "source") > 0.05        # active engagers (Higgs: 12%)
    assert top_share(sample, "target") > 2 * top_share(sample, "source")
    top = {c: set(sample.group_by(c).len().sort("len", descending=True).head(200)[c])
           for c in ("source", "target")}
    assert len(top["source"] & top["target"]) < 40   # independent: ~2 of 200 expected


def test_csv_has_iso_utc_strings_and_parquet_has_datetimes(tmp_path):
    frame = generate(50, 200, 1)
    csv = write(frame, tmp_path / "i.csv")
    assert csv.read_text().splitlines()[0] == "source,target,kind,ts,weight"
    back = pl.read_csv(csv, schema_overrides={"weight": pl.Float64})
    assert back["ts"].str.contains(r"^2012-07-01T\d\d:\d\d:\d\dZ$").all()
    parsed = back["ts"].str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us").dt.replace_time_zone("UTC")
    assert_frame_equal(back.with_columns(ts=parsed), frame)
    pq = write(frame, tmp_path / "i.parquet")
    assert_frame_equal(pl.read_parquet(pq), frame)
    with pytest.raises(ValueError, match="use .csv or .parquet"):
        write(frame, tmp_path / "i.json")


def test_cli_writes_the_same_frame(tmp_path):
    out = tmp_path / "g.parquet"
    assert main(["--accounts", "300", "--interactions", "5000", "--days", "3",
                 "--seed", "3", "--out", str(out)]) == 0
    assert_frame_equal(pl.read_parquet(out), generate(300, 5_000, 3, seed=3))
