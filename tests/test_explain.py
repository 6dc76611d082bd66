"""Explanations that are true: every sentence agrees with its numbers, on every kind of change.

The arithmetic (parts add up to the stored change; each part agrees with an independent
recomputation from the stored runs and the versions' hooks) is checked on the bundled Higgs week.
The sentences are checked on real data the project did not tune on: Bitcoin Alpha's signed
ratings, MathOverflow answers, the Quantum Computing Stack Exchange (with its accounts file) and
CollegeMsg messages. Each case the issue found has its own test with the exact sentence, its
numbers read straight from the raw file; a property test reads every reason of several hundred
explanations and checks its direction words and points against the numbers it names.
"""
from __future__ import annotations

import random
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from audit import api, cli, present
from audit.analysis.explain import MAX_REASONS, SHOWN, Explanation
from audit.errors import AuditError
from audit.store.db import configure
from explain_data import DATASETS, SHARED, accounts_file, build, dumps, end_of, raw, received, window
from reports.render import render_account

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def alpha(tmp_path_factory):
    return build("alpha", tmp_path_factory.mktemp("alpha"))


@pytest.fixture(scope="session")
def mo(tmp_path_factory):
    return build("mo", tmp_path_factory.mktemp("mo"))


@pytest.fixture(scope="session")
def qc(tmp_path_factory):
    return build("qc", tmp_path_factory.mktemp("qc"))


@pytest.fixture(scope="session")
def cm(tmp_path_factory):
    return build("cm", tmp_path_factory.mktemp("cm"))


@pytest.fixture(scope="session")
def raws() -> dict[str, pl.DataFrame]:
    return {}


def frame_of(raws: dict, name: str) -> pl.DataFrame:
    if name not in raws:
        raws[name] = raw(name)
    return raws[name]


def explain(built, account: str, a: tuple[str, str], b: tuple[str, str]) -> Explanation:
    return api.explain(built.path, account, from_run=built.run(*a), to_run=built.run(*b), now=built.now())


def close(x: float, y: float, tol: float = 1e-9) -> bool:
    return abs(x - y) <= tol


def reason(e: Explanation, code_part: str):
    found = [r for r in e.reasons if code_part in r.code]
    assert found, [r.code for r in e.reasons]
    return found[0]


def stored(path: Path, sql: str, params: list) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------- what a sentence may say

NUM = r"([+-]?[\d,]*\.?\d+)"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def claimed_sign(text: str) -> int | None:
    """The sign a reason's own words give its points (None: it claims no direction)."""
    if re.search(r"stays at the (cap|floor)", text):
        return 0
    if m := re.search(r"passes on (more|less)( distrust)?", text):
        s = 1 if m.group(1) == "more" else -1
        return -s if m.group(2) else s
    if m := re.search(r"ranks (higher|lower)", text):
        return 1 if m.group(1) == "higher" else -1
    if m := re.search(r"worth (more|fewer) points", text):
        return 1 if m.group(1) == "more" else -1
    if m := re.search(r"gives the account's rank \(.*\) " + NUM + r" points where .* gave " + NUM, text):
        a, b = _num(m.group(1)), _num(m.group(2))
        return None if a == b else (1 if a > b else -1)
    flip = -1 if re.match(r"(Distrust|Negative)", text) else 1
    if m := re.search(r"stayed at [^,]*, now from (more|less) influential", text):
        return flip * (1 if m.group(1) == "more" else -1)
    if m := re.search(r"\b(rose|fell) from " + NUM + " to " + NUM, text):
        s = 1 if m.group(1) == "rose" else -1
        return flip * (-s if re.search(r", but from (less|more) influential", text) else s)
    return None


def untrue(e: Explanation) -> list[str]:
    """What in an explanation its own numbers deny (empty: nothing)."""
    out = []
    if e.status == "changed" and not close(sum(e.parts.values()), e.total):
        out.append(f"parts add up to {sum(e.parts.values())}, not {e.total}")
    text = present.explanation_text(e)
    if "(no change)" in text:
        out.append("says (no change)")
    if e.status == "changed" and e.total != 0 and not e.reasons and "every item is under" not in text:
        out.append("a change without a reason and without saying why")
    for r in e.reasons:
        t = r.text
        for m in re.finditer(r"\b(rose|fell|went) from " + NUM + " to " + NUM, t):
            a, b = _num(m.group(2)), _num(m.group(3))
            if a == b:
                out.append(f"names equal numbers with a direction word: {t}")
            elif (m.group(1) == "rose" and b < a) or (m.group(1) == "fell" and b > a):
                out.append(f"direction word against its numbers: {t}")
        if "ranks higher" in t or "ranks lower" in t:
            for m in re.finditer(r"(\d[\d,]*) instead of (\d[\d,]*) of", t):
                if ("higher" in t) != (_num(m.group(1)) < _num(m.group(2))):
                    out.append(f"rank words against rank numbers: {t}")
        claim = claimed_sign(t)
        if r.points is None or claim is None:
            continue
        if claim == 0 and round(r.points, 1) != 0:
            out.append(f"says nothing moved but carries {r.points}: {t}")
        if claim and r.points * claim < 0:
            out.append(f"points against its claim: {t}")
        if m := re.search(r": ([+-]\d+\.\d) points$", t):
            if float(m.group(1)) != round(r.points, 1) and abs(float(m.group(1)) - r.points) > 0.05:
                out.append(f"shows {m.group(1)} points for {r.points}: {t}")
        elif r.points is not None:
            out.append(f"does not show its points: {t}")
    if len([r for r in e.reasons if r.points]) > MAX_REASONS:
        out.append("more than four reasons with points")
    return out


