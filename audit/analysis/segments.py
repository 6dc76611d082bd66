"""Per-account features and the segments that show who pays for a release.

Invariant: a segment puts every compared account in exactly one band, so the band counts of a
segment add up to the number of accounts in both runs; a band is a range of feature values,
so accounts with equal values always share a band. No clock: account age is measured from
the latest interaction of the snapshot.

Built-in segments (bands are listed in this order, empty bands are left out):
- activity: interactions received. "none" (0), then value ranges cut at the nearest-rank 50th,
  90th and 99th percentiles of the positive values among the compared accounts: "bottom 50%"
  (<= P50), "50-90%" (<= P90), "90-99%" (<= P99), "top 1%". Ties stay together, so a band can
  hold more or less than its nominal share.
- audience: followers, when any compared account has a follower count (accounts without one go
  to "unknown"); otherwise distinct engagers. Same bands as activity.
- age: account age in days, when any compared account has one: <30d, 30d-6m (<180), 6m-1y
  (<365), 1-2y (<730), 2-5y (<1825), 5y+, unknown.
User segments: NAME=EXPR, a DuckDB SQL expression over the columns of the features table
(FEATURE_SCHEMA, plus `delta`), evaluated per account in a fresh in-memory connection with file
access disabled. Each distinct value (as text; NULL -> "(null)") is a band, bands sorted by that
text; window functions work (order them totally, e.g. by `..., account_id`, or ties make them
arbitrary), aggregates do not (they are not per account). Self-interactions count like any other.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import numpy as np
import polars as pl

from ..errors import InvalidArgument

FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.String(), "received": pl.Int64(), "given": pl.Int64(),
    "distinct_engagers": pl.Int64(), "followers": pl.Int64(), "age_days": pl.Float64()}
COUNTS = ("received", "given", "distinct_engagers")
BUILTIN = ("activity", "audience", "age")
QUANTILES = (50, 90, 99)
QUANTILE_LABELS = ("none", "bottom 50%", "50-90%", "90-99%", "top 1%", "unknown")
AGE_DAYS = (30, 180, 365, 730, 1825)
AGE_LABELS = ("<30d", "30d-6m", "6m-1y", "1-2y", "2-5y", "5y+", "unknown")
MAX_USER_BANDS = 50
SEGMENT_SCHEMA: dict[str, pl.DataType] = {
    "segment": pl.String(), "feature": pl.String(), "band": pl.String(), "accounts": pl.Int64(),
    "mean_delta": pl.Float64(), "median_delta": pl.Float64(), "low": pl.Float64(), "high": pl.Float64()}
_US_PER_DAY = 86_400_000_000


def _epoch_us(col: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_temporal():
        return pl.col(col).dt.epoch("us")
    return (pl.col(col).cast(pl.Float64) * 1e6).cast(pl.Int64)   # epoch seconds


def segment_features(interactions: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """One row per account (sorted): received, given, distinct_engagers, followers, age_days."""
    edges = interactions.lazy().select(pl.col("source").cast(pl.String), pl.col("target").cast(pl.String))
    received = (edges.group_by("target")
                .agg(pl.len().cast(pl.Int64).alias("received"),
                     pl.col("source").n_unique().cast(pl.Int64).alias("distinct_engagers"))
                .rename({"target": "account_id"}))
    given = (edges.group_by("source").agg(pl.len().cast(pl.Int64).alias("given"))
             .rename({"source": "account_id"}))
    cols = accounts.schema
    acc = accounts.lazy().select(
        pl.col("account_id").cast(pl.String),
        pl.col("followers").cast(pl.Int64) if "followers" in cols else pl.lit(None, pl.Int64).alias("followers"),
        (_epoch_us("created_at", cols["created_at"]) if "created_at" in cols
         else pl.lit(None, pl.Int64)).alias("created_us"),
    ).unique("account_id", keep="first", maintain_order=True)
    latest = (interactions.select(_epoch_us("ts", interactions.schema["ts"]).max()).item()
              if interactions.height else None)
    ids = pl.concat([edges.select(pl.col("source").alias("account_id")),
                     edges.select(pl.col("target").alias("account_id")),
                     acc.select("account_id")]).unique()
    out = (ids.join(received, on="account_id", how="left")
           .join(given, on="account_id", how="left")
           .join(acc, on="account_id", how="left")
           .with_columns(pl.col(list(COUNTS)).fill_null(0),
                         ((pl.lit(latest, pl.Int64) - pl.col("created_us")) / _US_PER_DAY).alias("age_days"))
           .select(list(FEATURE_SCHEMA))
           .sort("account_id"))
    return out.collect().cast(FEATURE_SCHEMA)


def strictly_sorted(ids: pl.Series) -> bool:
    """True when ids ascend strictly (sorted, no duplicates)."""
    return ids.len() < 2 or bool((ids.slice(1) > ids.slice(0, ids.len() - 1)).all())


def match_sorted(left: pl.Series, right: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions in left and in right of the values in both, ascending; both inputs strictly sorted.

    A linear merge: on 1M string ids it takes about half the time of a hash join.
    """
    if left.len() == 0 or right.len() == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    # left rows carry i >= 0, right rows -1 - i; a shared value gives two adjacent rows
    lf = pl.DataFrame({"k": left}).with_columns(i=pl.int_range(pl.len(), dtype=pl.Int64))
    rf = pl.DataFrame({"k": right}).with_columns(i=-1 - pl.int_range(pl.len(), dtype=pl.Int64))
    merged = lf.set_sorted("k").merge_sorted(rf.set_sorted("k"), key="k")
    k, i = merged["k"], merged["i"].to_numpy()
    at = np.flatnonzero((k.slice(1) == k.slice(0, k.len() - 1)).to_numpy())
    first, second = i[at], i[at + 1]
    from_left = first >= 0
    return (np.where(from_left, first, second).astype(np.intp),
            (-1 - np.where(from_left, second, first)).astype(np.intp))


