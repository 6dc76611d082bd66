"""Explaining a score change on real Higgs runs: the parts add up to the stored change, and each
part agrees with an independent recomputation from the stored runs and the algorithms' hooks.

One session store holds the bundled Higgs file, daily 7-day snapshots 2012-07-01..07 and the
activity@1 and network@2 runs of each; a test that writes (counterfactual runs) uses a copy.
"""
from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit import api, cli, present
from audit.algorithms import activity_v1, network_v2
from audit.errors import AuditError, NotFound
from audit.analysis.explain import MAX_REASONS, SHOWN, Explanation

HIGGS = Path(__file__).resolve().parent.parent / "data" / "higgs-activity_time.txt.gz"
DAYS = [date(2012, 7, d) for d in range(1, 8)]
ALGORITHMS = ("activity@1", "network@2")
MODULES = {"activity@1": activity_v1, "network@2": network_v2}
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Clock:
    """A deterministic clock: 2026-01-01T00:00:00Z, then one second later at each call."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        return EPOCH + timedelta(seconds=next(self._ticks))


@dataclass
class Store:
    """The session store and the ids in it."""
    path: Path
    two_runs: Path           # the same store with only activity@1 on day 1 and network@2 on day 5
    folder: Path
    now: Clock
    snapshots: dict[date, str]
    runs: dict[tuple[date, str], str]

    def run(self, day: int, algorithm: str) -> str:
        return self.runs[(DAYS[day - 1], algorithm)]


@pytest.fixture(scope="session")
def higgs(tmp_path_factory) -> Store:
    """The real Higgs file, 7 daily 7-day snapshots, activity@1 and network@2 on each (14 runs);
    a copy taken after the first two runs has none of the runs that explaining their change needs."""
    folder = tmp_path_factory.mktemp("explain")
    path, clock = folder / "higgs.duckdb", Clock()
    api.ingest(path, HIGGS, now=clock())
    snapshots = {day: api.snapshot(path, as_of=day.isoformat(), window="7d", label=day.isoformat(),
                                   now=clock()).snapshot_id for day in DAYS}
    pairs = [(DAYS[0], "activity@1"), (DAYS[4], "network@2")]
    pairs += [(day, algorithm) for day in DAYS for algorithm in ALGORITHMS if (day, algorithm) not in pairs]
    runs = {}
    for day, algorithm in pairs:
        runs[(day, algorithm)] = api.score(path, snapshots[day], algorithm, now=clock()).run_id
        if len(runs) == 2:
            shutil.copy(path, folder / "two-runs.duckdb")
    return Store(path, folder / "two-runs.duckdb", folder, clock, snapshots, runs)


# ---------------------------------------------------------------- helpers


def scores(store: Path, run: str) -> pl.DataFrame:
    """Every account of a run, in account order (as api.scores reads it)."""
    return api.scores(store, run).sort("account_id")


def stored(store: Path, run: str, account: str) -> tuple[float, float]:
    """(raw, score) of one account, read back through api.scores."""
    row = api.scores(store, run, accounts=[account])
    assert row.height == 1, (run, account)
    return float(row["raw"][0]), float(row["score"][0])


def counts(store: Path) -> tuple[int, int]:
    """(rows in table run, log entries)."""
    with duckdb.connect(str(store), read_only=True) as con:
        return (con.execute("SELECT count(*) FROM run").fetchall()[0][0],
                con.execute("SELECT count(*) FROM log").fetchall()[0][0])


def to_json(e: Explanation) -> str:
    return json.dumps(present.explanation_json(e), sort_keys=True)


def window(interactions: pl.DataFrame, day: date) -> pl.DataFrame:
    """The interactions a 7-day snapshot as of the end of DAY holds, without self-interactions."""
    end = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)
    return interactions.filter((pl.col("ts") >= end - timedelta(days=7)) & (pl.col("ts") < end)
                               & (pl.col("source") != pl.col("target")))


def close(a: float, b: float, tol: float = 1e-9) -> bool:
    return abs(a - b) <= tol


def assert_parts_add_up(e: Explanation) -> None:
    assert set(e.parts) == {"own_activity", "population", "algorithm"}
    assert close(sum(e.parts.values()), e.total)
    own = sum(c.points for c in e.components if c.part == "own_activity")
    assert close(own, e.parts["own_activity"])


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the `audit` entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["audit", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- 1. a drop under one version


@pytest.fixture(scope="session")
def active_on_day_4(higgs_interactions) -> pl.Series:
    """Accounts that received an interaction (from someone else) on 2012-07-04."""
    day = higgs_interactions.filter((pl.col("ts").dt.date() == date(2012, 7, 4))
                                    & (pl.col("source") != pl.col("target")))
    return day["target"].unique()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("who", ["largest drop", "largest drop among accounts engaged on 07-04"])
def test_drop_between_days_under_one_version(higgs, active_on_day_4, algorithm, who):
    baseline, candidate = higgs.run(3, algorithm), higgs.run(4, algorithm)
    f1, f2 = scores(higgs.path, baseline), scores(higgs.path, candidate)
    drops = (f1.select("account_id", pl.col("score").alias("s1"))
             .join(f2.select("account_id", pl.col("score").alias("s2")), on="account_id")
             .with_columns((pl.col("s2") - pl.col("s1")).alias("d")))
    if who != "largest drop":
        drops = drops.filter(pl.col("account_id").is_in(active_on_day_4.implode()))
    account = drops.sort(["d", "account_id"])["account_id"][0]
    (r1, s1), (r2, s2) = stored(higgs.path, baseline, account), stored(higgs.path, candidate, account)
    assert s2 < s1

    e = api.explain(higgs.path, account, from_run=baseline, to_run=candidate, now=higgs.now())

    assert (e.baseline.run_id, e.candidate.run_id) == (baseline, candidate)
    assert e.total == s2 - s1
    assert e.parts["algorithm"] == 0.0
    assert_parts_add_up(e)
    assert close(e.parts["own_activity"] + e.parts["population"], s2 - s1)
    assert not any(c.part == "algorithm" for c in e.components)
    if who != "largest drop":
        assert e.parts["own_activity"] > 0          # more engagement received raises the raw score

    # independent: score = to_score(raw, norm), Shapley over (raw, norm) on the full score frames
    module, params = MODULES[algorithm], api.get_algorithm(higgs.path, algorithm).params
    n1, n2 = module.normalisation(f1, params), module.normalisation(f2, params)

    def m(raw: float, norm: dict) -> float:
        return float(module.to_score(np.array([raw]), norm, params)[0])

    assert close(m(r1, n1), s1, 1e-12) and close(m(r2, n2), s2, 1e-12)
    raw_effect = 0.5 * ((m(r2, n1) - m(r1, n1)) + (m(r2, n2) - m(r1, n2)))
    norm_effect = (s2 - s1) - raw_effect
    [norm_item] = [c for c in e.components if c.component == "normalisation"]
    assert norm_item.part == "population" and close(norm_item.points, norm_effect)
    if algorithm == "activity@1":
        # every activity@1 component is the account's own: own = raw effect, population = norm effect
        assert close(e.parts["own_activity"], raw_effect)
        assert close(e.parts["population"], norm_effect)
        names = list(activity_v1.COMPONENTS)
        row1, row2 = f1.filter(pl.col("account_id") == account), f2.filter(pl.col("account_id") == account)
        for c in e.components:
            if c.component in names:
                share = (row2[c.component][0] - row1[c.component][0]) / (r2 - r1)
                assert c.part == "own_activity" and close(c.points, raw_effect * share)
    else:
        # the raw effect is own activity plus the engagers' standing and the base shares
        rest = sum(c.points for c in e.components if c.part == "population" and c.component != "normalisation")
        assert close(e.parts["own_activity"] + rest, raw_effect)


# ---------------------------------------------------------------- 2. algorithm and data both changed


@dataclass
class Counterfactual:
    """A copy of the store holding only activity@1 on day 1 and network@2 on day 5, after one
    explanation of a change between them computed the counterfactual runs."""
    path: Path
    account: str
    baseline: str
    candidate: str
    explanation: Explanation
    before: tuple[int, int]
    after: tuple[int, int]
    seconds: float


def changes(store: Path, baseline: str, candidate: str) -> pl.DataFrame:
    """Accounts scored in both runs, with their change, largest drop first (ties by id)."""
    return (api.scores(store, baseline).select("account_id", pl.col("score").alias("s1"))
            .join(api.scores(store, candidate).select("account_id", pl.col("score").alias("s2")), on="account_id")
            .with_columns((pl.col("s2") - pl.col("s1")).alias("d")).sort(["d", "account_id"]))


@pytest.fixture(scope="session")
def counterfactual(higgs) -> Counterfactual:
    path = higgs.folder / "counterfactual.duckdb"
    shutil.copy(higgs.two_runs, path)
    baseline, candidate = higgs.run(1, "activity@1"), higgs.run(5, "network@2")
    account = changes(path, baseline, candidate)["account_id"][0]
    before = counts(path)
    t0 = time.perf_counter()
    e = api.explain(path, account, from_run=baseline, to_run=candidate, now=higgs.now())
    seconds = time.perf_counter() - t0
    return Counterfactual(path, account, baseline, candidate, e, before, counts(path), seconds)


@pytest.mark.slow
def test_algorithm_and_data_both_changed(higgs, counterfactual):
    cf = counterfactual
    a1d5, a2d1 = higgs.run(5, "activity@1"), higgs.run(1, "network@2")
    # the explanation computed and stored the two counterfactual runs, marked as such
    assert cf.after == (cf.before[0] + 2, cf.before[1] + 2)
    marked = {r.run_id: r.counterfactual for r in api.runs(cf.path)}
    assert marked == {cf.baseline: False, cf.candidate: False, a1d5: True, a2d1: True}
    assert cf.explanation.counterfactual_runs == (a1d5, a2d1)
    # the same run ids as the released runs of the full store, with the same scores
    for run in (a1d5, a2d1):
        assert_frame_equal(api.scores(cf.path, run), api.scores(higgs.path, run))

    rise = changes(cf.path, cf.baseline, cf.candidate)["account_id"][-1]
    for account, e in ((cf.account, cf.explanation),
                       (rise, api.explain(cf.path, rise, from_run=cf.baseline, to_run=cf.candidate,
                                          now=higgs.now()))):
        s = {(a, d): stored(cf.path, run, account)[1]
             for (a, d), run in {("a1", 1): cf.baseline, ("a1", 5): a1d5,
                                 ("a2", 1): a2d1, ("a2", 5): cf.candidate}.items()}
        assert e.total == s["a2", 5] - s["a1", 1]
        assert abs(e.total) > 40
        algorithm = 0.5 * ((s["a2", 1] - s["a1", 1]) + (s["a2", 5] - s["a1", 5]))
        data = 0.5 * ((s["a1", 5] - s["a1", 1]) + (s["a2", 5] - s["a2", 1]))
        assert close(e.parts["algorithm"], algorithm)
        assert close(e.parts["own_activity"] + e.parts["population"], data)
        assert_parts_add_up(e)
        assert {c.algorithm for c in e.components} == {"activity@1", "network@2"}
    assert counts(cf.path) == cf.after


# ---------------------------------------------------------------- 3. reasons


def assert_reasons(store: Path, e: Explanation) -> None:
    """At most four, ranked by |points| then code, each the points of an item, codes from the
    stored versions' lists, texts with the formatted points."""
    lists = {a.label: a.reasons for a in api.algorithms(store)}
    rs = e.reasons
    own = [c for c in e.components if c.part == "own_activity"]
    # the engagers named for everyone else's part: their standing's points, the largest few
    named = (e.engagers.filter(pl.col("pop_points").is_not_null())
             .group_by("algorithm", "engager", maintain_order=True)
             .agg(pl.col("pop_points").sum().alias("points"),
                  pl.coalesce("engager_score2", "engager_score1").first().alias("engager_score"))
             .filter(pl.col("points").abs() >= SHOWN)
             .sort([pl.col("points").abs(), "engager", "algorithm"], descending=[True, False, False])
             .head(MAX_REASONS)) if e.engagers.height and "pop_points" in e.engagers.columns else \
        pl.DataFrame(schema={"algorithm": pl.String, "engager": pl.String, "points": pl.Float64,
                             "engager_score": pl.Float64})

    def code_of(c):
        return f"{c.code}_{'ROSE' if c.after > c.before else 'FELL'}"

    def stem(c):
        return lists[c.algorithm][code_of(c)].format(before=c.before, after=c.after, points=0.0,
                                                    engager="", engager_score=0.0)

    def stem_of(r):
        return r.text.replace(f"{r.points:+.1f} points", f"{0.0:+.1f} points")
    assert 1 <= len(rs) <= MAX_REASONS
    assert [(r.code, r.points) for r in rs] == sorted(((r.code, r.points) for r in rs),
                                                      key=lambda x: (-abs(x[1]), x[0]))
    for r in rs:
        assert f"{r.points:+.1f} points" in r.text
        if r.part == "own_activity":
            # the own items that say the same thing (one per version in a Shapley split)
            group = [c for c in own if stem(c) == stem_of(r)]
            assert group and close(sum(c.points for c in group), r.points)
            item = group[0]
            assert r.code in lists[item.algorithm]
            assert r.code.endswith("_ROSE") == (item.after > item.before)
        elif r.part == "population" and r.code.startswith("ENGAGER_"):
            # an engager's everyone-else share: its standing, summed over its kinds
            [row] = [x for x in named.iter_rows(named=True) if r.text.startswith(f"{x['engager']} (")]
            assert r.points == row["points"] and r.code == ("ENGAGER_ROSE" if r.points > 0 else "ENGAGER_FELL")
            assert r.text == lists[row["algorithm"]][r.code].format(
                before=0.0, after=0.0, points=r.points, engager=row["engager"], engager_score=row["engager_score"])
            continue
        elif r.part == "population":
            # what the named engagers do not account for
            assert close(r.points, e.parts["population"] - named["points"].sum())
            assert close(r.points, sum(c.points for c in e.components if c.part == "population")
                         - named["points"].sum())
            assert r.code == ("POPULATION_ROSE" if r.points < 0 else "POPULATION_FELL")
            assert r.code in lists[e.baseline.algorithm] and r.code in lists[e.candidate.algorithm]
        else:
            assert r.part == "algorithm" and r.points == e.parts["algorithm"] and r.code == "ALGORITHM_CHANGED"
            assert r.code in lists[e.candidate.algorithm]
        # the wording: the item's version for own activity, otherwise the candidate's version
        assert r.text == lists[item.algorithm if r.part == "own_activity" else e.candidate.algorithm][r.code] \
            .format(before=item.before if r.part == "own_activity" else 0.0,
                    after=item.after if r.part == "own_activity" else 0.0,
                    points=r.points, engager="", engager_score=0.0)
    # and they are the largest of every item that may become a reason
    merged: dict[str, tuple[str, float]] = {}
    for c in own:
        code, points = merged.get(stem(c), (code_of(c), 0.0))
        merged[stem(c)] = (code, points + c.points)
    candidates = [(code, points) for code, points in merged.values() if abs(points) >= SHOWN]
    candidates += [("ENGAGER_ROSE" if p > 0 else "ENGAGER_FELL", p) for p in named["points"]]
    candidates += [(r.code, r.points) for r in rs if r.part == "algorithm" or r.code.startswith("POPULATION_")]
    top = sorted(candidates, key=lambda x: (-abs(x[1]), x[0]))[:MAX_REASONS]
    assert [(r.code, r.points) for r in rs] == top


