"""Snapshots: immutable selections of stored batches (as-of instant and window) that copy no rows,
checked against direct polars counts on the raw Higgs file."""
from __future__ import annotations

import gzip
import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit import api
from audit.errors import AuditError, NotFound
from audit.records.snapshots import load_inputs, parse_instant, parse_window
from audit.store.db import connect
from conftest import audit_main, store_state

ROOT = Path(__file__).resolve().parent.parent
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
UTC = timezone.utc
HIGGS_KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}
WINDOW_HELP = 'is not a duration; use a number and a unit, e.g. 7d, 12h, 2w, or "all"'


def read_higgs(n: int | None = None) -> pl.DataFrame:
    """The raw Higgs file read directly with polars, in the algorithm input shape and in file
    order: the order the store hands rows to an algorithm."""
    raw = pl.read_csv(HIGGS, separator=" ", has_header=False, infer_schema=False, n_rows=n,
                      new_columns=["source", "target", "epoch", "code"])
    return raw.select(
        "source", "target", pl.col("code").replace_strict(HIGGS_KINDS).alias("kind"),
        pl.from_epoch(pl.col("epoch").cast(pl.Int64), time_unit="s").dt.cast_time_unit("us")
        .dt.replace_time_zone("UTC").alias("ts"),
        pl.lit(1.0).alias("weight"),
    )


def in_window(frame: pl.DataFrame, as_of: datetime, seconds: int | None) -> pl.DataFrame:
    keep = pl.col("ts") < as_of
    if seconds is not None:
        keep &= pl.col("ts") >= as_of - timedelta(seconds=seconds)
    return frame.filter(keep)


def n_accounts(frame: pl.DataFrame) -> int:
    return pl.concat([frame["source"], frame["target"]]).n_unique()


def head_lines(n: int) -> str:
    with gzip.open(HIGGS, "rt") as fh:
        return "".join(next(fh) for _ in range(n))


