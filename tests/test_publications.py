"""Publications and history are never rewritten, on the real Higgs week.

The issue's own scenario: activity@1 is published for 2012-07-01..07; a later release
restates every day with network@2. History read as published stays what it was, history
read as restated shows the network@2 scores, history as of an instant between the two
releases shows what was on display then, and the log still verifies.
"""
from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit import api
from audit.errors import AuditError
from audit.records.publications import HISTORY_SCHEMA
from audit.store.db import connect
from audit.records.verify import recompute_publication

from conftest import DAYS, Clock, RealStore, query, read_frame, run_audit

ROUND_1 = datetime(2026, 2, 1, tzinfo=timezone.utc)       # activity@1 published
BETWEEN = datetime(2026, 2, 15, tzinfo=timezone.utc)
ROUND_2 = datetime(2026, 3, 1, tzinfo=timezone.utc)       # network@2 restates




def audit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_audit(*args, cwd=cwd)


def publish_days(store: Path, real: RealStore, algorithm: str, days: list[str], clock: Clock) -> list:
    return [api.publish(store, real.runs[(day, algorithm)], period=day, now=clock()) for day in days]


def chosen_accounts(real: RealStore) -> list[str]:
    """The 50 best of day 7 (activity@1), five that appear only from day 4 on (gaps before), and one
    id that is in no run."""
    top = api.scores(real.path, real.runs[("2012-07-07", "activity@1")], top=50)["account_id"].to_list()
    late = query(real.path, """
        SELECT account_id FROM score WHERE run_id = ?
        EXCEPT SELECT account_id FROM score WHERE run_id = ? ORDER BY 1 LIMIT 5""",
                 [real.runs[("2012-07-07", "activity@1")], real.runs[("2012-07-03", "activity@1")]])
    return top + [r[0] for r in late] + ["no-such-account"]


@pytest.fixture(scope="module")
def released(real, tmp_path_factory) -> dict:
    """A copy of the store through both releases, with what history looked like in between."""
    folder = tmp_path_factory.mktemp("released")
    store = real.copy_to(folder)
    accounts = chosen_accounts(real)
    first = publish_days(store, real, "activity@1", DAYS, Clock(ROUND_1))
    before = {"published": api.history(store, accounts), "restated": api.history(store, accounts, restated=True)}
    table_before = read_frame(store, "SELECT * FROM publication ORDER BY publication_id")
    second = publish_days(store, real, "network@2", DAYS, Clock(ROUND_2))
    return {"store": store, "folder": folder, "accounts": accounts, "first": first, "second": second,
            "before": before, "table_before": table_before}


def network_scores(real: RealStore, accounts: list[str], days: list[str]) -> pl.DataFrame:
    """Each day's network@2 scores of ACCOUNTS as api.scores reads them."""
    return pl.concat([
        api.scores(real.path, real.runs[(day, "network@2")], accounts=accounts)
        .select("account_id", pl.lit(day).alias("period"), "score", "rank",
                pl.lit(real.runs[(day, "network@2")]).alias("run_id"))
        for day in days]).sort("account_id", "period")


# ---------------------------------------------------------------- the scenario

def test_first_release_publishes_every_day_once(released, real):
    assert [(p.run_id, p.period, p.restates, p.new) for p in released["first"]] == [
        (real.runs[(day, "activity@1")], day, None, True) for day in DAYS]
    before = released["before"]["published"]
    assert_frame_equal(before, released["before"]["restated"])      # nothing restated yet
    assert before.schema == pl.Schema(HISTORY_SCHEMA)
    assert set(before["algorithm"]) == {"activity@1"}
    assert not before["restated"].any() and not before["algorithm_changed"].any()
    # the 50 best of day 7 and the late accounts, each with a point per day it has a score
    per_account = dict(before.group_by("account_id").len().iter_rows())
    late = released["accounts"][50:55]
    assert all(per_account[a] < 7 for a in late)
    assert "no-such-account" not in per_account
    scored = query(released["store"], """
        SELECT count(*) FROM score s JOIN run r USING (run_id) JOIN algorithm a USING (algorithm_id)
        WHERE a.name = 'activity' AND s.account_id IN (SELECT unnest(?))""", [released["accounts"]])
    assert before.height == sum(per_account.values()) == scored[0][0]


def test_published_history_is_not_rewritten_by_a_restatement(released):
    after = api.history(released["store"], released["accounts"])
    before = released["before"]["published"]
    # the same scores; only the marks of the view say that a later publication exists now
    marks = ["restated", "superseded"]
    assert_frame_equal(after.drop(marks), before.drop(marks), check_exact=True)
    assert after["superseded"].all() and not before["superseded"].any()
    # the one thing that changes: each point now says its period was restated since
    assert not before["restated"].any() and after["restated"].all()