def align_features(features: pl.DataFrame, account_ids: pl.Series,
                   known: Sequence[tuple[pl.Series, np.ndarray]] = ()) -> pl.DataFrame:
    """Feature rows for account_ids (strictly sorted) in their order; unknown accounts get 0 counts, nulls.

    known: (ids, positions of account_ids in ids) pairs; when the features list exactly those
    ids (the usual case: features of one of the two snapshots) a gather replaces the matching.
    """
    missing = [c for c in FEATURE_SCHEMA if c not in features.columns]
    if missing:
        raise ValueError(f"features lack column(s) {missing}; build them with segment_features()")
    f = features.select([pl.col(c).cast(t) for c, t in FEATURE_SCHEMA.items()])
    fids = f["account_id"]
    if fids.equals(account_ids):
        return f
    for ids, positions in known:
        if fids.equals(ids):
            return f[positions]
    if strictly_sorted(fids):
        fi, _ = match_sorted(fids, account_ids)
        if fi.size == account_ids.len():        # features cover every account
            return f[fi]
    out = (account_ids.rename("account_id").to_frame()
           .join(f, on="account_id", how="left", maintain_order="left")
           .with_columns(pl.col(list(COUNTS)).fill_null(0)))
    if out.height != account_ids.len():
        raise ValueError("features list an account_id twice")
    return out