def query(store: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def table_counts(store: Path) -> dict[str, int]:
    return {t: query(store, f"SELECT count(*) FROM {t}")[0][0] for t in ("interaction", "account", "batch")}


def as_stored(snap):
    """A snapshot as read back later: `new` is only true on the call that created it."""
    return replace(snap, new=False)


# ---------------------------------------------------------------- the full week

@pytest.fixture(scope="module")
def week_template(tmp_path_factory) -> dict:
    """The full Higgs file ingested once, and the raw file read independently."""
    store = tmp_path_factory.mktemp("week") / "audit.duckdb"
    api.ingest(store, HIGGS, now=NOW)
    return {"store": store, "raw": read_higgs()}


@pytest.fixture
def week(week_template, tmp_path) -> dict:
    """A private copy of the ingested store: each test sees only the snapshots it makes itself,
    whichever tests ran before it."""
    store = tmp_path / "audit.duckdb"
    shutil.copy(week_template["store"], store)
    wal = week_template["store"].with_name("audit.duckdb.wal")
    if wal.exists():
        shutil.copy(wal, tmp_path / "audit.duckdb.wal")
    return {**week_template, "store": store}


@pytest.mark.slow
def test_daily_7d_snapshots_count_what_polars_counts(week):
    store, raw = week["store"], week["raw"]
    before = table_counts(store)
    seen = []
    for day in range(1, 8):
        snap = api.snapshot(store, as_of=f"2012-07-0{day}", window="7d", label=f"2012-07-0{day}", now=NOW)
        as_of = datetime(2012, 7, day + 1, tzinfo=UTC)   # a bare date is the end of that day
        expected = in_window(raw, as_of, 7 * 86400)
        assert (snap.as_of, snap.window_seconds, snap.new) == (as_of, 7 * 86400, True)
        assert (snap.interactions, snap.accounts) == (expected.height, n_accounts(expected))
        seen.append(snap.interactions)
    # The week starts on 07-01, so a 7-day window ending each day holds everything so far.
    assert seen == [4_170, 20_244, 53_746, 410_134, 508_776, 546_223, 563_069]
    assert table_counts(store) == before                      # no rows copied
    listed = api.snapshots(store)
    assert [s.label for s in listed] == [f"2012-07-0{d}" for d in range(1, 8)]
    assert api.get_snapshot(store, "latest") == listed[-1]
    assert api.verify(store).ok


@pytest.mark.slow
def test_daily_1d_snapshots_match_daily_counts(week):
    store, raw = week["store"], week["raw"]
    daily = dict(raw.group_by(pl.col("ts").dt.date()).len().iter_rows())
    for day in range(1, 8):
        snap = api.snapshot(store, as_of=f"2012-07-0{day}", window="1d", now=NOW)
        assert snap.interactions == daily[datetime(2012, 7, day).date()]
    assert [daily[datetime(2012, 7, d).date()] for d in range(1, 8)] == \
        [4_170, 16_074, 33_502, 356_388, 98_642, 37_447, 16_846]


@pytest.mark.slow
def test_snapshot_inputs_are_the_raw_rows(week):
    store, raw = week["store"], week["raw"]
    snap = api.snapshot(store, as_of="2012-07-04T12:00:00Z", window="36h", now=NOW)
    with connect(store) as con:
        interactions, accounts = load_inputs(con, snap)
    expected = in_window(raw, datetime(2012, 7, 4, 12, tzinfo=UTC), 36 * 3600)
    assert_frame_equal(interactions, expected)
    assert (snap.interactions, snap.accounts, accounts.height) == (expected.height, n_accounts(expected), 0)


# ---------------------------------------------------------------- small real stores

@pytest.fixture(scope="module")
def small_template(tmp_path_factory) -> dict:
    """The first 3,000 Higgs rows (2012-07-01 00:02 .. 12:53) in a store."""
    d = tmp_path_factory.mktemp("small")
    src = d / "higgs-3000.txt"
    src.write_text(head_lines(3000))
    store = d / "audit.duckdb"
    batch = api.ingest(store, src, now=NOW)
    return {"store": store, "batch": batch.batch_id, "raw": read_higgs(3000), "dir": d}


@pytest.fixture
def small(tmp_path, small_template) -> dict:
    store = tmp_path / "audit.duckdb"
    shutil.copy(small_template["store"], store)
    return {**small_template, "store": store}


def test_same_snapshot_twice_is_the_same_record(small):
    store = small["store"]
    first = api.snapshot(store, as_of="2012-07-01T06:00:00Z", window="6h", label="morning", now=NOW)
    log = query(store, "SELECT * FROM log ORDER BY seq")
    again = api.snapshot(store, as_of="2012-07-01T08:00:00+02:00", window="360m", label="other label",
                         now=NOW + timedelta(days=1))
    assert (again.snapshot_id, again.new, first.new) == (first.snapshot_id, False, True)
    assert (again.label, again.created_at) == ("morning", NOW)         # kept from the first
    assert query(store, "SELECT * FROM log ORDER BY seq") == log
    assert query(store, "SELECT count(*) FROM snapshot") == [(1,)]


def test_snapshot_copies_no_rows(small):
    store = small["store"]
    before = table_counts(store)
    snaps = [api.snapshot(store, as_of=f"2012-07-01T{h:02d}:00:00Z", window="2h", now=NOW) for h in range(1, 13)]
    assert table_counts(store) == before
    assert query(store, "SELECT count(*) FROM snapshot") == [(len({s.snapshot_id for s in snaps}),)]
    assert all(s.batch_ids == (small["batch"],) for s in snaps)


def test_window_bounds_are_half_open(small):
    """[as_of - window, as_of): a row exactly at as_of is out, a row exactly at the lower bound is in."""
    store, raw = small["store"], small["raw"]
    at = raw["ts"][1000]
    at_rows = raw.filter(pl.col("ts") == at).height
    snap = api.snapshot(store, as_of=at, window=None, now=NOW)
    assert snap.interactions == raw.filter(pl.col("ts") < at).height == 1000 - (raw["ts"][:1000] == at).sum()
    lower = raw["ts"][500]
    seconds = int((at - lower).total_seconds())
    bounded = api.snapshot(store, as_of=at, window=f"{seconds}s", now=NOW)
    assert bounded.interactions == in_window(raw, at, seconds).height
    assert bounded.interactions == raw.filter((pl.col("ts") >= lower) & (pl.col("ts") < at)).height
    assert at_rows >= 1 and raw.filter(pl.col("ts") == lower).height >= 1


def test_new_batch_makes_a_new_snapshot_and_leaves_the_old_one(small):
    store = small["store"]
    old = api.snapshot(store, as_of="2012-07-02", now=NOW)
    more = small["dir"] / "higgs-3000-5000.txt"
    more.write_text(head_lines(5000)[len(head_lines(3000)):])
    batch = api.ingest(store, more, now=NOW)
    new = api.snapshot(store, as_of="2012-07-02", now=NOW)
    assert new.snapshot_id != old.snapshot_id and new.new
    assert new.batch_ids == tuple(sorted((small["batch"], batch.batch_id)))
    assert (new.interactions, old.interactions) == (5000, 3000)
    assert api.get_snapshot(store, old.snapshot_id) == as_stored(old)
    assert api.verify(store).ok


def test_accounts_batch_counts_in_the_snapshot(small, tmp_path):
    store, raw = small["store"], small["raw"]
    # Accounts delivered for the first 50 rows' engagers: ids of the file, first seen as created_at.
    first = raw.head(50)
    accounts = (first.group_by(pl.col("source").alias("account_id")).agg(pl.col("ts").min().alias("created_at"))
                .sort("account_id"))
    src = tmp_path / "accounts.csv"
    accounts.with_columns(pl.col("created_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(src)
    api.ingest(store, src, now=NOW)
    as_of = datetime(2012, 7, 1, 1, tzinfo=UTC)
    snap = api.snapshot(store, as_of=as_of, window="30m", now=NOW)
    window = in_window(raw, as_of, 1800)
    ids = pl.concat([window["source"], window["target"], accounts["account_id"]]).n_unique()
    assert (snap.interactions, snap.accounts) == (window.height, ids)
    with connect(store) as con:
        _, loaded = load_inputs(con, snap)
    assert loaded["account_id"].to_list() == accounts["account_id"].to_list()
    assert loaded["created_at"].to_list() == accounts["created_at"].dt.cast_time_unit("us").to_list()


def test_latest_is_the_newest_as_of(small):
    store = small["store"]
    late = api.snapshot(store, as_of="2012-07-01T12:00:00Z", window="1h", now=NOW)
    early = api.snapshot(store, as_of="2012-07-01T03:00:00Z", window="1h", now=NOW + timedelta(hours=1))
    assert api.get_snapshot(store, "latest") == as_stored(late)
    assert [s.snapshot_id for s in api.snapshots(store)] == [early.snapshot_id, late.snapshot_id]


def test_unique_prefix_resolves_and_unknown_is_named(small):
    store = small["store"]
    snaps = [api.snapshot(store, as_of=f"2012-07-01T{h:02d}:00:00Z", window="1h", now=NOW) for h in (2, 4, 6)]
    ids = [s.snapshot_id for s in snaps]
    for snap in snaps:
        prefix = next(snap.snapshot_id[:n] for n in range(3, 15)
                      if sum(i.startswith(snap.snapshot_id[:n]) for i in ids) == 1)
        assert api.get_snapshot(store, prefix) == as_stored(snap)
    with pytest.raises(NotFound) as exc:
        api.get_snapshot(store, "s_zzzz")
    assert str(exc.value) == 'snapshot "s_zzzz" not found; "audit snapshots" lists them'
    with pytest.raises(NotFound) as exc:
        api.get_snapshot(store, "s_1; DROP TABLE log")
    assert str(exc.value) == 'snapshot "s_1; DROP TABLE log" not found; "audit snapshots" lists them'
    with pytest.raises(AuditError) as exc:
        api.get_snapshot(store, "s_")
    assert str(exc.value) == (f'snapshot prefix "s_" is ambiguous ({", ".join(sorted(ids)[:2])}, ...); '
                              "give more characters")


def test_latest_without_snapshots_is_named(small):
    with pytest.raises(NotFound) as exc:
        api.get_snapshot(small["store"], "latest")
    assert str(exc.value) == 'there is no snapshot yet; "audit snapshots" lists them'


@pytest.mark.parametrize("text, seconds", [
    ("7d", 7 * 86400), ("12h", 12 * 3600), ("2w", 14 * 86400), ("90m", 5400), ("30s", 30), (" 36h ", 129600),
    ("all", None), (None, None)])
def test_window_parses(text, seconds):
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["7", "7 days", "0d", "-7d", "7y", "1.5d", "", "d"])
def test_window_errors_are_clear_and_store_is_unchanged(text, small):
    with pytest.raises(AuditError) as exc:
        parse_window(text)
    assert str(exc.value) == f'window "{text}" {WINDOW_HELP}'
    before = store_state(small["store"])
    with pytest.raises(AuditError, match="is not a duration"):
        api.snapshot(small["store"], as_of="2012-07-02", window=text, now=NOW)
    assert store_state(small["store"]) == before


@pytest.mark.parametrize("text, instant", [
    ("2012-07-03", datetime(2012, 7, 4, tzinfo=UTC)),
    ("2012-07-03T12:00:00", datetime(2012, 7, 3, 12, tzinfo=UTC)),
    ("2012-07-03T12:00:00Z", datetime(2012, 7, 3, 12, tzinfo=UTC)),
    ("2012-07-03T12:00:00+02:00", datetime(2012, 7, 3, 10, tzinfo=UTC)),
    ("2012-07-03 12:30", datetime(2012, 7, 3, 12, 30, tzinfo=UTC)),
])
def test_as_of_parses(text, instant):
    parsed = parse_instant(text)
    assert parsed == instant and parsed.utcoffset() == timedelta(0)


AS_OF_HELP = 'is not a date or an ISO 8601 instant; e.g. 2012-07-04 or 2012-07-04T12:00:00Z'


@pytest.mark.parametrize("text", ["2012-07-32", "yesterday", "07/03/2012", ""])
def test_as_of_errors_are_clear(text, small):
    before = store_state(small["store"])
    with pytest.raises(AuditError) as exc:
        api.snapshot(small["store"], as_of=text, now=NOW)
    assert str(exc.value) == f'"{text}" {AS_OF_HELP}'
    assert store_state(small["store"]) == before


@pytest.mark.parametrize("command", ["snapshot", "history"])
@pytest.mark.parametrize("text", ["2012-07-32", "yesterday"])
def test_cli_as_of_errors_exit_2_and_leave_the_store_unchanged(command, text, small):
    store = small["store"]
    api.snapshot(store, as_of="2012-07-02", now=NOW)
    before = store_state(store)
    args = ["snapshot", "--as-of", text] if command == "snapshot" else ["history", "3604", "--as-of", text]
    code, out, err = audit_main("--store", str(store), *args)
    assert (code, out, err) == (2, "", f'error: "{text}" {AS_OF_HELP}\n')
    assert store_state(store) == before


def test_snapshot_of_an_empty_store_is_refused(tmp_path, small):
    store = tmp_path / "empty.duckdb"
    # A migrated store that holds no batch (a rejected ingest never creates one).
    with connect(store, write=True, create=True):
        pass
    with pytest.raises(AuditError) as exc:
        api.snapshot(store, as_of="2012-07-02", now=NOW)
    assert str(exc.value) == 'the store holds no batches yet; "audit ingest FILE" stores one'
    assert api.snapshots(store) == []


def test_snapshot_without_a_store_creates_nothing(tmp_path):
    store = tmp_path / "none.duckdb"
    with pytest.raises(AuditError, match="no batches yet|no store"):
        api.snapshot(store, as_of="2012-07-02", now=NOW)
    assert not store.exists()