# ---------------------------------------------------------------- 1. distrust counted as trust

def test_1_a_negative_rating_never_raises_a_network_score(alpha, raws):
    """Bitcoin Alpha 7603: 17 positive ratings in the half year to 2012-07-01, then 3 positive and
    24 negative ones. network@3 names the distrust, with its rating points, as a loss."""
    frame = frame_of(raws, "alpha")
    before, after = (received(frame, "7603", d, 180) for d in ("2012-07-01", "2012-10-01"))
    neg = after.filter(pl.col("weight") < 0)
    pos1, pos2 = before.filter(pl.col("weight") > 0), after.filter(pl.col("weight") > 0)
    assert before.filter(pl.col("weight") < 0).height == 0 and neg.height == 24
    e = explain(alpha, "7603", ("2012-07-01", "network@3"), ("2012-10-01", "network@3"))
    distrust = reason(e, "DISTRUST_RATINGS_ROSE")
    assert distrust.text == (f"Distrust received in ratings rose from 0 to {-neg['weight'].sum():,.0f} rating points "
                             f"(0 -> {neg.height} ratings): {distrust.points:+.1f} points")
    assert distrust.points < -10
    trust = reason(e, "TRUST_RATINGS_FELL")
    assert trust.text == (f"Trust received in ratings fell from {pos1['weight'].sum():,.0f} to {pos2['weight'].sum():,.0f} "
                          f"rating points ({pos1.height} -> {pos2.height} ratings): {trust.points:+.1f} points")
    # own activity is the distrust and the lost trust, to the last point
    assert close(distrust.points + trust.points, e.parts["own_activity"], 0.05)
    # every negative rater is a distrust row with its rating, and none adds a point
    rows = e.engagers.filter(pl.col("kind") == "distrust")
    assert rows.height == neg["source"].n_unique()
    assert (rows["points"] <= 0).all()
    expected = neg.group_by(pl.col("source").alias("engager")).agg(pl.col("weight").sum().alias("value2"))
    got = rows.select("engager", "value2").join(expected, on="engager", suffix="_raw")
    assert got.height == rows.height and (got["value2"] == got["value2_raw"]).all()
    # and the score under network@3 is below network@2's, which ignores them and says so
    s2, s3 = (stored(alpha.path, "SELECT score FROM score WHERE run_id = ? AND account_id = '7603'",
                     [alpha.run("2012-10-01", v)])[0][0] for v in ("network@2", "network@3"))
    assert s3 < s2
    old = explain(alpha, "7603", ("2012-07-01", "network@2"), ("2012-10-01", "network@2"))
    assert (f"network@2 gives negative ratings no weight: the 0 -> {neg.height} negative ratings received do not move "
            "its score") in old.notes
    assert not any("Distrust" in r.text for r in old.reasons)


# ---------------------------------------------------------------- 2. no direction between equal numbers

def test_2_the_same_count_from_someone_else(cm, raws):
    """CollegeMsg 106: one message received in each of two months, from different senders."""
    frame = frame_of(raws, "cm")
    m1, m2 = (received(frame, "106", d, 30) for d in ("2004-05-01", "2004-06-01"))
    assert m1.height == m2.height == 1 and m1["source"][0] != m2["source"][0]
    e = explain(cm, "106", ("2004-05-01", "network@3"), ("2004-06-01", "network@3"))
    [r] = [r for r in e.reasons if r.part == "own_activity"]
    way = "less" if r.points < 0 else "more"
    assert r.text == f"Messages received stayed at 1, now from {way} influential accounts: {r.points:+.1f} points"
    assert r.code == f"RECEIVED_MESSAGE_SAME_{way.upper()}"
    assert close(r.points, e.parts["own_activity"])
    changes = dict(e.engagers.select("engager", "change").iter_rows())
    assert changes == {m1["source"][0]: "stopped", m2["source"][0]: "started"}


def test_2_ratings_are_named_by_their_points(alpha, raws):
    """A rating's weight is its value: the named quantity is the rating points, beside the count."""
    frame = frame_of(raws, "alpha")
    e = explain(alpha, "7603", ("2012-04-01", "network@2"), ("2012-07-01", "network@2"))
    r = reason(e, "TRUST_RATINGS")
    p1, p2 = (received(frame, "7603", d, 180).filter(pl.col("weight") > 0) for d in ("2012-04-01", "2012-07-01"))
    way = "rose" if p2["weight"].sum() > p1["weight"].sum() else "fell"
    assert r.text.startswith(f"Trust received in ratings {way} from {p1['weight'].sum():,.0f} to {p2['weight'].sum():,.0f} "
                             f"rating points ({p1.height} -> {p2.height} ratings)")


