"""Ingest: every adapter on real files, every validation failure on a real file damaged in one
place, and the invariant that a rejected file leaves the store byte for byte as it was."""
from __future__ import annotations

import collections
import gzip
import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit import api
from audit.errors import ValidationError
from audit.inputs.formats import detect_format
from conftest import needs_shared, query, run_audit, shared_file, store_state

ROOT = Path(__file__).resolve().parent.parent
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
IA = shared_file("ia-retweet-pol", "ia-retweet-pol.txt")
OTC = shared_file("soc-sign-bitcoinotc", "soc-sign-bitcoinotc.csv.gz")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
HIGGS_KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}
KIND_LIST = "retweet, mention, reply, like, follow, message, rating"

needs_ia = needs_shared(IA)
needs_otc = needs_shared(OTC)


# ---------------------------------------------------------------- real inputs, read independently

def higgs_raw(n: int | None = None) -> pl.DataFrame:
    """The Higgs file (or its first n lines) as text: source, target, epoch, code, and its line number."""
    raw = pl.read_csv(HIGGS, separator=" ", has_header=False, infer_schema=False, n_rows=n,
                      new_columns=["source", "target", "epoch", "code"])
    return raw.with_row_index("line", offset=1)


def higgs_lines(n: int) -> list[str]:
    with gzip.open(HIGGS, "rt") as fh:
        return [next(fh) for _ in range(n)]


def as_interactions(raw: pl.DataFrame) -> pl.DataFrame:
    """Higgs rows in the documented CSV input format (ts as epoch seconds, text)."""
    return raw.select("source", "target", pl.col("code").replace_strict(HIGGS_KINDS).alias("kind"),
                      pl.col("epoch").alias("ts"))


def expected_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """What the store must hold for input rows: typed, in the stored column order, sorted."""
    return frame.select(
        pl.col("source").cast(pl.String), pl.col("target").cast(pl.String), pl.col("kind").cast(pl.String),
        pl.from_epoch(pl.col("ts").cast(pl.Int64), time_unit="s").dt.cast_time_unit("us")
        .dt.replace_time_zone("UTC").alias("ts"),
        (pl.col("weight").cast(pl.Float64) if "weight" in frame.columns else pl.lit(1.0)).alias("weight"),
        (pl.col("topic") if "topic" in frame.columns else pl.lit(None, pl.String)).alias("topic"),
        (pl.col("event_id") if "event_id" in frame.columns else pl.lit(None, pl.String)).alias("event_id"),
    ).sort(pl.all())


def stored_rows(store: Path, batch_id: str | None = None) -> pl.DataFrame:
    where = "" if batch_id is None else f"WHERE batch_id = '{batch_id}'"
    return query_frame(store, f"SELECT source, target, kind::VARCHAR AS kind, ts, weight, topic, event_id "
                              f"FROM interaction {where}").sort(pl.all())


def query_frame(store: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(store), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'")
        return con.sql(sql).pl()
    finally:
        con.close()


def set_cell(df: pl.DataFrame, row: int, col: str, value: str | None) -> pl.DataFrame:
    """Damage one cell (row is 0-based; its CSV line is row + 2)."""
    return df.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, pl.String))
                           .otherwise(pl.col(col)).alias(col))


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def higgs_store(tmp_path_factory) -> dict:
    """The full bundled Higgs file ingested once into a store for this module (timed)."""
    store = tmp_path_factory.mktemp("higgs") / "audit.duckdb"
    t0 = time.perf_counter()
    result = api.ingest(store, HIGGS, now=NOW)
    return {"store": store, "result": result, "seconds": time.perf_counter() - t0}


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory) -> Path:
    """A store already holding one real batch: the last 300 lines of the bundled Higgs file (the
    rejection tests only need a store that exists; the bundled data is always there)."""
    d = tmp_path_factory.mktemp("seeded")
    src = d / "higgs-last-300.txt"
    with gzip.open(HIGGS, "rt") as fh:
        src.write_text("".join(collections.deque(fh, maxlen=300)))
    store = d / "audit.duckdb"
    assert api.ingest(store, src, now=NOW).rows == 300
    return store