def test_reasons(higgs):
    account, changes_ = "44086", {"activity@1, 07-03 -> 07-04": ((3, "activity@1"), (4, "activity@1")),
                                  "network@2, 07-03 -> 07-04": ((3, "network@2"), (4, "network@2")),
                                  "the demo's: activity@1 07-06 -> network@2 07-07": ((6, "activity@1"),
                                                                                      (7, "network@2")),
                                  "one snapshot, two versions": ((4, "network@2"), (4, "activity@1"))}
    found = {}
    for name, ((d1, a1), (d2, a2)) in changes_.items():
        e = found[name] = api.explain(higgs.path, account, from_run=higgs.run(d1, a1), to_run=higgs.run(d2, a2),
                                      now=higgs.now())
        assert_parts_add_up(e)
        assert_reasons(higgs.path, e)
    assert found["the demo's: activity@1 07-06 -> network@2 07-07"].reasons[0].code == "ALGORITHM_CHANGED"
    same = found["one snapshot, two versions"]
    assert same.parts == {"own_activity": 0.0, "population": 0.0, "algorithm": same.total}
    assert all(type(v) is float for v in present.explanation_json(same)["parts"].values())
    assert same.components == ()
    assert [r.code for r in same.reasons] == ["ALGORITHM_CHANGED"]
    assert same.reasons[0].text == activity_v1.REASONS["ALGORITHM_CHANGED"].format(points=same.total)


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