def test_restated_history_shows_the_network_scores(released, real):
    restated = api.history(released["store"], released["accounts"], restated=True)
    want = network_scores(real, released["accounts"], DAYS)
    assert_frame_equal(restated.select("account_id", "period", "score", "rank", "run_id"), want,
                       check_exact=True)
    assert set(restated["algorithm"]) == {"network@2"}
    assert restated["restated"].all()
    by_period = {p.period: p for p in released["second"]}
    assert restated["publication_id"].to_list() == [by_period[d].publication_id for d in restated["period"]]
    assert restated.select((pl.col("published_at") >= ROUND_2).all()).item()


def test_history_as_of_an_instant_shows_what_was_on_display(released):
    store, accounts = released["store"], released["accounts"]
    before = released["before"]["published"]
    assert_frame_equal(api.history(store, accounts, as_of=BETWEEN), before, check_exact=True)
    assert_frame_equal(api.history(store, accounts, as_of=ROUND_2 + timedelta(days=1)),
                       api.history(store, accounts, restated=True), check_exact=True)
    # in the middle of the first release: the first three days only
    mid = api.history(store, accounts, as_of=ROUND_1 + timedelta(seconds=2))
    assert_frame_equal(mid, before.filter(pl.col("period") <= "2012-07-03"), check_exact=True)
    # in the middle of the restating release: days 1-2 restated, the rest as first published
    mixed = api.history(store, accounts, as_of=ROUND_2 + timedelta(seconds=1))
    assert dict(mixed.group_by("period").agg(pl.col("algorithm").unique().first()).iter_rows()) == {
        day: "network@2" if day <= "2012-07-02" else "activity@1" for day in DAYS}
    empty = api.history(store, accounts, as_of=ROUND_1 - timedelta(seconds=1))
    assert empty.height == 0 and empty.schema == pl.Schema(HISTORY_SCHEMA)


def test_a_restatement_points_at_the_original_which_stays_as_it_was(released):
    first = {p.period: p for p in released["first"]}
    for pub in released["second"]:
        assert pub.new and pub.restates == first[pub.period].publication_id
    table_after = read_frame(released["store"], "SELECT * FROM publication ORDER BY publication_id")
    originals = table_after.filter(
        pl.col("publication_id").is_in(released["table_before"]["publication_id"].implode()))
    assert_frame_equal(originals, released["table_before"], check_exact=True)
    assert table_after.height == 14
    assert [p.publication_id for p in api.publications(released["store"])] == [
        p.publication_id for p in released["first"] + released["second"]]


def test_the_log_verifies_after_both_releases(released):
    result = api.verify(released["store"])
    assert result.problems == []
    assert result.ok and result.entries == 24 + 14