@pytest.fixture(params=["absent", "existing"])
def store(request, tmp_path, seeded_template) -> Path:
    """A store path that does not exist yet, or a copy of a store holding one batch."""
    path = tmp_path / "store" / "audit.duckdb"
    path.parent.mkdir()
    if request.param == "existing":
        shutil.copy(seeded_template, path)
    return path


@pytest.fixture(scope="module")
def base20() -> pl.DataFrame:
    """The first 20 Higgs rows in the CSV input format with weight and a unique event_id."""
    raw = higgs_raw(20)
    return as_interactions(raw).with_columns(pl.lit("1").alias("weight"),
                                             pl.format("higgs-{}", raw["line"]).alias("event_id"))


# ---------------------------------------------------------------- adapters

@pytest.mark.slow
def test_snap_higgs_full_file_is_stored_exactly(higgs_store):
    store, result = higgs_store["store"], higgs_store["result"]
    print(f"\nfull Higgs ingest: {higgs_store['seconds']:.2f} s (including the great-expectations import)")
    assert (result.rows, result.accounts, result.new, result.format, result.batch_kind) == \
        (563_069, 304_691, True, "snap-higgs", "interactions")
    assert query(store, "SELECT count(*) FROM interaction") == [(563_069,)]
    assert query(store, "SELECT count(*) FROM (SELECT source FROM interaction UNION "
                        "SELECT target FROM interaction)") == [(304_691,)]
    kinds = dict(query(store, "SELECT kind::VARCHAR, count(*) FROM interaction GROUP BY 1"))
    assert kinds == {"retweet": 354_930, "mention": 171_237, "reply": 36_902}
    raw = higgs_raw()
    by_code = dict(raw.group_by("code").len().iter_rows())
    assert kinds == {HIGGS_KINDS[c]: n for c, n in by_code.items()}
    # Every stored row is the file's row, read independently with polars.
    assert_frame_equal(stored_rows(store), expected_rows(as_interactions(raw)))
    batch = query(store, "SELECT batch_id, rows, accounts, min_ts, max_ts, format, source_name FROM batch")
    assert batch == [(result.batch_id, 563_069, 304_691,
                      datetime(2012, 7, 1, 0, 2, 52, tzinfo=timezone.utc),
                      datetime(2012, 7, 7, 23, 59, 53, tzinfo=timezone.utc), "snap-higgs", str(HIGGS))]


@pytest.mark.slow
def test_higgs_has_no_identical_rows_and_no_warning(higgs_store):
    raw = higgs_raw().drop("line")
    assert raw.height - raw.unique().height == 0
    assert higgs_store["result"].warnings == []


@pytest.mark.slow
def test_second_ingest_of_the_same_file_is_a_noop(higgs_store):
    store, first = higgs_store["store"], higgs_store["result"]
    log = query(store, "SELECT * FROM log ORDER BY seq")
    before = store_state(store)
    again = api.ingest(store, HIGGS, now=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert (again.batch_id, again.new, again.rows, again.accounts) == (first.batch_id, False, 563_069, 304_691)
    assert query(store, "SELECT count(*) FROM interaction") == [(563_069,)]
    assert query(store, "SELECT * FROM log ORDER BY seq") == log
    assert store_state(store) == before


@needs_ia
def test_uvt_full_file_with_kind_keeps_identical_rows_and_warns(tmp_path):
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, IA, now=NOW, kind="retweet")
    raw = pl.read_csv(IA, separator=" ", has_header=False, infer_schema=False, new_columns=["u", "v", "t"])
    repeated = raw.with_row_index("line", offset=1).filter(pl.struct("u", "v", "t").is_duplicated()
                                                          & ~pl.struct("u", "v", "t").is_first_distinct())
    assert repeated.height == raw.height - raw.unique().height == 2
    assert (result.format, result.rows, result.accounts) == ("uvt", 61_157, 18_470)
    assert result.warnings == [{
        "code": "identical_rows", "count": 2, "example_lines": repeated["line"].to_list(),
        "text": "2 rows repeat an earlier row of this file exactly; kept as delivered"}]
    assert query(store, "SELECT kind::VARCHAR, count(*) FROM interaction GROUP BY 1") == [("retweet", 61_157)]
    expected = expected_rows(raw.select(pl.col("u").alias("source"), pl.col("v").alias("target"),
                                        pl.lit("retweet").alias("kind"), pl.col("t").alias("ts")))
    assert_frame_equal(stored_rows(store), expected)