def test_a_version_without_hooks_reports_the_change_as_population(higgs, tmp_path):
    path, source = tmp_path / "hookless.duckdb", tmp_path / "received_v1.py"
    shutil.copy(higgs.two_runs, path)
    source.write_text(HOOKLESS, encoding="utf-8")
    api.register(path, source, now=higgs.now())
    b, c = (api.score(path, higgs.snapshots[DAYS[d]], "received@1", now=higgs.now()).run_id for d in (0, 1))
    e = api.explain(path, "44086", from_run=b, to_run=c, now=higgs.now())
    assert e.total == stored(path, c, "44086")[1] - stored(path, b, "44086")[1] > 30
    assert e.parts == {"own_activity": 0.0, "population": e.total, "algorithm": 0.0}
    [item] = e.components
    assert (item.part, item.points) == ("population", e.total)
    [reason] = e.reasons
    assert (reason.code, reason.points, reason.part) == ("POPULATION_FELL", e.total, "population")


# ---------------------------------------------------------------- 4. determinism and reuse


@pytest.mark.slow
def test_same_change_again_is_identical_and_computes_nothing(higgs, counterfactual):
    cf = counterfactual
    first = to_json(cf.explanation)
    again = api.explain(cf.path, cf.account, from_run=cf.baseline, to_run=cf.candidate, now=higgs.now())
    assert to_json(again) == first
    assert counts(cf.path) == cf.after
    # the full store holds the same runs as released runs: the same explanation, nothing computed
    before = counts(higgs.path)
    released = api.explain(higgs.path, cf.account, from_run=cf.baseline, to_run=cf.candidate, now=higgs.now())
    assert to_json(released) == first
    assert counts(higgs.path) == before
    # and a change under one version, twice
    b, c = higgs.run(3, "network@2"), higgs.run(4, "network@2")
    one, two = (to_json(api.explain(higgs.path, "44086", from_run=b, to_run=c, now=higgs.now())) for _ in range(2))
    assert one == two
    assert counts(higgs.path) == before