# ---------------------------------------------------------------- 3. everyone else, from what happened

def test_3_everyone_else_names_the_change_of_the_population(mo, raws):
    """network@2 has no relative() hook: its population statistic (the number of accounts) is named
    with both numbers, and the sign of its points follows the mapping (more accounts, more points)."""
    frame = frame_of(raws, "mo")
    n = {d: pl.concat([window(frame, d, 30, selves=True)[c] for c in ("source", "target")]).n_unique()
         for d in ("2013-06-01", "2013-07-01")}
    # any account present in both months
    run1, run2 = mo.run("2013-06-01", "network@2"), mo.run("2013-07-01", "network@2")
    account = stored(mo.path, "SELECT account_id FROM score WHERE run_id = ? INTERSECT SELECT account_id FROM score "
                              "WHERE run_id = ? ORDER BY 1 LIMIT 1", [run1, run2])[0][0]
    e = explain(mo, account, ("2013-06-01", "network@2"), ("2013-07-01", "network@2"))
    items = [i for i in e.items if i.code.startswith("POPULATION_STAT_")]
    assert len(items) == 1
    [item] = items
    words = "worth more points" if n["2013-07-01"] > n["2013-06-01"] else "worth fewer points"
    assert item.fields["before_text"] == f"{n['2013-06-01']:,}" and item.fields["after_text"] == f"{n['2013-07-01']:,}"
    assert item.code == ("POPULATION_STAT_MORE" if words == "worth more points" else "POPULATION_STAT_FEWER")
    assert (item.points > 0) == (n["2013-07-01"] > n["2013-06-01"])
    text = present.explanation_text(e)
    assert "gained rank or joined" not in text and "lost rank or left" not in text


def test_3_an_account_without_activity_is_told_what_moved(qc):
    """QC account 10 receives nothing in either month; under network@3 the only change is the share
    spread from accounts that engage nobody, named with its two values."""
    e = explain(qc, "10", ("2018-07-01", "network@3"), ("2018-08-01", "network@3"))
    assert e.parts["own_activity"] == 0.0 and e.engagers.height == 0
    assert [r.code for r in e.reasons] == ["BASE_SHARE_ROSE"]
    [r] = e.reasons
    # the dangling share times N, read from the stored runs
    values = [stored(qc.path, "SELECT components[2] * (SELECT accounts FROM run WHERE run_id = $r) FROM score "
                              "WHERE run_id = $r AND account_id = '10'", {"r": qc.run(d, "network@3")})[0][0]
              for d in ("2018-07-01", "2018-08-01")]
    assert values[1] > values[0]
    assert r.text == ("The share every account gets from accounts that engage with nobody and from distrust rose from "
                      f"{values[0]:.2f} to {values[1]:.2f} times an average account's rank: {r.points:+.1f} points")
    assert close(r.points, e.total)


# ---------------------------------------------------------------- 4. caps, floors and ties are named

def test_4_a_floor_is_named(alpha, raws):
    """Bitcoin Alpha 7603 under activity@1: its net rating fell further below zero; the score stays at 1."""
    frame = frame_of(raws, "alpha")
    s1, s2 = (received(frame, "7603", d, 180)["weight"].sum() for d in ("2012-10-01", "2013-01-01"))
    e = explain(alpha, "7603", ("2012-10-01", "activity@1"), ("2013-01-01", "activity@1"))
    assert e.total == 0.0 and e.baseline.score == e.candidate.score == 1.0
    way = "fell" if s2 < s1 else "rose"
    assert [r.text for r in e.reasons] == [
        f"Net rating received {way} from {s1:+,.0f} to {s2:+,.0f}, but the score stays at the floor of 1: +0.0 points"]
    assert "before: the score is at the floor (1); changes beyond it do not show" in e.notes
    assert "(no change)" not in present.explanation_text(e)


def test_4_a_cap_and_a_tie_are_named(mo, raws):
    """A MathOverflow account at 100 under activity@1 in two months while its replies change; 100 is a tie."""
    frame = frame_of(raws, "mo")
    run1, run = mo.run("2013-05-01", "activity@1"), mo.run("2013-06-01", "activity@1")
    capped = [r[0] for r in stored(mo.path, """SELECT a.account_id FROM score a JOIN score b USING (account_id)
        WHERE a.run_id = ? AND b.run_id = ? AND a.score = 100 AND b.score = 100 ORDER BY 1""", [run1, run])]
    account, n1, n2 = next((a, n1, n2) for a in capped
                           for n1, n2 in [tuple(received(frame, a, d, 30).height for d in ("2013-05-01", "2013-06-01"))]
                           if n1 != n2)
    e = explain(mo, account, ("2013-05-01", "activity@1"), ("2013-06-01", "activity@1"))
    way = "rose" if n2 > n1 else "fell"
    assert e.total == 0.0
    assert f"Replies received {way} from {n1} to {n2}, but the score stays at the cap of 100: +0.0 points" in \
        [r.text for r in e.reasons]
    tied = stored(mo.path, "SELECT count(*) - 1 FROM score WHERE run_id = ? AND score = 100", [run])[0][0]
    accounts = stored(mo.path, "SELECT count(*) FROM score WHERE run_id = ?", [run])[0][0]
    assert (f"after: rank 1 of {accounts:,} is shared with {tied:,} other accounts scoring 100.0") in e.notes