@needs_ia
def test_uvt_default_kind_is_mention_and_another_kind_is_another_batch(tmp_path):
    src = tmp_path / "ia-400.txt"
    src.write_text("".join(IA.read_text().splitlines(keepends=True)[:400]))
    store = tmp_path / "audit.duckdb"
    mention = api.ingest(store, src, now=NOW)
    assert query(store, "SELECT DISTINCT kind::VARCHAR FROM interaction") == [("mention",)]
    same = api.ingest(store, src, now=NOW)
    assert (same.batch_id, same.new) == (mention.batch_id, False)
    # The same bytes read with another --kind are other rows: a new batch, not "already stored".
    retweet = api.ingest(store, src, now=NOW, kind="retweet")
    assert retweet.new and retweet.batch_id != mention.batch_id
    assert retweet.duplicates_of_stored == 0
    assert dict(query(store, "SELECT kind::VARCHAR, count(*) FROM interaction GROUP BY 1")) == \
        {"mention": 400, "retweet": 400}


def test_kind_applies_only_to_uvt(tmp_path, base20):
    src = tmp_path / "higgs.csv"
    base20.write_csv(src)
    with pytest.raises(ValidationError) as exc:
        api.ingest(tmp_path / "audit.duckdb", src, now=NOW, kind="retweet")
    assert str(exc.value) == "--kind applies only to --format uvt, not csv"
    assert not (tmp_path / "audit.duckdb").exists()


@needs_otc
def test_signed_csv_full_file_keeps_ratings_as_weights(tmp_path):
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, OTC, now=NOW)
    assert (result.format, result.rows, result.accounts, result.warnings) == ("signed-csv", 35_592, 5_881, [])
    raw = pl.read_csv(OTC, has_header=False, infer_schema=False, new_columns=["s", "t", "rating", "time"])
    assert query(store, "SELECT kind::VARCHAR, count(*), count(*) FILTER (WHERE weight < 0) "
                        "FROM interaction GROUP BY 1") == \
        [("rating", 35_592, raw.filter(pl.col("rating").cast(pl.Int64) < 0).height)]
    assert raw.filter(pl.col("rating").cast(pl.Int64) < 0).height == 3_563
    stored = query_frame(store, "SELECT source, target, weight FROM interaction").sort("source", "target")
    expected = raw.select(pl.col("s").alias("source"), pl.col("t").alias("target"),
                          pl.col("rating").cast(pl.Float64).alias("weight")).sort("source", "target")
    assert_frame_equal(stored, expected)
    # Decimal epoch seconds are parsed exactly (first line: 6,2,4,1289241911.72836).
    assert query(store, "SELECT ts, weight FROM interaction WHERE source = '6' AND target = '2'") == \
        [(datetime(2010, 11, 8, 18, 45, 11, 728360, tzinfo=timezone.utc), 4.0)]