def test_explanation_time(higgs, counterfactual, capsys):
    """Not a check: how long one explanation takes (printed)."""
    t0 = time.perf_counter()
    api.explain(higgs.path, counterfactual.account, from_run=counterfactual.baseline,
                to_run=counterfactual.candidate, now=higgs.now())
    stored_seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nexplain {counterfactual.account} activity@1 2012-07-01 -> network@2 2012-07-05: "
              f"{stored_seconds:.2f} s with the counterfactual runs stored, "
              f"{counterfactual.seconds:.2f} s computing them")


# ---------------------------------------------------------------- 5. network@2 engagers


def test_network_engagers(higgs, higgs_interactions):
    account = "44086"
    forward = api.explain(higgs.path, account, from_run=higgs.run(3, "network@2"), to_run=higgs.run(4, "network@2"),
                          now=higgs.now())
    backward = api.explain(higgs.path, account, from_run=higgs.run(4, "network@2"), to_run=higgs.run(3, "network@2"),
                           now=higgs.now())
    # explaining the change backwards negates every part
    for part, value in forward.parts.items():
        assert close(backward.parts[part], -value)
    for e, (d1, d2) in ((forward, (3, 4)), (backward, (4, 3))):
        g = e.engagers
        assert g.height > 0 and g.filter(pl.col("points").is_null()).height == 0
        assert (g["algorithm"] == "network@2").all()
        # per kind, the engagers' points add up to the inbound component's points
        for kind in g["kind"].unique().sort():
            engagers = g.filter(pl.col("kind") == kind)["points"].sum()
            component = sum(c.points for c in e.components if c.component == f"inbound_{kind}")
            assert close(engagers, component, 1e-9 * max(1.0, abs(component))), kind
        inbound = sum(c.points for c in e.components if c.component.startswith("inbound_"))
        assert close(g["points"].sum(), inbound, 1e-9 * max(1.0, abs(e.parts["own_activity"])))
        # interaction counts agree with the raw Higgs file in each snapshot's window
        n = [window(higgs_interactions, DAYS[d - 1]).filter(pl.col("target") == account)
             .group_by(pl.col("source").alias("engager"), "kind").agg(pl.len().cast(pl.Int64).alias(f"n{i}"))
             for i, d in ((1, d1), (2, d2))]
        expected = (n[0].join(n[1], on=["engager", "kind"], how="full", coalesce=True)
                    .with_columns(pl.col("n1", "n2").fill_null(0)).sort("engager", "kind"))
        assert_frame_equal(g.select("engager", "kind", "n1", "n2").sort("engager", "kind"), expected)
        # an engager who started (or stopped) is the account's own activity, all of it
        moved = g.filter((pl.col("n1") == 0) | (pl.col("n2") == 0))
        assert moved.height > 0
        change = moved["c2"] - moved["c1"]
        assert ((moved["own"] - change).abs() <= 1e-12 * change.abs()).all()
        assert ((moved["own"] + moved["pop"] - change).abs() <= 1e-12 * change.abs()).all()
        assert (moved["pop"].abs() <= 1e-12 * change.abs()).all()
        started, stopped = g.filter(pl.col("c1") == 0), g.filter(pl.col("c2") == 0)
        assert (started["n1"] == 0).all() and (stopped["n2"] == 0).all()
        assert (started.height > 0) == (d2 > d1) and (stopped.height > 0) == (d2 < d1)
        # the engagers' scores are their scores in each run
        for col, run in (("engager_score1", e.baseline.run_id), ("engager_score2", e.candidate.run_id)):
            ref = api.scores(higgs.path, run, accounts=g["engager"].unique().to_list())
            got = g.select("engager", col).unique().sort("engager")
            want = got.select("engager").join(ref.select(pl.col("account_id").alias("engager"),
                                                         pl.col("score").alias(col)), on="engager", how="left")
            assert_frame_equal(got, want)
    # the text shows who started engaging
    assert "started" in present.explanation_text(forward, engagers=forward.engagers.height)


