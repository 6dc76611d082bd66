"""The gaming audit on real data: rings and puppet groups planted into the real Higgs week are found
(at least 90% of planted members and targets flagged, at least 90% of the accounts with more than 5
points from their group planted, at most 1% of the real top 1% flagged); points are exact differences
of two stored runs; the findings are logged records that verify --rerun re-detects; the counterfactual
snapshot copies no rows and reruns bit for bit; bad input is refused and stores nothing; networkx,
as an independent reference, finds the same rings."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest

from audit import api, present
from audit.errors import AuditError
from audit.records import detectors
from audit.store.db import connect, transaction
from conftest import EMPTY_ACCOUNTS, HIGGS, Clock, query, read_higgs
from gaming_data import Planted, plant

ROOT = Path(__file__).resolve().parent.parent
INDEGREE = ROOT / "tests" / "algorithms" / "indegree_v1.py"
START = datetime(2026, 2, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Built:
    path: Path
    planted: Planted
    snapshot: str
    runs: dict[str, str]          # version -> run id
    audits: dict[str, str]        # version -> gaming id

    def copy_to(self, folder: Path) -> Path:
        target = folder / "audit.duckdb"
        target.write_bytes(self.path.read_bytes())
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists():
            target.with_name(target.name + ".wal").write_bytes(wal.read_bytes())
        return target


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    folder = tmp_path_factory.mktemp("gaming")
    planted = plant(read_higgs(), folder)
    store, clock = folder / "audit.duckdb", Clock(START)
    api.ingest(store, HIGGS, now=clock())
    api.ingest(store, planted.csv, now=clock())
    handles = folder / "handles.csv"             # the puppet targets' handles, hostile on purpose
    pl.DataFrame({"account_id": list(planted.targets),
                  "handle": [f"<b onmouseover=x>t{i}</b>" for i in range(len(planted.targets))]}).write_csv(handles)
    api.ingest(store, handles, now=clock())
    snap = api.snapshot(store, as_of="2012-07-07", window="7d", label="2012-07-07 planted", now=clock())
    runs, audits = {}, {}
    for version in ("network@3", "activity@1"):
        runs[version] = api.score(store, snap.snapshot_id, version, now=clock()).run_id
        audits[version] = api.gaming(store, runs[version], now=clock()).gaming_id
    return Built(store, planted, snap.snapshot_id, runs, audits)


def state(store: Path) -> tuple[str | None, str | None]:
    def digest(p: Path) -> str | None:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return digest(store), digest(store.with_name(store.name + ".wal"))


def figures(audit: api.GamingAudit, scores: pl.DataFrame, planted: Planted) -> dict[str, float]:
    """The issue's three figures and the puppets listed, for one audit."""
    flagged = set(audit.flagged["account_id"].to_list())
    listed = {a for g in audit.groups for a, _ in g.members}
    big = audit.flagged.filter(pl.col("points_from_group") > 5)["account_id"].to_list()
    real = scores.filter(~pl.col("account_id").is_in(list(planted.all_accounts)))
    top = real.sort(["score", "account_id"], descending=[True, False]).head(real.height // 100)["account_id"].to_list()
    puppets = {p for g in planted.puppets for p in g}
    return {"recall": len(planted.earners & flagged) / len(planted.earners),
            "precision_over_5": sum(a in planted.earners for a in big) / len(big),
            "over_5": len(big),
            "top_1pct_flagged": sum(a in flagged for a in top) / len(top),
            "puppets_listed": len(puppets & listed) / len(puppets)}


@pytest.mark.slow
def test_planted_gaming_is_found_and_real_broad_audiences_are_not(built, capsys):
    audit = api.get_gaming(built.path, built.audits["network@3"])
    f = figures(audit, api.scores(built.path, built.runs["network@3"]), built.planted)
    with capsys.disabled():
        print(f"\nplanted gaming, network@3: {len(built.planted.rings)} rings ({len(built.planted.members)} members), "
              f"{len(built.planted.targets)} puppet groups ({sum(map(len, built.planted.puppets))} puppets); "
              f"{audit.points.flagged} flagged; " + ", ".join(f"{k} {v:.4g}" for k, v in f.items()))
    assert f["recall"] >= 0.90
    assert f["precision_over_5"] >= 0.90
    assert f["top_1pct_flagged"] <= 0.01
    assert f["puppets_listed"] >= 0.90


@pytest.mark.slow
@pytest.mark.parametrize("version", ["network@3", "activity@1"])
def test_points_are_the_difference_of_two_stored_runs(built, version):
    audit = api.get_gaming(built.path, built.audits[version])
    cf = api.get_run(built.path, audit.counterfactual_run_id)
    assert cf.counterfactual and cf.algorithm == version and cf.snapshot_id == audit.derived_snapshot_id
    ids = audit.flagged["account_id"].to_list()
    run = api.scores(built.path, built.runs[version], accounts=ids).select("account_id", "score")
    without = api.scores(built.path, cf.run_id, accounts=ids).select("account_id", pl.col("score").alias("w"))
    f = audit.flagged.join(run, on="account_id", suffix="_run").join(without, on="account_id")
    assert f.height == len(ids) > 0
    assert (f["score"] == f["score_run"]).all() and (f["score_without"] == f["w"]).all()
    # exact: the points are the stored difference, and the parts add up to the score
    assert (f["points_from_group"] == f["score"] - f["score_without"]).all()
    assert np.abs((f["score_without"] + f["points_from_group"] - f["score"]).to_numpy()).max() <= 1e-12
    # sorted by points, most first
    assert audit.flagged["points_from_group"].is_sorted(descending=True)
    # the groups' points add up over their flagged accounts
    per = dict(f.group_by("group").agg(pl.col("points_from_group").sum()).iter_rows())
    assert all(abs(g.points - per.get(g.group, 0.0)) < 1e-9 for g in audit.groups)


@pytest.mark.slow
def test_the_counterfactual_snapshot_copies_no_rows_keeps_the_accounts_and_leaves_out_the_groups(built):
    audit = api.get_gaming(built.path, built.audits["network@3"])
    parent, derived = (api.get_snapshot(built.path, s) for s in (built.snapshot, audit.derived_snapshot_id))
    assert derived.parent_id == parent.snapshot_id and derived.as_of == parent.as_of
    assert derived.accounts == parent.accounts
    assert api.get_run(built.path, audit.counterfactual_run_id).accounts == api.get_run(built.path, built.runs["network@3"]).accounts
    # what it leaves out, counted independently: interactions whose two ends are in one group
    part = {a: g.group for g in audit.groups for a, _ in g.members}
    data = pl.concat([read_higgs().select("source", "target"),
                      pl.read_csv(built.planted.csv, schema_overrides={"source": pl.String, "target": pl.String})
                      .select("source", "target")])
    left = data.filter(pl.col("source").replace_strict(part, default=-1) == pl.col("target").replace_strict(part, default=-2))
    assert parent.interactions - derived.interactions == left.height == audit.left_out
    # no interaction row was copied: the store holds the two batches' rows only
    assert query(built.path, "SELECT count(*) FROM interaction")[0][0] == 563_069 + built.planted.rows
    # `latest` is the ordinary snapshot, never the derived one
    assert api.get_snapshot(built.path, "latest").snapshot_id == parent.snapshot_id


@pytest.mark.slow
def test_a_second_audit_is_the_stored_one(built, tmp_path):
    store = built.copy_to(tmp_path)
    before = query(store, "SELECT count(*) FROM log")[0][0]
    again = api.gaming(store, built.runs["network@3"][:8], now=START)
    assert (again.gaming_id, again.new) == (built.audits["network@3"], False)
    assert query(store, "SELECT count(*) FROM log")[0][0] == before


@pytest.mark.slow
def test_verify_rerun_redetects_every_audit_and_reruns_the_counterfactuals(built):
    v = api.verify(built.path, rerun=True)
    assert v.ok, v.problems
    assert v.reran == 4                                   # two runs and their two counterfactual runs
    kinds = {r[0] for r in query(built.path, "SELECT DISTINCT record_kind FROM log")}
    assert {"detector", "gaming", "snapshot", "run"} <= kinds


@pytest.mark.slow
@pytest.mark.parametrize("tamper, names", [
    ("UPDATE gaming_finding SET points = points + 1 WHERE account_id = (SELECT min(account_id) FROM gaming_finding)",
     "gaming g_"),
    ("UPDATE gaming_member SET role = 'puppet' WHERE account_id = (SELECT min(account_id) FROM gaming_member "
     "WHERE role = 'member')", "gaming g_"),
    ("DELETE FROM snapshot_exclusion WHERE account_id = (SELECT min(account_id) FROM snapshot_exclusion)", "snapshot s_"),
    ("UPDATE detector SET params = '{}'", "detector d_"),
])
def test_tampering_with_findings_exclusions_or_detectors_is_pinpointed(built, tmp_path, tamper, names):
    store = built.copy_to(tmp_path)
    con = duckdb.connect(str(store))
    con.execute(tamper)
    con.close()
    v = api.verify(store)
    assert not v.ok
    assert any(names in p["problem"] for p in v.problems), v.problems


@pytest.mark.slow
def test_rerun_redetects_from_the_stored_source(built, tmp_path):
    """A group row changed together with the digests that cover it passes the hash checks, and only
    re-detection from the stored source catches it."""
    store = built.copy_to(tmp_path)
    con = duckdb.connect(str(store))
    con.execute("SET TimeZone='UTC'")
    gid = built.audits["network@3"]
    con.execute("UPDATE gaming_group SET evidence = '{\"density\": 0.5}' WHERE gaming_id = ? AND group_no = 1", [gid])
    con.close()
    from audit.records import gaming as gaming_records
    from audit.store.recipes import gaming_hash, groups_digest, logged
    with connect(store, write=True) as c:
        r = gaming_records.find(c, gid)
        g, m, f = gaming_records.stored_frames(c, gid)
        digest = groups_digest(g, m)
        content = gaming_hash(gid, r["run_id"], r["detector_id"], r["snapshot_id"], r["counterfactual_run_id"],
                              r["groups"], r["flagged"], digest, r["findings_hash"], r["seconds"])
        # a forger who rewrites the record and re-chains the log from this entry on
        c.execute("UPDATE gaming SET groups_hash = ?, content_hash = ? WHERE gaming_id = ?", [digest, content, gid])
        seq = c.execute("SELECT seq FROM log WHERE record_id = ?", [gid]).fetchall()[0][0]
        c.execute("UPDATE log SET content_hash = ? WHERE seq = ?", [logged(content, created_at=r["created_at"]), seq])
        from audit.store.db import entry_hash
        rows = c.execute("SELECT seq, record_kind, record_id, content_hash, prev_hash, logged_at FROM log "
                         "WHERE seq >= ? ORDER BY seq", [seq]).fetchall()
        prev = c.execute("SELECT entry_hash FROM log WHERE seq = ?", [seq - 1]).fetchall()[0][0]
        for s, k, rid, ch, _, at in rows:
            h = entry_hash(s, k, rid, ch, prev, at)
            c.execute("UPDATE log SET prev_hash = ?, entry_hash = ? WHERE seq = ?", [prev, h, s])
            prev = h
    assert api.verify(store).ok                       # the hashes alone now agree
    v = api.verify(store, rerun=True)
    assert not v.ok
    assert [p["record_id"] for p in v.problems] == [gid]
    assert "re-detecting with rings@1" in v.problems[0]["problem"]


# ---------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The first 20,000 Higgs interactions, scored by network@3 and by the user algorithm indegree@1."""
    folder = tmp_path_factory.mktemp("gaming-small")
    rows = read_higgs().head(20_000).with_columns(pl.col("ts").dt.epoch("s").alias("ts")).select(
        "source", "target", "kind", "ts")
    csv = folder / "higgs-20k.csv"
    rows.write_csv(csv)
    store, clock = folder / "audit.duckdb", Clock(START)
    api.ingest(store, csv, now=clock())
    snap = api.snapshot(store, as_of="2012-07-07", window="7d", now=clock())
    api.register(store, INDEGREE, now=clock())
    runs = {v: api.score(store, snap.snapshot_id, v, now=clock()).run_id for v in ("network@3", "indegree@1")}
    return store, runs


def test_a_version_without_a_counterfactual_path_is_refused_and_nothing_is_stored(small, tmp_path):
    from test_cli import here
    store = tmp_path / "audit.duckdb"
    store.write_bytes(small[0].read_bytes())
    before = state(store)
    code, out, err = here("--store", str(store), "gaming", small[1]["indegree@1"][:10])
    assert (code, out) == (2, "")
    assert err == (f"error: run {small[1]['indegree@1']} (indegree@1) has no counterfactual path: the version "
                   "declares no engagers() hook, so it does not state its score as built from the engagement each "
                   "account receives; audit gaming takes runs of activity@1, network@2, network@3 or of a version "
                   "that declares engagers()\n")
    assert state(store) == before


def test_an_unknown_run_or_detector_is_refused(small, tmp_path):
    from test_cli import here
    store = tmp_path / "audit.duckdb"
    store.write_bytes(small[0].read_bytes())
    before = state(store)
    assert here("--store", str(store), "gaming", "r_nosuch") == (
        2, "", 'error: run "r_nosuch" not found; "audit runs" lists them\n')
    code, out, err = here("--store", str(store), "gaming", small[1]["network@3"], "--detector", "cliques@9")
    assert (code, err) == (2, 'error: detector "cliques@9" is not registered; shipped: rings@1\n')
    assert state(store) == before


def test_a_failing_detection_stores_nothing(small, tmp_path):
    store = tmp_path / "audit.duckdb"
    store.write_bytes(small[0].read_bytes())
    broken = detectors.shipped_source("rings@1").replace('NAME = "rings"', 'NAME = "broken"').replace(
        "    ids, src, tgt, acc = _index(interactions, accounts)", "    raise ValueError('no graph today')")
    with connect(store, write=True) as con, transaction(con):
        detectors.register(con, detectors.from_source(broken, "broken"), START)
    counts = query(store, "SELECT (SELECT count(*) FROM log), (SELECT count(*) FROM snapshot), (SELECT count(*) FROM run)")
    before = state(store)
    with pytest.raises(AuditError, match=r"detector broken@1 failed on snapshot s_\w+: ValueError: no graph today"):
        api.gaming(store, small[1]["network@3"], detector="broken@1", now=START)
    assert state(store) == before
    assert query(store, "SELECT (SELECT count(*) FROM log), (SELECT count(*) FROM snapshot), (SELECT count(*) FROM run)") == counts


@pytest.mark.slow
def test_a_counterfactual_run_is_not_audited_again(built, tmp_path):
    store = built.copy_to(tmp_path)
    cf = api.get_gaming(store, built.audits["network@3"]).counterfactual_run_id
    with pytest.raises(AuditError, match=rf"run {cf} is itself a counterfactual \(its snapshot s_\w+ leaves "
                                         rf"interactions of {built.snapshot} out\)"):
        api.gaming(store, cf, now=START)


# ---------------------------------------------------------------- the reference

def reference_rings(interactions: pl.DataFrame, params: dict) -> set[frozenset[str]]:
    """rings@1's ring definition computed with networkx (and polars for the counts), step by step."""
    e = interactions.filter(((pl.col("kind") != "rating") | (pl.col("weight") > 0)) & (pl.col("source") != pl.col("target")))
    pairs = e.group_by("source", "target").len()
    w = {(s, t): n for s, t, n in pairs.iter_rows()}
    g = nx.DiGraph()
    g.add_weighted_edges_from((s, t, n) for (s, t), n in w.items())
    recip = {(s, t) for (s, t) in w if (t, s) in w}
    received = {v: sum(d["weight"] for _, _, d in g.in_edges(v, data=True)) for v in g}
    partners = {v: sum(1 for u in g.successors(v) if (v, u) in recip) for v in g}
    back = {v: sum(d["weight"] for u, _, d in g.in_edges(v, data=True) if (u, v) in recip) for v in g}
    cand = {v for v in g if 2 <= partners[v] <= params["max_partners"] and received[v] > 0
            and back[v] >= params["min_member_reciprocal_share"] * received[v]}
    u = nx.Graph()
    u.add_edges_from((s, t) for s, t in recip if s in cand and t in cand)
    strong = nx.Graph()
    for a, b in u.edges():
        common = len(list(nx.common_neighbors(u, a, b)))
        if common and common / max(min(u.degree(a), u.degree(b)) - 1, 1) >= params["min_overlap"]:
            strong.add_edge(a, b)
    found = set()
    for comp in nx.connected_components(strong):
        k = len(comp)
        if not params["min_size"] <= k <= params["max_size"]:
            continue
        inside = [(s, t) for (s, t) in w if s in comp and t in comp]
        share = sum(w[p] for p in inside) / sum(received[v] for v in comp)
        reciprocity = sum(p in recip for p in inside) / len(inside)
        density = len(inside) / (k * (k - 1))
        if (share >= params["min_internal_share"] and reciprocity >= params["min_reciprocity"]
                and density >= params["min_density"]):
            found.add(frozenset(comp))
    return found


@pytest.mark.slow
def test_networkx_finds_the_same_rings_on_the_real_higgs_week(higgs_interactions):
    module = detectors.load_module(detectors.shipped_source("rings@1"), "rings@1")
    out = module.detect(higgs_interactions, EMPTY_ACCOUNTS, module.PARAMS)
    members = out["members"].filter(pl.col("role") == "member")
    ours = {frozenset(g) for g in members.group_by("group").agg(pl.col("account_id"))["account_id"].to_list()}
    ref = reference_rings(higgs_interactions, module.PARAMS["ring"])
    assert len(ours) > 20
    assert ours == ref


def test_the_json_document_and_text(small, tmp_path):
    """On the 20,000 first Higgs interactions: the JSON shape of the issue and the text's words."""
    from test_cli import here
    store = tmp_path / "audit.duckdb"
    store.write_bytes(small[0].read_bytes())
    run = small[1]["network@3"]
    code, out, err = here("--store", str(store), "gaming", run, "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc == present.gaming_json(api.get_gaming(store, doc["gaming_id"])) | {"new": True}
    assert {"detector", "run_id", "counterfactual_run_id", "flagged", "groups"} <= set(doc)
    assert doc["detector"] == "rings@1" and doc["run_id"] == run
    assert doc["flagged"] and doc["groups"] and doc["counterfactual_run_id"]   # 8 groups in these 20,000 rows
    for f in doc["flagged"]:
        assert set(f) == {"account_id", "handle", "pattern", "group", "score", "score_without", "points_from_group",
                          "evidence"}
        assert f["points_from_group"] == f["score"] - f["score_without"]
    assert [f["points_from_group"] for f in doc["flagged"]] == sorted((f["points_from_group"] for f in doc["flagged"]),
                                                                      reverse=True)
    for g in doc["groups"]:
        assert set(g) >= {"group", "pattern", "members", "evidence"}
    code, text, err = here("--store", str(store), "gaming", run)
    a = api.get_gaming(store, doc["gaming_id"])
    assert text == present.gaming_text(a) + "\n"
    assert text.startswith(f"gaming audit (stored): {a.gaming_id}: rings@1 on run {run} (network@3 on ")


# ---------------------------------------------------------------- reports

@pytest.fixture(scope="module")
def published(built, tmp_path_factory) -> Path:
    """A copy of the planted store with the network@3 run published (the reports read publications)."""
    store = built.copy_to(tmp_path_factory.mktemp("gaming-published"))
    api.publish(store, built.runs["network@3"], period="2012-07-07", now=START)
    return store


@pytest.mark.slow
def test_handles_come_from_the_account_files_and_are_escaped_in_the_reports(built, published):
    from reports.render import render_account, render_transparency
    audit = api.get_gaming(published, built.audits["network@3"])
    targets = audit.flagged.filter(pl.col("pattern") == "puppets")
    assert targets["handle"].str.starts_with("<b onmouseover=x>t").all() and targets.height >= 140
    html = render_transparency(api.transparency(published, rerun_runs=False))
    section = html[html.index("Score earned inside rings"):html.index('id="data-quality"')]
    assert "&lt;b onmouseover=x&gt;t" in section and "<b onmouseover" not in html
    p = audit.points
    assert (f"{p.flagged:,} accounts flagged, {p.over_5:,} with more than 5 points from their group") in section
    rings = sum(1 for g in audit.groups if g.pattern == "ring")
    assert f"{rings:,} closed rings ({sum(g.accounts for g in audit.groups if g.pattern == 'ring'):,} accounts)" in section
    top = audit.flagged.row(0, named=True)
    assert f'<td class="id">{top["account_id"]}</td>' in section
    assert f"{top['points_from_group']:+.2f}" in section and audit.counterfactual_run_id in section
    assert render_transparency(api.transparency(published, rerun_runs=False)) == html      # byte-identical

    account = top["account_id"]
    page = render_account(api.account_statement(published, account, now=START))
    part = page[page.index("<h2>Score earned inside rings</h2>"):]
    assert f"{top['score']:.1f}" in part and f"{top['score_without']:.1f}" in part
    assert f"{top['points_from_group']:+.2f}" in part and audit.counterfactual_run_id in part


@pytest.mark.slow
def test_an_unflagged_account_has_no_gaming_section(built, published):
    from reports.render import render_account
    run = api.scores(published, built.runs["network@3"], top=1)
    account = run["account_id"][0]
    assert account not in api.get_gaming(published, built.audits["network@3"]).flagged["account_id"].to_list()
    assert "Score earned inside rings" not in render_account(api.account_statement(published, account, now=START))