def test_csv_with_header_iso_timestamps_and_topic(tmp_path):
    raw = higgs_raw(50)
    rows = as_interactions(raw).with_columns(pl.lit("higgs").alias("topic"))
    iso = rows.with_columns(pl.from_epoch(pl.col("ts").cast(pl.Int64), time_unit="s")
                            .dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("ts"))
    src = tmp_path / "higgs-50.csv"
    iso.write_csv(src)
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, src, now=NOW)
    assert (result.format, result.rows, result.new, result.warnings) == ("csv", 50, True, [])
    assert result.accounts == pl.concat([raw["source"], raw["target"]]).n_unique()
    assert_frame_equal(stored_rows(store), expected_rows(rows))


def test_parquet_of_the_same_rows_is_the_same_batch(tmp_path):
    raw = higgs_raw(50)
    rows = as_interactions(raw)
    csv_file, pq_file = tmp_path / "higgs-50.csv", tmp_path / "higgs-50.parquet"
    rows.write_csv(csv_file)
    # Parquet with typed columns: integer ids, a real timestamp column.
    rows.with_columns(pl.col("source").cast(pl.Int64), pl.col("target").cast(pl.Int64),
                      pl.from_epoch(pl.col("ts").cast(pl.Int64), time_unit="s").alias("ts")).write_parquet(pq_file)
    alone = api.ingest(tmp_path / "pq-only.duckdb", pq_file, now=NOW)
    assert (alone.format, alone.rows) == ("parquet", 50)
    assert_frame_equal(stored_rows(tmp_path / "pq-only.duckdb"), expected_rows(rows))

    store = tmp_path / "audit.duckdb"
    first = api.ingest(store, csv_file, now=NOW)
    log = query(store, "SELECT * FROM log ORDER BY seq")
    second = api.ingest(store, pq_file, now=NOW)
    assert first.batch_id == alone.batch_id == second.batch_id
    assert (first.new, second.new) == (True, False)
    assert query(store, "SELECT count(*) FROM interaction") == [(50,)]
    assert query(store, "SELECT * FROM log ORDER BY seq") == log


def test_the_same_rows_in_another_order_are_the_same_batch(tmp_path):
    rows = as_interactions(higgs_raw(50))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    rows.write_csv(a)
    rows.reverse().write_csv(b)
    store = tmp_path / "audit.duckdb"
    first, second = api.ingest(store, a, now=NOW), api.ingest(store, b, now=NOW)
    assert (second.batch_id, second.new) == (first.batch_id, False)


def higgs_accounts(n: int) -> pl.DataFrame:
    """Accounts derived from the first n Higgs rows: id, first-seen instant as created_at, and
    followers = the number of distinct accounts that engaged with it in those rows."""
    raw = higgs_raw(n)
    ids = pl.concat([raw.select(pl.col("source").alias("account_id"), "epoch"),
                     raw.select(pl.col("target").alias("account_id"), "epoch")])
    first = ids.group_by("account_id").agg(pl.col("epoch").cast(pl.Int64).min())
    engaged = raw.group_by(pl.col("target").alias("account_id")).agg(pl.col("source").n_unique().alias("followers"))
    return (first.join(engaged, on="account_id", how="left")
            .select("account_id", pl.col("followers").fill_null(0).cast(pl.Int64),
                    pl.from_epoch("epoch", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("created_at"))
            .sort("account_id"))


def test_accounts_csv(tmp_path):
    accounts = higgs_accounts(200)
    src = tmp_path / "accounts.csv"
    accounts.write_csv(src)
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, src, now=NOW)
    assert (result.format, result.batch_kind, result.rows, result.accounts) == \
        ("csv", "accounts", accounts.height, accounts.height)
    stored = query_frame(store, "SELECT account_id, followers, created_at FROM account ORDER BY account_id")
    expected = accounts.select("account_id", "followers", pl.col("created_at").str.to_datetime(
        "%Y-%m-%dT%H:%M:%SZ", time_unit="us").dt.replace_time_zone("UTC"))
    assert_frame_equal(stored, expected)
    assert query(store, "SELECT count(*) FROM interaction") == [(0,)]