# ---------------------------------------------------------------- 5. no "(no change)" under a change

@pytest.mark.parametrize("version", ["network@2", "network@3"])
def test_5_a_change_below_the_threshold_says_so(mo, version):
    """MathOverflow accounts whose score moved by less than 0.05 points (144 of them from June to July):
    the text says why there is no reason instead of "(no change)", and the total shows two decimals."""
    run1, run2 = mo.run("2013-06-01", version), mo.run("2013-07-01", version)
    rows = stored(mo.path, """SELECT a.account_id FROM score a JOIN score b USING (account_id)
        WHERE a.run_id = ? AND b.run_id = ? AND a.score <> b.score AND abs(b.score - a.score) < 0.05
        ORDER BY account_id LIMIT 1""", [run1, run2])
    assert rows, "the real data has such an account"
    e = explain(mo, rows[0][0], ("2013-06-01", version), ("2013-07-01", version))
    text = present.explanation_text(e)
    assert 0 < abs(e.total) < SHOWN and "(no change)" not in text
    assert e.reasons == () or all(abs(r.points) >= SHOWN for r in e.reasons)
    if not e.reasons:
        assert f"  none: every item is under {SHOWN} points ({e.total:+.2f} together)" in text
    assert f"({e.total:+.2f} points)" in text.splitlines()[0]


# ---------------------------------------------------------------- 6. an algorithm change in two parts

def test_6_an_algorithm_change_is_scale_and_ranking(mo):
    """MathOverflow 28128, one snapshot, activity@1 -> network@3: the new scale at the account's old
    rank, then its new rank on the new scale, each from the stored runs."""
    a1, a2 = mo.run("2013-06-01", "activity@1"), mo.run("2013-06-01", "network@3")
    e = explain(mo, "28128", ("2013-06-01", "activity@1"), ("2013-06-01", "network@3"))
    s1 = stored(mo.path, "SELECT score FROM score WHERE run_id = ? AND account_id = '28128'", [a1])[0][0]
    s2 = stored(mo.path, "SELECT score FROM score WHERE run_id = ? AND account_id = '28128'", [a2])[0][0]
    r1 = stored(mo.path, "SELECT 1 + count(*) FROM score WHERE run_id = ? AND score > ?", [a1, s1])[0][0]
    r2 = stored(mo.path, "SELECT 1 + count(*) FROM score WHERE run_id = ? AND score > ?", [a2, s2])[0][0]
    n = stored(mo.path, "SELECT count(*) FROM score WHERE run_id = ?", [a1])[0][0]
    at_old_rank = stored(mo.path, "SELECT score FROM score WHERE run_id = ? ORDER BY score DESC LIMIT 1 OFFSET ?",
                         [a2, r1 - 1])[0][0]
    assert e.parts == {"own_activity": 0.0, "population": 0.0, "algorithm": s2 - s1}
    scale = [i for i in e.items if i.code == "ALGORITHM_SCALE"]
    ranking = [i for i in e.items if i.code.startswith("ALGORITHM_RANK_")]
    assert close(sum(i.points for i in scale + ranking), s2 - s1)
    assert [i.points for i in scale] == ([at_old_rank - s1] if at_old_rank != s1 else [])
    if scale:
        r = reason(e, "ALGORITHM_SCALE")
        assert r.text == (f"network@3 gives the account's rank ({r1:,} of {n:,}) {at_old_rank:.1f} points where "
                          f"activity@1 gave {s1:.1f}: {r.points:+.1f} points")
    if ranking:
        [item] = ranking
        assert close(item.points, s2 - at_old_rank)
        assert item.code == ("ALGORITHM_RANK_HIGHER" if r2 < r1 else "ALGORITHM_RANK_LOWER")