# ---------------------------------------------------------------- 6. clear messages


def test_errors_are_messages(higgs, monkeypatch, capsys):
    b, c = higgs.run(3, "activity@1"), higgs.run(4, "activity@1")
    d1, d5 = higgs.run(1, "activity@1"), higgs.run(5, "network@2")
    later = (api.scores(higgs.path, d5).join(api.scores(higgs.path, d1), on="account_id", how="anti")
             .sort("account_id")["account_id"][0])         # scored on day 5, no activity on day 1
    before = counts(higgs.path)
    cases = [
        ("999999999", b, c, AuditError,
         f'account "999999999" has no score in run(s) {b}, {c} (no activity in that snapshot\'s window); '
         'pick runs where it was scored, e.g. "audit history 999999999"'),
        (later, d1, d5, AuditError,
         f'account "{later}" has no score in run(s) {d1} (no activity in that snapshot\'s window); '
         f'pick runs where it was scored, e.g. "audit history {later}"'),
        ("44086", "r_ffffffffffff", c, NotFound, 'run "r_ffffffffffff" not found; "audit runs" lists them'),
        ("44086", b, "nonsense", NotFound, 'run "nonsense" not found; "audit runs" lists them'),
    ]
    for account, r1, r2, kind, message in cases:
        with pytest.raises(kind) as info:
            api.explain(higgs.path, account, from_run=r1, to_run=r2, now=higgs.now())
        assert str(info.value) == message
        code, out, err = run_cli(monkeypatch, capsys, "--store", str(higgs.path), "explain", account,
                                 "--from", r1, "--to", r2)
        assert (code, out, err) == (2, "", f"error: {message}\n")
    assert counts(higgs.path) == before