def test_accounts_csv_failures_name_lines(tmp_path):
    accounts = higgs_accounts(200)
    accounts = set_cell(set_cell(accounts, 5, "account_id", accounts["account_id"][2]),
                        9, "followers", "many")
    src = tmp_path / "accounts.csv"
    accounts.write_csv(src)
    with pytest.raises(ValidationError) as exc:
        api.ingest(tmp_path / "audit.duckdb", src, now=NOW)
    dup = accounts["account_id"][2]
    assert str(exc.value) == (
        f"{src}: rejected, nothing was stored:\n"
        f"  expect_column_values_to_be_unique on column account_id (account_id is unique in the file): "
        f"2 of {accounts.height} rows fail, e.g. line 4: account_id={dup!r}; line 7: account_id={dup!r}\n"
        f"  expect_column_values_to_be_in_set on column followers (followers is an integer): "
        f"1 of {accounts.height} rows fail, e.g. line 11: followers='many'")
    assert not (tmp_path / "audit.duckdb").exists()


@needs_shared(IA, OTC)
def test_auto_detects_each_format(tmp_path, base20):
    base20.write_csv(tmp_path / "i.csv")
    base20.write_parquet(tmp_path / "i.parquet")
    higgs_accounts(50).write_csv(tmp_path / "accounts.csv")
    (tmp_path / "h.txt").write_text("".join(higgs_lines(5)))
    assert {name: detect_format(path) for name, path in [
        ("higgs", HIGGS), ("higgs-plain", tmp_path / "h.txt"), ("ia", IA), ("otc", OTC),
        ("csv", tmp_path / "i.csv"), ("parquet", tmp_path / "i.parquet"), ("accounts", tmp_path / "accounts.csv"),
    ]} == {"higgs": "snap-higgs", "higgs-plain": "snap-higgs", "ia": "uvt", "otc": "signed-csv",
           "csv": "csv", "parquet": "parquet", "accounts": "csv"}


def test_undetectable_first_line_asks_for_format(tmp_path):
    src = tmp_path / "tabs.txt"
    src.write_text("".join(line.replace(" ", ";") for line in higgs_lines(5)))
    with pytest.raises(ValidationError) as exc:
        api.ingest(tmp_path / "audit.duckdb", src, now=NOW)
    first = higgs_lines(1)[0].strip().replace(" ", ";")
    assert str(exc.value) == (f'{src}: cannot tell the format from the first line "{first}": a CSV needs a header '
                              "naming source, target, kind, ts (interactions) or account_id (accounts); for another "
                              "layout pass --format (csv, parquet, snap-higgs, uvt, signed-csv)")


# ---------------------------------------------------------------- validation failures

def _missing_kind(df):
    return df.drop("kind")


def _empty_ids(df):
    return set_cell(set_cell(df, 4, "source", None), 9, "target", "   ")


def _unknown_kind(df):
    return set_cell(df, 2, "kind", "quote")


def _bad_ts(df):
    return set_cell(set_cell(set_cell(df, 5, "ts", "2012-07-01 25:00:00"), 12, "ts", "yesterday"),
                    15, "ts", "9300000000000")


def _non_finite(df):
    return set_cell(set_cell(set_cell(df, 1, "weight", "nan"), 3, "weight", "inf"), 8, "weight", "-inf")


def _dup_event(df):
    return set_cell(df, 6, "event_id", df["event_id"][2])


