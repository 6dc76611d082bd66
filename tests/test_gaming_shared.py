"""The gaming audit on the Higgs week and the three shared real datasets of the explanation tests, without planting: what a real network looks like
(README, "Gaming audit"). Each dataset is audited whole (window all, as of its end) under network@3;
the figures are printed, and the invariants every audit must keep are asserted."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from audit import api
from conftest import Clock
from explain_data import SHARED

DATASETS = {
    "Higgs Twitter week": ((("higgs-twitter/higgs-activity_time.txt.gz", "snap-higgs", None),), "2012-07-07"),
    "MathOverflow (answers to questions)": ((("sx-mathoverflow/sx-mathoverflow-a2q.txt", "uvt", "reply"),), "2016-03-07"),
    "Bitcoin Alpha (signed ratings)": ((("soc-sign-bitcoinalpha/soc-sign-bitcoinalpha.csv", "signed-csv", None),),
                                       "2016-01-23"),
    "Quantum Computing Stack Exchange": ((("se-quantumcomputing/interactions.csv", "csv", None),
                                          ("se-quantumcomputing/accounts.csv", "csv", None)), "2024-04-07"),
}


def audit_dataset(folder, files, as_of, version="network@3"):
    store, clock = folder / "audit.duckdb", Clock(datetime(2026, 3, 1, tzinfo=timezone.utc))
    for path, fmt, kind in files:
        api.ingest(store, SHARED / path, fmt=fmt, kind=kind, now=clock())
    snap = api.snapshot(store, as_of=as_of, window="all", now=clock())
    run = api.score(store, snap.snapshot_id, version, now=clock())
    return store, snap, run, api.gaming(store, run.run_id, now=clock())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DATASETS))
def test_real_networks_without_planting(name, tmp_path, capsys):
    files, as_of = DATASETS[name]
    if not all((SHARED / f).is_file() for f, _, _ in files):
        pytest.skip(f"{files[0][0]} is not beside the checkout")
    store, snap, run, audit = audit_dataset(tmp_path, files, as_of)
    scores = api.scores(store, run.run_id)
    top = scores.sort(["score", "account_id"], descending=[True, False]).head(max(1, scores.height // 100))
    flagged = set(audit.flagged["account_id"].to_list())
    top_flagged = sum(a in flagged for a in top["account_id"].to_list())
    rings = [g for g in audit.groups if g.pattern == "ring"]
    pups = [g for g in audit.groups if g.pattern == "puppets"]
    p = audit.points
    with capsys.disabled():
        print(f"\n{name}: {snap.interactions:,} interactions, {snap.accounts:,} accounts; "
              f"{len(rings)} rings ({sum(g.accounts for g in rings)} accounts), {len(pups)} puppet groups "
              f"({sum(g.flagged for g in pups)} targets, {sum(g.accounts - g.flagged for g in pups)} puppets); "
              f"{p.flagged} flagged, {p.over_5} with more than 5 points, median {p.median}, max {p.max}; "
              f"top 1%: {top_flagged} of {top.height} flagged; {audit.left_out} interactions left out")
    f = audit.flagged
    assert (f["points_from_group"] == f["score"] - f["score_without"]).all()
    if audit.groups:
        assert api.get_run(store, audit.counterfactual_run_id).accounts == run.accounts
    assert api.verify(store, rerun=True).ok