def test_6_two_factor_algorithm_part_uses_both_snapshots(alpha):
    """Snapshot and algorithm both changed: the algorithm part is the Shapley value, and its scale
    and ranking items add up to it."""
    e = explain(alpha, "7603", ("2012-07-01", "network@2"), ("2012-10-01", "network@3"))
    runs = {(d, v): alpha.run(d, v) for d in ("2012-07-01", "2012-10-01") for v in ("network@2", "network@3")}
    s = {k: stored(alpha.path, "SELECT score FROM score WHERE run_id = ? AND account_id = '7603'", [r])[0][0]
         for k, r in runs.items()}
    algorithm = 0.5 * ((s["2012-07-01", "network@3"] - s["2012-07-01", "network@2"])
                       + (s["2012-10-01", "network@3"] - s["2012-10-01", "network@2"]))
    assert close(e.parts["algorithm"], algorithm)
    assert close(sum(i.points for i in e.items if i.part == "algorithm"), algorithm)
    assert set(e.counterfactual_runs) == {runs["2012-10-01", "network@2"], runs["2012-07-01", "network@3"]}


# ---------------------------------------------------------------- 7. engagers

def test_7_engagers_once_each_by_points_with_their_ratings(alpha, raws):
    frame = frame_of(raws, "alpha")
    e = explain(alpha, "7603", ("2012-07-01", "network@2"), ("2012-10-01", "network@3"))
    g = e.engagers
    # one row per (engager, kind) over both versions, counted once
    assert g.select("engager", "kind").is_unique().all()
    both = pl.concat([received(frame, "7603", d, 180) for d in ("2012-07-01", "2012-10-01")])
    assert e.engagers_total == both["source"].n_unique() == g["engager"].n_unique()
    # ordered by the size of their points, largest first
    sizes = g["points"].abs().to_list()
    assert sizes == sorted(sizes, reverse=True)
    # negative raters are distrust rows carrying their (negative) rating
    assert (g.filter(pl.col("kind") == "distrust")["value2"] < 0).all()
    text = present.explanation_text(e, engagers=g.height)
    for r in g.filter(pl.col("kind") == "distrust").head(3).iter_rows(named=True):
        assert re.search(rf"^  {r['engager']} +distrust +0 +1 +{r['value2']:+,.0f} +{r['points']:+.2f} +started$",
                         text, re.M)


def test_7_without_per_engager_points_engagers_are_ordered_by_their_change(mo):
    e = explain(mo, "6094", ("2013-05-01", "activity@1"), ("2013-06-01", "activity@1"))
    g = e.engagers
    assert g["points"].null_count() == g.height
    change = (g["n2"] - g["n1"]).abs().to_list()
    assert change == sorted(change, reverse=True)
    assert "changed their engagement most" in present.explanation_text(e)


# ---------------------------------------------------------------- 8. numbers that read as they are

def test_8_components_keep_one_unit_per_row_and_nothing_hides_in_rounding(alpha):
    e = explain(alpha, "7603", ("2012-07-01", "network@3"), ("2012-10-01", "network@3"))
    for c in e.components:
        assert c.unit == "times an average account's rank"
        if c.component == "teleport":
            assert c.before == c.after and c.own_activity == c.population == 0.0
    # a reason's two numbers read differently whenever they differ
    for i in e.items:
        if "before_text" in i.fields and i.fields["before"] != i.fields["after"]:
            assert i.fields["before_text"] != i.fields["after_text"], i


# ---------------------------------------------------------------- 9. joined and left

def test_9_an_account_that_left_is_explained(mo, raws):
    frame = frame_of(raws, "mo")
    run1, run2 = mo.run("2013-06-01", "network@3"), mo.run("2013-07-01", "network@3")
    account = stored(mo.path, "SELECT account_id FROM score WHERE run_id = ? EXCEPT SELECT account_id FROM score "
                              "WHERE run_id = ? ORDER BY 1 LIMIT 1", [run1, run2])[0][0]
    e = explain(mo, account, ("2013-06-01", "network@3"), ("2013-07-01", "network@3"))
    assert e.status == "left" and e.total is None and e.parts == {} and e.candidate.score is None
    n1 = received(frame, account, "2013-06-01", 30).height
    assert received(frame, account, "2013-07-01", 30).height == 0
    expected = [f"Replies received fell from {n1} to 0"] if n1 else []
    assert [r.text for r in e.reasons] == expected
    assert e.notes[0] == (f"the account has no score in {run2} (network@3 on 2013-07-01): nothing in that snapshot's "
                          f"window (30 days before {end_of('2013-07-01').isoformat()}) involves it")
    assert present.explanation_text(e).splitlines()[0] == f"account {account}: {e.baseline.score:.1f} -> no score (left)"
    assert present.explanation_json(e)["total"] is None


def test_9_an_account_that_joined_is_explained(qc, raws):
    frame = frame_of(raws, "qc")
    run1, run2 = qc.run("2018-07-01", "network@3"), qc.run("2018-08-01", "network@3")
    account = stored(qc.path, "SELECT account_id FROM score WHERE run_id = ? EXCEPT SELECT account_id FROM score "
                              "WHERE run_id = ? ORDER BY 1 LIMIT 1", [run2, run1])[0][0]
    e = explain(qc, account, ("2018-07-01", "network@3"), ("2018-08-01", "network@3"))
    assert e.status == "joined" and e.baseline.score is None
    got = received(frame, account, "2018-08-01", 30).group_by("kind").len().sort("kind")
    labels = {"like": "Likes", "mention": "Mentions", "reply": "Replies"}
    assert [r.text for r in e.reasons] == [f"{labels[k]} received rose from 0 to {n}" for k, n in got.iter_rows()]