FAILURES: dict[str, tuple[Callable, str]] = {
    "missing column": (_missing_kind,
                       "required column(s) kind missing (expect_column_to_exist); the file has: "
                       "source, target, ts, weight, event_id. Interactions need source, target, kind, ts"),
    "null or empty id": (_empty_ids,
                         "\n  expect_column_values_to_not_be_null on column source (source is present): "
                         "1 of 20 rows fail, e.g. line 6: source=None"
                         "\n  expect_column_values_to_not_be_null on column target (target is present): "
                         "1 of 20 rows fail, e.g. line 11: target=''"),
    "unknown kind": (_unknown_kind,
                     f"\n  expect_column_values_to_be_in_set on column kind (kind is one of {KIND_LIST}): "
                     "1 of 20 rows fail, e.g. line 4: kind='quote'"),
    "unparseable ts": (_bad_ts,
                       "\n  expect_column_values_to_not_be_null on column ts "
                       "(ts is a UTC timestamp (ISO 8601 or epoch seconds)): 3 of 20 rows fail, e.g. "
                       "line 7: ts='2012-07-01 25:00:00'; line 14: ts='yesterday'; line 17: ts='9300000000000'"),
    "non-finite weight": (_non_finite,
                          "\n  expect_column_values_to_be_in_set on column weight (weight is a finite number): "
                          "3 of 20 rows fail, e.g. line 3: weight='nan'; line 5: weight='inf'; line 10: weight='-inf'"),
    "duplicate event_id": (_dup_event,
                           "\n  expect_column_values_to_be_unique on column event_id (event_id is unique): "
                           "2 of 20 rows fail, e.g. line 4: event_id='higgs-3'; line 8: event_id='higgs-3'"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_validation_failure_names_file_check_column_count_lines(case, store, tmp_path, base20):
    damage, detail = FAILURES[case]
    src = tmp_path / "higgs-20.csv"
    damage(base20).write_csv(src)
    before = store_state(store)
    with pytest.raises(ValidationError) as exc:
        api.ingest(store, src, now=NOW)
    sep = "" if detail.startswith("\n") else " "
    assert str(exc.value) == f"{src}: rejected, nothing was stored:{sep}{detail}"
    assert store_state(store) == before


def test_future_timestamp_is_rejected(store, tmp_path):
    raw = higgs_raw().gather_every(28_154)            # 20 rows spread over 2012-07-01..07
    assert raw.height == 20
    rows = as_interactions(raw)
    src = tmp_path / "higgs-week.csv"
    rows.write_csv(src)
    now = datetime(2012, 7, 2, tzinfo=timezone.utc)
    late = rows.with_row_index("line", offset=2).filter(pl.col("ts").cast(pl.Int64) > now.timestamp())
    assert 0 < late.height < 20
    before = store_state(store)
    with pytest.raises(ValidationError) as exc:
        api.ingest(store, src, now=now)
    examples = "; ".join(f"line {r['line']}: ts={r['ts']!r}" for r in late.head(5).iter_rows(named=True))
    assert str(exc.value) == (
        f"{src}: rejected, nothing was stored:\n  expect_column_values_to_be_between on column ts "
        f"(ts is not after the ingest time 2012-07-02T00:00:00+00:00): {late.height} of 20 rows fail, "
        f"e.g. {examples}")
    assert store_state(store) == before


def _png(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00")


def _gzip_named_csv(path: Path) -> None:
    path.write_bytes(gzip.compress("".join(higgs_lines(50)).encode(), mtime=0))


FILE_FAILURES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "empty file": ("empty.csv", lambda p: p.write_bytes(b""), "the file is empty (no rows); nothing was stored"),
    "empty gzip": ("empty.txt.gz", lambda p: p.write_bytes(gzip.compress(b"", mtime=0)),
                   "the file is empty (no rows); nothing was stored"),
    "header only": ("header.csv", lambda p: p.write_text("source,target,kind,ts,weight\n"),
                    "the file has a header but no rows; nothing was stored"),
    "png bytes": ("image.csv", _png, "not a text file (it contains NUL bytes); "
                                     "give a CSV, a Parquet file or one of the text formats in --format"),
    "gzip not named .gz": ("higgs.csv", _gzip_named_csv,
                           "not a text file (it contains NUL bytes); "
                           "give a CSV, a Parquet file or one of the text formats in --format"),
    "not a parquet file": ("higgs.parquet", lambda p: p.write_text("".join(higgs_lines(5))),
                           "cannot be read as Parquet: parquet: File out of specification: "
                           "The file must end with PAR1 or PARE"),
}


@pytest.mark.parametrize("case", list(FILE_FAILURES))
def test_unreadable_file_is_rejected(case, store, tmp_path):
    name, write, message = FILE_FAILURES[case]
    src = tmp_path / name
    write(src)
    before = store_state(store)
    with pytest.raises(ValidationError) as exc:
        api.ingest(store, src, now=NOW)
    assert str(exc.value) == f"{src}: {message}"
    assert store_state(store) == before


def test_non_utf8_text_names_the_byte(store, tmp_path):
    lines = higgs_lines(3000)
    first = tmp_path / "latin1-first.txt"
    first.write_bytes(("caf\xe9" + lines[0][6:] + "".join(lines[1:])).encode("latin-1"))
    late = tmp_path / "latin1-late.txt"
    damaged = lines[2500].split(" ")
    late.write_bytes(("".join(lines[:2500]) + " ".join(["caf\xe9", *damaged[1:]]) + "".join(lines[2501:]))
                     .encode("latin-1"))
    before = store_state(store)
    with pytest.raises(ValidationError) as exc:
        api.ingest(store, first, now=NOW)
    assert str(exc.value) == (f"{first}: not UTF-8 text (byte 3: b'\\xe9'); "
                              "give a CSV, a Parquet file or one of the text formats in --format")
    with pytest.raises(ValidationError) as exc:
        api.ingest(store, late, now=NOW)
    assert str(exc.value) == (f"{late}: cannot be read as text columns: invalid utf-8 sequence; "
                              "line 2501: byte 4 (b'\\xe9') is not UTF-8")
    assert store_state(store) == before


def test_extra_field_names_the_line(store, tmp_path):
    lines = higgs_lines(3000)
    lines[1999] = lines[1999].rstrip("\n") + " extra\n"
    src = tmp_path / "higgs.txt"
    src.write_text("".join(lines))
    before = store_state(store)
    with pytest.raises(ValidationError) as exc:
        api.ingest(store, src, now=NOW)
    assert str(exc.value) == (f"{src}: cannot be read as text columns: found more fields than defined in "
                              "'Schema'; line 2000 has 5 fields, expected 4")
    assert store_state(store) == before


def test_identical_rows_are_kept_with_a_warning(tmp_path):
    rows = as_interactions(higgs_raw(20))
    doubled = pl.concat([rows, rows.slice(3, 2), rows.slice(10, 1)])
    src = tmp_path / "higgs.csv"
    doubled.write_csv(src)
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, src, now=NOW)
    polars_count = doubled.height - doubled.unique().height
    assert polars_count == 3
    assert result.warnings == [{"code": "identical_rows", "count": 3, "example_lines": [22, 23, 24],
                                "text": "3 rows repeat an earlier row of this file exactly; kept as delivered"}]
    assert query(store, "SELECT count(*) FROM interaction") == [(23,)]


def test_identical_rows_ignore_columns_the_store_does_not_keep(tmp_path):
    raw = higgs_raw(20)
    rows = as_interactions(raw).with_columns(raw["line"].cast(pl.String).alias("higgs_line"))
    redelivered = rows.slice(3, 2).with_columns(pl.lit("again").alias("higgs_line"))
    src = tmp_path / "higgs.csv"
    pl.concat([rows, redelivered]).write_csv(src)
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, src, now=NOW)
    assert [(w["code"], w["count"], w["example_lines"]) for w in result.warnings] == \
        [("identical_rows", 2, [22, 23])]
    stored = stored_rows(store)
    assert stored.height - stored.unique().height == 2