def _quantile_bands(values: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """Band code into QUANTILE_LABELS for each value; known False -> "unknown"."""
    positive = values[(values > 0) if known is None else known & (values > 0)]
    code = (values > 0).astype(np.uint8)
    if positive.size:
        ranks = [(q * positive.size + 99) // 100 - 1 for q in QUANTILES]    # nearest rank
        cuts = np.partition(positive, ranks)[ranks]
        code += np.searchsorted(cuts, values, side="left").astype(np.uint8) * code
    if known is not None:
        code[~known] = len(QUANTILE_LABELS) - 1
    return code


def _summary(segment: str, feature: str, code: np.ndarray, labels: tuple[str, ...],
             delta: np.ndarray, value: pl.Series) -> pl.LazyFrame:
    """Accounts, mean and median delta and the feature range per band code (labels[code])."""
    return (pl.LazyFrame({"code": code, "delta": delta, "value": value.cast(pl.Float64)})
            .group_by("code")
            .agg(pl.len().cast(pl.Int64).alias("accounts"), pl.col("delta").mean().alias("mean_delta"),
                 pl.col("delta").median().alias("median_delta"),
                 pl.col("value").min().alias("low"), pl.col("value").max().alias("high"))
            .sort("code")
            .select(pl.lit(segment).alias("segment"), pl.lit(feature).alias("feature"),
                    pl.col("code").replace_strict(dict(enumerate(labels)), return_dtype=pl.String).alias("band"),
                    "accounts", "mean_delta", "median_delta", "low", "high"))


def builtin_segments(features: pl.DataFrame, delta: np.ndarray) -> list[pl.LazyFrame]:
    """Summaries of the built-in segments that apply to these (aligned) features."""
    received = features["received"]
    out = [_summary("activity", "received", _quantile_bands(received.to_numpy(), None),
                    QUANTILE_LABELS, delta, received)]
    followers = features["followers"]
    audience = followers if followers.null_count() < followers.len() else features["distinct_engagers"]
    known = audience.is_not_null().to_numpy() if audience.null_count() else None
    out.append(_summary("audience", audience.name, _quantile_bands(audience.fill_null(0).to_numpy(), known),
                        QUANTILE_LABELS, delta, audience))
    age = features["age_days"]
    if age.len() and age.null_count() < age.len():
        code = np.searchsorted(np.asarray(AGE_DAYS, dtype=np.float64), age.fill_null(0.0).to_numpy(), side="right")
        if age.null_count():
            code = np.where(age.is_not_null().to_numpy(), code, len(AGE_LABELS) - 1)
        out.append(_summary("age", "age_days", code.astype(np.uint8), AGE_LABELS, delta, age))
    return out


def user_segments(features: pl.DataFrame, delta: np.ndarray, user: Mapping[str, str]) -> list[pl.DataFrame]:
    """Summaries of NAME=EXPR segments, each EXPR a DuckDB expression over the feature columns."""
    for name, expr in user.items():
        if not name or name in BUILTIN:
            raise InvalidArgument(f'segment name "{name}" is empty or built in ({", ".join(BUILTIN)}); '
                             "choose another name")
        if not expr.strip():
            raise InvalidArgument(f'segment "{name}" has an empty expression')
    if not user:
        return []
    out = []
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("features", features.with_columns(pl.Series("delta", delta)))
        for name, expr in user.items():
            # the subquery lets EXPR use window functions; an aggregate fails (delta not grouped)
            sql = ("SELECT coalesce(band, '(null)') AS band, count(*) AS accounts, avg(delta) AS mean_delta, "
                   f"median(delta) AS median_delta FROM (SELECT CAST(({expr}) AS VARCHAR) AS band, delta "
                   "FROM features) GROUP BY ALL ORDER BY band")
            try:
                table = con.sql(sql).pl()
            except duckdb.Error as exc:
                reason = " ".join(line for line in str(exc).split("\n")[:2] if not line.startswith("LINE"))
                raise InvalidArgument(f'segment "{name}": expression "{expr}" failed in DuckDB: {reason}') from exc
            if table.height > MAX_USER_BANDS:
                raise InvalidArgument(f'segment "{name}": expression "{expr}" gives {table.height} distinct values; '
                                 f"at most {MAX_USER_BANDS} bands are shown, use CASE to group them")
            out.append(table.select(pl.lit(name).alias("segment"), pl.lit(expr).alias("feature"), "band",
                                    "accounts", "mean_delta", "median_delta",
                                    pl.lit(None, pl.Float64).alias("low"), pl.lit(None, pl.Float64).alias("high")))
    finally:
        con.close()
    return out


def segment_changes(features: pl.DataFrame, delta: np.ndarray, user: Mapping[str, str]) -> pl.DataFrame:
    """Accounts, mean and median delta per band: built-in segments, then user ones in their order."""
    parts = user_segments(features, delta, user) if user else []
    parts = pl.collect_all(builtin_segments(features, delta)) + parts      # built-ins in parallel
    return pl.concat([p.cast(SEGMENT_SCHEMA) for p in parts])