# ---------------------------------------------------------------- 10. a change of window is shown

def test_10_different_windows_are_in_the_header_the_json_and_a_note(mo):
    e = explain(mo, "2000", ("2013-06-01 90d", "network@3"), ("2013-07-01", "network@3"))
    assert (e.baseline.window_seconds, e.candidate.window_seconds) == (90 * 86400, 30 * 86400)
    text = present.explanation_text(e)
    assert f"(s_{e.baseline.snapshot_id[2:]}, 90 days to {e.baseline.as_of})" in text.splitlines()[1]
    assert f"(s_{e.candidate.snapshot_id[2:]}, 30 days to {e.candidate.as_of})" in text.splitlines()[2]
    assert ("the two snapshots cover windows of different length (90 days and 30 days): counts compare different "
            "spans") in e.notes
    doc = present.explanation_json(e)
    assert (doc["baseline"]["window_seconds"], doc["candidate"]["window_seconds"]) == (7776000, 2592000)


# ---------------------------------------------------------------- 11. no account before it existed

def test_11_a_snapshot_leaves_out_accounts_created_after_it(qc, raws):
    """The QC accounts file lists every user as of the dump; a snapshot as of the end of 2018-07-01
    takes only those created by then (an account created on 2018-08-12 is not scored in June)."""
    created = accounts_file("qc")
    frame = frame_of(raws, "qc")
    end = end_of("2018-07-01")
    ids = set(pl.concat([window(frame, "2018-07-01", 30, selves=True)[c] for c in ("source", "target")]).to_list())
    ids |= set(created.filter(pl.col("created") < end.date())["account_id"].to_list())
    later = created.filter(pl.col("created") >= end.date())
    assert later.height > 500 and "4336" in later["account_id"].to_list()
    run = qc.run("2018-07-01", "network@3")
    scored = {r[0] for r in stored(qc.path, "SELECT account_id FROM score WHERE run_id = ?", [run])}
    assert scored == ids
    assert "4336" not in scored
    with pytest.raises(AuditError, match='account "4336" has no score'):
        explain(qc, "4336", ("2018-06-01", "network@3"), ("2018-07-01", "network@3"))


# ---------------------------------------------------------------- 12. the same run, and the statement

def test_12_the_same_run_on_both_sides(mo):
    e = explain(mo, "28128", ("2013-06-01", "network@3"), ("2013-06-01", "network@3"))
    assert e.status == "same" and e.total == 0.0 and e.reasons == ()
    assert e.method == "the same run on both sides: nothing changed"
    assert "  none: the score did not change" in present.explanation_text(e)


def test_12_the_statement_tells_a_restatement_from_the_latest_change(mo):
    path = mo.path.with_name("statement.duckdb")
    shutil.copy(mo.path, path)
    for day in ("2013-05-01", "2013-06-01"):
        api.publish(path, mo.run(day, "activity@1"), period=day, now=mo.now())
    for day in ("2013-05-01", "2013-06-01"):
        api.publish(path, mo.run(day, "network@3"), period=day, now=mo.now())
    html = render_account(api.account_statement(path, "28128", now=mo.now()))
    assert "Restated minus published" in html
    assert ("This is the change from the previous period as it was first published to the latest period as it "
            "stands now; the difference column of the history compares two versions of one period.") in html


# ---------------------------------------------------------------- the property, on several hundred changes