@pytest.mark.slow
def test_unknown_account_leaves_the_store_unchanged(higgs, tmp_path):
    path = tmp_path / "two-runs.duckdb"
    shutil.copy(higgs.two_runs, path)
    before = counts(path)
    with pytest.raises(AuditError, match='account "999999999" has no score'):
        api.explain(path, "999999999", from_run=higgs.run(1, "activity@1"), to_run=higgs.run(5, "network@2"),
                    now=higgs.now())
    assert counts(path) == before


# ---------------------------------------------------------------- 7. the CLI


def test_cli_text_and_json(higgs, monkeypatch, capsys):
    b, c = higgs.run(3, "activity@1"), higgs.run(4, "activity@1")
    args = ["--store", str(higgs.path), "explain", "44086", "--from", b[:8], "--to", c]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    sb, sc = higgs.snapshots[DAYS[2]], higgs.snapshots[DAYS[3]]
    assert lines[:13] == [
        "account 44086: 59.9 -> 93.5 (+33.6 points)",
        f"  from {b}: activity@1 on 2012-07-03 ({sb}), score 59.9, rank 327",
        f"  to   {c}: activity@1 on 2012-07-04 ({sc}), score 93.5, rank 523",
        "  method: same algorithm: the change is data, split into own activity and everyone else",
        "",
        "parts",
        "  own activity     +35.62",
        "  everyone else     -2.02",
        "  algorithm         +0.00",
        "  total            +33.59",
        "",
        "reasons",
        "  1. Distinct accounts engaging rose from 12 to 41: +12.0 points",
    ]
    assert lines[13:16] == ["  2. Retweets received rose from 16 to 56: +8.2 points",
                            "  3. Mentions received rose from 4 to 20: +7.8 points",
                            "  4. Replies received rose from 1 to 7: +7.6 points"]
    assert "  everyone else  activity@1   normalisation             14.34        14.72    -2.02" in lines

    code, out, err = run_cli(monkeypatch, capsys, *args, "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    e = api.explain(higgs.path, "44086", from_run=b, to_run=c, now=higgs.now())
    assert doc == json.loads(to_json(e))
    assert set(doc["parts"]) == {"own_activity", "population", "algorithm"}
    assert doc["total"] == e.total and doc["parts"] == e.parts
    assert [set(r) >= {"code", "text", "points"} for r in doc["reasons"]] == [True] * 4
    assert [r["code"] for r in doc["reasons"]] == ["ENGAGERS_ROSE", "RETWEETS_ROSE", "MENTIONS_ROSE", "REPLIES_ROSE"]
    assert [c["component"] for c in doc["components"]] == ["retweets", "mentions", "replies", "engagers",
                                                          "normalisation"]
    assert doc["engagers_total"] == 54 and len(doc["engagers"]) == 50       # the first 50 in the document
