"""Shared fixtures: the bundled real Higgs data in the algorithm input shape."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
# The real public datasets beside the checkout (../shared/data), wherever the checkout is.
SHARED_DATA = next((p for p in (DATA.parent.parent / "shared" / "data", Path("/work/shared/data"))
                    if p.is_dir()), DATA.parent.parent / "shared" / "data")
HIGGS = DATA / "higgs-activity_time.txt.gz"
KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}


def read_higgs(path: Path = HIGGS) -> pl.DataFrame:
    """The Higgs activity file as interactions: source, target, kind, ts (UTC), weight."""
    raw = pl.read_csv(path, separator=" ", has_header=False,
                      new_columns=["source", "target", "ts", "code"],
                      schema_overrides={"source": pl.String, "target": pl.String,
                                        "ts": pl.Int64, "code": pl.String})
    return raw.select(
        "source", "target",
        pl.col("code").replace_strict(KINDS).alias("kind"),
        pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
        pl.lit(1.0).alias("weight"),
    ).sort(["ts", "source", "target", "kind"])


EMPTY_ACCOUNTS = pl.DataFrame(schema={
    "account_id": pl.String, "handle": pl.String, "followers": pl.Int64,
    "following": pl.Int64, "created_at": pl.Datetime("us", "UTC")})


@pytest.fixture(scope="session")
def higgs_interactions() -> pl.DataFrame:
    """All 563,069 real Higgs interactions (2012-07-01..07)."""
    return read_higgs()


@pytest.fixture(scope="session")
def empty_accounts() -> pl.DataFrame:
    return EMPTY_ACCOUNTS