def _pairs(days: list[str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Data-only changes under each version, version changes across and within a snapshot."""
    out = []
    for d1, d2 in zip(days, days[1:]):
        out += [((d1, v), (d2, v)) for v in ("activity@1", "network@2", "network@3")]
        out += [((d1, "activity@1"), (d2, "network@3")), ((d1, "network@2"), (d2, "network@3"))]
    out += [((days[0], "activity@1"), (days[0], "network@3"))]
    return out


def _sample(built, pairs, n: int, seed: int) -> list[tuple[str, tuple, tuple]]:
    """N (account, from, to) cases, every pair used: three in four accounts scored on both sides,
    one in four on one side only (it joined or left)."""
    rng = random.Random(seed)
    con = configure(duckdb.connect(str(built.path), read_only=True))
    try:
        cases = []
        for i in range(n):
            a, b = pairs[i % len(pairs)]
            sides = 1 if i % 4 == 3 else 2
            ids = [r[0] for r in con.execute("SELECT account_id FROM score WHERE run_id IN (?, ?) GROUP BY "
                                             "account_id HAVING count(*) = ? ORDER BY account_id",
                                             [built.run(*a), built.run(*b), sides]).fetchall()]
            if ids:
                cases.append((rng.choice(ids), a, b))
        return cases
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mo", "alpha", "qc"])
def test_every_reason_agrees_with_its_numbers(name, request):
    built = request.getfixturevalue(name)
    days = list(DATASETS[name].days)
    cases = _sample(built, _pairs(days), 200, seed=12)
    if name == "mo":
        cases += [(acc, ("2013-06-01 90d", "network@3"), ("2013-07-01", "network@3")) for acc, _, _ in cases[:20]]
    # counterfactual runs are written once, then every explanation reads through one owned connection
    for _, a, b in {(None, a, b) for _, a, b in cases}:
        if a[0] != b[0] and a[1] != b[1]:
            account = _sample(built, [(a, b)], 1, seed=1)[0][0]
            try:
                explain(built, account, a, b)
            except AuditError:
                pass
    con = configure(duckdb.connect(str(built.path), read_only=True))
    statuses, problems = {}, []
    try:
        for account, a, b in cases:
            e = api.explain(con, account, from_run=built.run(*a), to_run=built.run(*b), now=NOW)
            statuses[e.status] = statuses.get(e.status, 0) + 1
            problems += [f"{account} {a} -> {b}: {p}" for p in untrue(e)]
    finally:
        con.close()
    assert problems == []
    assert statuses.get("changed", 0) >= 120 and statuses.get("joined", 0) + statuses.get("left", 0) >= 20


@pytest.mark.slow
def test_every_reason_agrees_with_its_numbers_on_the_higgs_week(real):
    days = sorted({day for day, _ in real.runs})
    pairs = [((d1, v), (d2, v)) for d1, d2 in zip(days, days[1:]) for v in ("activity@1", "network@2")]
    pairs += [((d, "activity@1"), (d, "network@2")) for d in days[::3]]

    class Built:
        path = real.path

        @staticmethod
        def run(day, version):
            return real.runs[(day, version)]
    problems = []
    con = configure(duckdb.connect(str(real.path), read_only=True))
    try:
        for account, a, b in _sample(Built, pairs, 60, seed=4):
            e = api.explain(con, account, from_run=Built.run(*a), to_run=Built.run(*b), now=NOW)
            problems += [f"{account} {a} -> {b}: {p}" for p in untrue(e)]
    finally:
        con.close()
    assert problems == []


# ---------------------------------------------------------------- the arithmetic, against the hooks

def test_a_data_change_splits_as_the_shapley_formulas_say(mo):
    """Under network@2 (no relative hook): the population-statistic part is the Shapley value over
    (raw, N) of the stored mapping, and the rest of the change is the raw effect."""
    module = __import__("audit.algorithms.network_v2", fromlist=["x"])
    params = api.get_algorithm(mo.path, "network@2").params
    run1, run2 = mo.run("2013-06-01", "network@2"), mo.run("2013-07-01", "network@2")
    account = stored(mo.path, """SELECT a.account_id FROM score a JOIN score b USING (account_id)
        WHERE a.run_id = ? AND b.run_id = ? ORDER BY b.score - a.score, a.account_id LIMIT 1""", [run1, run2])[0][0]
    (r1, s1, n1), (r2, s2, n2) = (stored(mo.path, "SELECT raw, score, (SELECT accounts FROM run WHERE run_id = $r) "
                                                  "FROM score WHERE run_id = $r AND account_id = $a",
                                         {"r": r, "a": account})[0] for r in (run1, run2))

    def m(raw_: float, n: float) -> float:
        return float(module.to_score(np.array([raw_]), {"n": n}, params)[0])

    assert close(m(r1, n1), s1, 1e-12) and close(m(r2, n2), s2, 1e-12)
    raw_effect = 0.5 * ((m(r2, n1) - m(r1, n1)) + (m(r2, n2) - m(r1, n2)))
    e = explain(mo, account, ("2013-06-01", "network@2"), ("2013-07-01", "network@2"))
    assert e.total == s2 - s1 and e.parts["algorithm"] == 0.0
    assert close(sum(e.parts.values()), e.total)
    [stat] = [i for i in e.items if i.code.startswith("POPULATION_STAT_")]
    assert close(stat.points, (s2 - s1) - raw_effect)
    # the components carry the rest: own and everyone else add up to the raw effect
    assert close(sum(c.own_activity + c.population for c in e.components), raw_effect)
    assert close(sum(c.own_activity for c in e.components), e.parts["own_activity"])


def test_a_relative_version_has_no_population_statistic_part(mo):
    """network@3 declares relative() = raw * N: the change is split in those units, exactly."""
    run1, run2 = mo.run("2013-06-01", "network@3"), mo.run("2013-07-01", "network@3")
    for account, in stored(mo.path, "SELECT account_id FROM score WHERE run_id = ? INTERSECT SELECT account_id "
                                    "FROM score WHERE run_id = ? ORDER BY 1 LIMIT 5", [run1, run2]):
        e = explain(mo, account, ("2013-06-01", "network@3"), ("2013-07-01", "network@3"))
        assert not [i for i in e.items if i.code.startswith("POPULATION_STAT_")]
        assert close(sum(c.own_activity + c.population for c in e.components), e.total, 1e-9)
        # own activity is what the engagers' engagement (not their standing) changed
        assert close(e.parts["own_activity"], float(e.engagers["own"].sum()) if e.engagers.height else 0.0)


def test_a_fresh_pair_computes_its_counterfactuals_once(tmp_path, alpha):
    """Two runs alone in a store: the first explanation stores the two counterfactual runs, marked."""
    path = tmp_path / "pair.duckdb"
    clock = alpha.now
    spec = DATASETS["alpha"]
    api.ingest(path, SHARED / spec.files[0][0], fmt="signed-csv", now=clock())
    s1 = api.snapshot(path, as_of="2012-07-01", window="180d", now=clock()).snapshot_id
    s2 = api.snapshot(path, as_of="2012-10-01", window="180d", now=clock()).snapshot_id
    r1 = api.score(path, s1, "activity@1", now=clock()).run_id
    r2 = api.score(path, s2, "network@3", now=clock()).run_id
    e = api.explain(path, "7603", from_run=r1, to_run=r2, now=clock())
    marked = {r.run_id: r.counterfactual for r in api.runs(path)}
    assert marked == {r1: False, r2: False, **{c: True for c in e.counterfactual_runs}} and len(marked) == 4
    count = stored(path, "SELECT count(*) FROM log", [])[0][0]
    assert dumps(api.explain(path, "7603", from_run=r1, to_run=r2, now=clock())) == dumps(e)
    assert stored(path, "SELECT count(*) FROM log", [])[0][0] == count


HOOKLESS = '''"""received@1: a user algorithm without the normalisation and to_score hooks."""
import polars as pl

NAME = "received"
VERSION = 1
DESCRIPTION = "Interactions received, log-scaled, relative to the most engaged account."
CHANGELOG = "First version."
PARAMS = {}
COMPONENTS = {"received": "Interactions received (log)"}
REASONS = {}


def score(interactions, accounts, params):
    ids = pl.concat([interactions["source"], interactions["target"], accounts["account_id"]]).unique()
    received = interactions.group_by("target").agg(pl.len().alias("n")).rename({"target": "account_id"})
    out = (ids.to_frame("account_id").join(received, on="account_id", how="left")
           .with_columns(pl.col("n").fill_null(0).cast(pl.Float64).log1p().alias("raw")).sort("account_id"))
    top = out["raw"].max() or 1.0
    return out.select("account_id", "raw", (1.0 + 99.0 * pl.col("raw") / top).clip(1.0, 100.0).alias("score"),
                      pl.col("raw").alias("received"))
'''


def test_a_version_without_hooks_reports_the_change_as_data(mo, tmp_path):
    path, source = tmp_path / "hookless.duckdb", tmp_path / "received_v1.py"
    shutil.copy(mo.path, path)
    source.write_text(HOOKLESS, encoding="utf-8")
    api.register(path, source, now=mo.now())
    b, c = (api.score(path, mo.snapshots[d], "received@1", now=mo.now()).run_id for d in ("2013-05-01", "2013-06-01"))
    account = stored(path, """SELECT a.account_id FROM score a JOIN score b USING (account_id) WHERE a.run_id = ?
        AND b.run_id = ? AND a.score <> b.score ORDER BY abs(b.score - a.score) DESC, 1 LIMIT 1""", [b, c])[0][0]
    e = api.explain(path, account, from_run=b, to_run=c, now=mo.now())
    assert e.parts == {"own_activity": 0.0, "population": e.total, "algorithm": 0.0}
    [r] = e.reasons
    assert (r.code, r.points) == ("DATA_UNSPLIT", e.total)
    assert r.text == f"The data changed (this version cannot split own activity from everyone else): {e.total:+.1f} points"


# ---------------------------------------------------------------- errors and the CLI

def test_an_account_scored_nowhere_is_refused_before_anything_is_computed(alpha, tmp_path):
    path = tmp_path / "refused.duckdb"
    shutil.copy(alpha.path, path)
    log = stored(path, "SELECT count(*) FROM log", [])[0][0]
    with pytest.raises(AuditError, match=r'account "nobody" has no score in run\(s\)'):
        api.explain(path, "nobody", from_run=alpha.run("2012-04-01", "activity@1"),
                    to_run=alpha.run("2013-01-01", "network@2"), now=alpha.now())
    assert stored(path, "SELECT count(*) FROM log", [])[0][0] == log


def test_cli_prints_the_presentation(mo, capsys):
    a, b = mo.run("2013-06-01", "activity@1"), mo.run("2013-06-01", "network@3")
    for args in (["28128", "--from", a, "--to", b], ["28128", "--from", a, "--to", b, "--json"]):
        cli.main(["--store", str(mo.path), "explain", *args])
        out = capsys.readouterr().out
        e = api.explain(mo.path, "28128", from_run=a, to_run=b, now=NOW)
        want = present.dumps(present.explanation_json(e)) if "--json" in args else present.explanation_text(e)
        assert out == want + "\n"