def test_algorithm_changed_marks_the_first_point_after_the_change(real, tmp_path):
    store = real.copy_to(tmp_path)
    accounts = chosen_accounts(real)
    publish_days(store, real, "activity@1", DAYS, Clock(ROUND_1))
    publish_days(store, real, "network@2", DAYS[4:], Clock(ROUND_2))       # restate days 5-7 only
    restated = api.history(store, accounts, restated=True)
    assert dict(restated.group_by("period").agg(pl.col("algorithm").unique().first()).iter_rows()) == {
        day: "network@2" if day >= "2012-07-05" else "activity@1" for day in DAYS}
    assert restated["restated"].to_list() == [p >= "2012-07-05" for p in restated["period"]]
    for account, points in restated.group_by("account_id", maintain_order=True):
        periods = points["period"].to_list()
        changed = points.filter("algorithm_changed")["period"].to_list()
        if periods[0] < "2012-07-05":
            assert changed == ["2012-07-05"], account        # scored every day from its first: no gap there
        else:
            assert changed == [], account                    # its first point has no earlier one to differ from
    assert not api.history(store, accounts)["algorithm_changed"].any()    # as published: one version

    every_day = restated.group_by("account_id").len().filter(pl.col("len") == 7)["account_id"].min()
    proc = audit("--store", str(store), "history", every_day, "--restated", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"account {every_day}"
    point = re.compile(r"  (\S+) +[0-9.]+  rank +[0-9,]+  ([ *])(\S+) +r_[0-9a-f]{12}(?:  (restatement))?")
    marks = [point.fullmatch(line).group(1, 2, 3, 4) for line in lines[1:]]
    assert marks == [(day, " ", "activity@1", None) for day in DAYS[:4]] + [
        ("2012-07-05", "*", "network@2", "restatement"), ("2012-07-06", " ", "network@2", "restatement"),
        ("2012-07-07", " ", "network@2", "restatement")]


# ---------------------------------------------------------------- publishing, one run at a time

def test_publishing_a_run_twice_is_a_no_op_that_says_so(released, real):
    store, folder = released["store"], released["folder"]
    original = released["first"][0]
    log = query(store, "SELECT count(*) FROM log")
    again = api.publish(store, original.run_id, period=original.period, now=ROUND_2 + timedelta(days=5))
    assert again.new is False
    assert again == original.__class__(**{**original.__dict__, "new": False})     # the stored record
    proc = audit("--store", str(store), "publish", original.run_id, "--period", original.period, cwd=folder)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (f"already published: {original.run_id} for {original.period} "
                           f"({original.publication_id}); nothing new\n")
    assert query(store, "SELECT count(*) FROM log") == log


def test_publishing_an_unknown_run_is_a_clear_error(released):
    store = released["store"]
    before = store.read_bytes()
    proc = audit("--store", str(store), "publish", "r_000000000000", "--period", "2012-07-01",
                 cwd=released["folder"])
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == 'error: run "r_000000000000" not found; "audit runs" lists them\n'
    assert store.read_bytes() == before
    with pytest.raises(AuditError) as exc:
        api.publish(store, released["first"][0].run_id, period="  ", now=ROUND_2 + timedelta(days=6))
    assert str(exc.value) == "--period must not be empty; e.g. --period 2012-07-04"
    assert store.read_bytes() == before


def test_a_restatement_must_come_after_the_publication_it_restates(real, tmp_path):
    store = real.copy_to(tmp_path)
    first = api.publish(store, real.runs[("2012-07-04", "activity@1")], period="2012-07-04", now=ROUND_2)
    log = query(store, "SELECT count(*) FROM log")
    for at in (ROUND_2, ROUND_1):
        with pytest.raises(AuditError) as exc:
            api.publish(store, real.runs[("2012-07-04", "network@2")], period="2012-07-04", now=at)
        assert str(exc.value) == ("period 2012-07-04 was last published at 2026-03-01T00:00:00+00:00; "
                                  "a restatement must be published after it")
    assert query(store, "SELECT count(*) FROM log") == log
    assert api.publications(store) == [first.__class__(**{**first.__dict__, "new": False})]


def test_publication_instants_in_any_zone_hash_as_stored(real, tmp_path):
    """`now` with an offset, or naive (UTC), is stored in UTC; the logged hash must be the one
    verify recomputes from the stored row."""
    store = real.copy_to(tmp_path)
    paris = timezone(timedelta(hours=2))
    a = api.publish(store, real.runs[("2012-07-01", "activity@1")], period="2012-07-01",
                    now=datetime(2026, 2, 1, 12, tzinfo=paris))
    b = api.publish(store, real.runs[("2012-07-01", "network@2")], period="2012-07-01",
                    now=datetime(2026, 2, 1, 11))                       # naive: UTC, one hour later
    assert b.restates == a.publication_id
    assert a.published_at == datetime(2026, 2, 1, 10, tzinfo=timezone.utc)
    logged = dict(query(store, "SELECT record_id, content_hash FROM log WHERE record_kind = 'publication'"))
    with connect(store) as con:
        for pub in (a, b):
            assert recompute_publication(con, pub.publication_id) == logged[pub.publication_id]


# ---------------------------------------------------------------- many accounts at once

@pytest.mark.parametrize("restated", [False, True], ids=["published", "restated"])
def test_history_of_ten_thousand_accounts(restated, released, real):
    rng = np.random.default_rng(2012)
    everyone = query(released["store"], "SELECT account_id FROM score WHERE run_id = ? ORDER BY 1",
                     [real.runs[("2012-07-07", "activity@1")]])
    accounts = rng.choice([r[0] for r in everyone], size=10_000, replace=False).tolist()
    t0 = time.perf_counter()
    history = api.history(released["store"], accounts, restated=restated)
    print(f"history of {len(accounts):,} accounts ({'restated' if restated else 'published'}): "
          f"{history.height:,} rows in {time.perf_counter() - t0:.2f}s")
    algorithm = "network@2" if restated else "activity@1"
    expected = read_frame(released["store"], """
        SELECT s.account_id, p.period FROM score s JOIN publication p USING (run_id)
        JOIN run USING (run_id) JOIN algorithm a USING (algorithm_id)
        WHERE s.account_id IN (SELECT unnest($accounts)) AND a.name || '@' || a.version = $algorithm
        ORDER BY 1, 2""", {"accounts": accounts, "algorithm": algorithm})
    assert_frame_equal(history.select("account_id", "period"), expected)
    assert history.select(pl.struct("account_id", "period").is_unique().all()).item()
    assert set(history["algorithm"]) == {algorithm}
    # each row's score and rank, against the run's stored scores read directly: rank = 1 + the
    # number of accounts in that run with a strictly higher score
    run_of = {day: real.runs[(day, algorithm)] for day in DAYS}
    assert dict(history.select("period", "run_id").unique().iter_rows()) == {
        day: run_of[day] for day in set(history["period"])}
    checked = 0
    for day, rows in history.group_by("period"):
        run_scores = read_frame(released["store"], "SELECT account_id, score FROM score WHERE run_id = ?",
                                [run_of[day[0]]])
        ordered = np.sort(run_scores["score"].to_numpy())
        mine = rows.select("account_id", "score", "rank").join(
            run_scores.rename({"score": "stored"}), on="account_id", how="left")
        assert mine["stored"].null_count() == 0
        assert (mine["score"] == mine["stored"]).all(), day
        higher = ordered.size - np.searchsorted(ordered, mine["stored"].to_numpy(), side="right")
        assert mine["rank"].to_list() == (1 + higher).tolist(), day
        checked += rows.height
    assert checked == history.height > 10_000