@pytest.mark.slow
def test_cli_rejects_with_exit_2_and_no_traceback(tmp_path, base20):
    src = tmp_path / "higgs-20.csv"
    _unknown_kind(base20).write_csv(src)
    store = tmp_path / "audit.duckdb"
    proc = run_audit("--store", str(store), "ingest", str(src), timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"error: {src}: rejected, nothing was stored:\n"
                           f"  expect_column_values_to_be_in_set on column kind (kind is one of {KIND_LIST}): "
                           "1 of 20 rows fail, e.g. line 4: kind='quote'\n")
    assert not store.exists()


def test_cli_in_process_rejects_empty_file_with_exit_2(tmp_path, monkeypatch, capsys, seeded_template):
    from audit import cli
    store = tmp_path / "audit.duckdb"
    shutil.copy(seeded_template, store)
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    before = store_state(store)
    monkeypatch.setattr(sys, "argv", ["audit", "--store", str(store), "ingest", str(src)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", f"error: {src}: the file is empty (no rows); nothing was stored\n")
    assert store_state(store) == before


# ---------------------------------------------------------------- across batches, and what is stored

def test_cross_batch_duplicates_are_counted(tmp_path):
    day1, day12 = tmp_path / "higgs-day1.txt", tmp_path / "higgs-day1-2.txt"
    raw = higgs_raw(25_000)
    ts = pl.from_epoch(raw["epoch"].cast(pl.Int64), time_unit="s")
    n1 = int((ts < datetime(2012, 7, 2)).sum())
    n12 = int((ts < datetime(2012, 7, 3)).sum())
    assert (n1, n12) == (4_170, 20_244)
    lines = higgs_lines(n12)
    day1.write_text("".join(lines[:n1]))
    day12.write_text("".join(lines))
    store = tmp_path / "audit.duckdb"
    first = api.ingest(store, day1, now=NOW)
    second = api.ingest(store, day12, now=NOW)
    assert (first.duplicates_of_stored, first.new, second.new) == (0, True, True)
    assert second.duplicates_of_stored == n1
    assert second.warnings == [{"code": "already_stored", "count": n1, "example_lines": [],
                                "text": "4,170 interactions of this file are already stored in an earlier batch"}]
    validation = json.loads(query(store, "SELECT validation FROM batch WHERE batch_id = ?", [second.batch_id])[0][0])
    assert validation["duplicates_of_stored"] == n1
    # Kept as delivered: the day-1 rows are stored in both batches.
    assert query(store, "SELECT count(*) FROM interaction") == [(n1 + n12,)]


def test_validation_result_is_stored_with_the_batch(tmp_path, base20):
    src = tmp_path / "higgs-20.csv"
    base20.write_csv(src)
    store = tmp_path / "audit.duckdb"
    result = api.ingest(store, src, now=NOW)
    validation = json.loads(query(store, "SELECT validation FROM batch WHERE batch_id = ?", [result.batch_id])[0][0])
    assert validation["rows"] == 20
    assert validation["validator"].startswith("great_expectations ")
    assert (validation["warnings"], validation["duplicates_of_stored"]) == ([], 0)
    checks = [(e["expectation"], e["column"], e["success"], e["unexpected"], e["examples"])
              for e in validation["expectations"]]
    assert checks == [
        ("expect_column_values_to_not_be_null", "source", True, 0, []),
        ("expect_column_values_to_not_be_null", "target", True, 0, []),
        ("expect_column_values_to_not_be_null", "kind", True, 0, []),
        ("expect_column_values_to_be_in_set", "kind", True, 0, []),
        ("expect_column_values_to_not_be_null", "ts_epoch", True, 0, []),
        ("expect_column_values_to_be_between", "ts_epoch", True, 0, []),
        ("expect_column_values_to_be_in_set", "weight_finite", True, 0, []),
        ("expect_column_values_to_be_unique", "event_id", True, 0, []),
    ]
    assert [e["describe"] for e in validation["expectations"]][5] == \
        "ts is not after the ingest time 2026-01-01T00:00:00+00:00"
