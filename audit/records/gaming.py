"""Gaming audits as records: one run examined by one detector version, its groups, their members and
the findings, each finding citing the counterfactual run its points come from. Append-only and
logged like every record (kind `gaming`); a score is never edited.

A gaming audit is named by what it examines (the run's and the detector's content hashes), so
auditing the same run with the same detector again returns the stored one.
"""
from __future__ import annotations

import time
from datetime import datetime

import duckdb
import polars as pl

from ..analysis.gaming import (FINDING_SCHEMA, MEMBER_SCHEMA, GamingAudit, assemble, check_detection,
                               counterfactual_path, exclusion_parts, findings, points_summary)
from ..errors import AuditError
from ..store.db import append_log, dicts, frame, registered, required, resolve as resolve_id
from ..store.recipes import findings_digest, gaming_hash, gaming_id_for, groups_digest, logged
from . import algorithms, detectors, runs, snapshots
from .detectors import Detector
from .runs import Run

_COLUMNS = ("gaming_id, content_hash, run_id, detector_id, snapshot_id, counterfactual_run_id, groups, flagged, "
            "groups_hash, findings_hash, seconds, created_at")


def _hash_of(con: duckdb.DuckDBPyConnection, table: str, key: str, value: str) -> str:
    return dicts(con, f"SELECT content_hash FROM {table} WHERE {key} = ?", [value])[0]["content_hash"]


def find_for(con: duckdb.DuckDBPyConnection, run_id: str, detector_id: str) -> dict | None:
    rows = dicts(con, f"SELECT {_COLUMNS} FROM gaming WHERE run_id = ? AND detector_id = ?", [run_id, detector_id])
    return rows[0] if rows else None


def find(con: duckdb.DuckDBPyConnection, gaming_id: str) -> dict | None:
    rows = dicts(con, f"SELECT {_COLUMNS} FROM gaming WHERE gaming_id = ?", [gaming_id])
    return rows[0] if rows else None


def list_all(con: duckdb.DuckDBPyConnection) -> list[dict]:
    return dicts(con, f"SELECT {_COLUMNS} FROM gaming ORDER BY created_at, gaming_id")


def for_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> list[dict]:
    """The stored audits of these runs, oldest first."""
    return dicts(con, f"SELECT {_COLUMNS} FROM gaming WHERE run_id IN (SELECT unnest(?)) ORDER BY created_at, gaming_id",
                 [run_ids])


def stored_frames(con: duckdb.DuckDBPyConnection, gaming_id: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(groups, members, findings) of an audit as stored, in their canonical order."""
    groups = frame(con, "SELECT group_no::BIGINT AS \"group\", pattern, accounts, evidence::VARCHAR AS evidence "
                        "FROM gaming_group WHERE gaming_id = ? ORDER BY group_no", [gaming_id])
    members = frame(con, "SELECT group_no::BIGINT AS \"group\", account_id, role, received, from_group, given, to_group "
                         "FROM gaming_member WHERE gaming_id = ? ORDER BY group_no, account_id", [gaming_id])
    found = frame(con, "SELECT account_id, group_no::BIGINT AS \"group\", pattern, score, score_without, "
                       "points AS points_from_group FROM gaming_finding WHERE gaming_id = ? "
                       "ORDER BY points DESC, account_id", [gaming_id])
    return _typed(groups, members, found)


def _typed(groups: pl.DataFrame, members: pl.DataFrame,
           found: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    g = {"group": pl.Int64, "pattern": pl.String, "accounts": pl.Int64, "evidence": pl.String}
    return (groups.cast(g) if groups.height else pl.DataFrame(schema=g),
            members.cast(MEMBER_SCHEMA) if members.height else pl.DataFrame(schema=MEMBER_SCHEMA),
            found.cast(FINDING_SCHEMA) if found.height else pl.DataFrame(schema=FINDING_SCHEMA))


def detect(con: duckdb.DuckDBPyConnection, run: Run, detector: Detector) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Execute the stored detector source on the run's snapshot inputs; (groups, members), checked."""
    module = detectors.verified_module(detector)
    snap = snapshots.get(con, run.snapshot_id)
    interactions, accounts = snapshots.load_inputs(con, snap)
    try:
        out = module.detect(interactions, accounts, detector.params)
    except Exception as exc:
        raise AuditError(f"detector {detector.label} failed on snapshot {snap.snapshot_id}: "
                         f"{type(exc).__name__}: {exc}") from exc
    universe = pl.concat([interactions["source"], interactions["target"], accounts["account_id"]]).unique()
    return check_detection(out, detector.label, universe)


def refuse_without_path(con: duckdb.DuckDBPyConnection, run: Run) -> None:
    """AuditError when the run cannot have a counterfactual: a run of a derived snapshot, or a version
    without the counterfactual path (analysis.gaming.counterfactual_path)."""
    snap = snapshots.get(con, run.snapshot_id)
    if snap.parent_id is not None:
        raise AuditError(f"run {run.run_id} is itself a counterfactual (its snapshot {snap.snapshot_id} leaves "
                         f"interactions of {snap.parent_id} out); audit the run of the snapshot it derives from")
    algo = algorithms.get(con, run.algorithm_id)
    reason = counterfactual_path(algorithms.verified_module(algo))
    if reason is not None:
        raise AuditError(f"run {run.run_id} ({algo.label}) has no counterfactual path: {reason}")


def audit(con: duckdb.DuckDBPyConnection, run: Run, detector: Detector, now: datetime) -> tuple[dict, bool]:
    """Detect, leave the groups' interactions out in a derived snapshot, score it with the same version
    (a counterfactual run), store the findings; inside the caller's transaction. An existing audit of
    the same run by the same detector is returned as it is: (record, new)."""
    refuse_without_path(con, run)
    existing = find_for(con, run.run_id, detector.detector_id)
    if existing is not None:
        return existing, False
    t0 = time.perf_counter()
    groups, members = detect(con, run, detector)
    seconds = round(time.perf_counter() - t0, 3)
    snap = snapshots.get(con, run.snapshot_id)
    derived_id = cf_id = None
    found = pl.DataFrame(schema=FINDING_SCHEMA)
    if groups.height:
        derived = snapshots.derive(con, snap, exclusion_parts(members), now)
        algo = algorithms.get(con, run.algorithm_id)
        cf = runs.score_snapshot(con, derived, algo, now, counterfactual=True)
        derived_id, cf_id = derived.snapshot_id, cf.run_id
        ids = members["account_id"].to_list()
        found = findings(groups, members, runs.run_scores(con, run.run_id, ids), runs.run_scores(con, cf.run_id, ids))
    gaming_id = gaming_id_for(_hash_of(con, "run", "run_id", run.run_id), detector.content_hash)
    g_digest, f_digest = groups_digest(groups, members), findings_digest(found)
    content = gaming_hash(gaming_id, run.run_id, detector.detector_id, derived_id, cf_id, groups.height,
                          found.height, g_digest, f_digest, seconds)
    con.execute(f"INSERT INTO gaming ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [gaming_id, content, run.run_id, detector.detector_id, derived_id, cf_id, groups.height, found.height,
                 g_digest, f_digest, seconds, now])
    with registered(con, "new_groups", groups), registered(con, "new_members", members), \
            registered(con, "new_findings", found):
        con.execute('INSERT INTO gaming_group SELECT ?, "group", pattern, accounts, evidence::JSON FROM new_groups '
                    'ORDER BY "group"', [gaming_id])
        con.execute('INSERT INTO gaming_member SELECT ?, "group", account_id, role, received, from_group, given, '
                    'to_group FROM new_members ORDER BY "group", account_id', [gaming_id])
        con.execute("INSERT INTO gaming_finding SELECT ?, account_id, \"group\", pattern, score, score_without, "
                    "points_from_group FROM new_findings ORDER BY points_from_group DESC, account_id", [gaming_id])
    append_log(con, "gaming", gaming_id, logged(content, created_at=now), now)
    return find(con, gaming_id), True


def handles(con: duckdb.DuckDBPyConnection, snapshot_id: str, ids: list[str]) -> pl.DataFrame:
    """account_id, handle of these accounts in a snapshot's account files (null when not delivered)."""
    snap = snapshots.get(con, snapshot_id)
    params = {"batches": list(snap.batch_ids), "ids": ids, **({"as_of": snap.as_of} if snap.accounts_rule else {})}
    return frame(con, f"SELECT account_id, handle FROM ({snapshots.accounts_sql(snap.accounts_rule)}) "
                      "WHERE account_id IN (SELECT unnest($ids)) ORDER BY account_id", params)


def load(con: duckdb.DuckDBPyConnection, record: dict, new: bool = False) -> GamingAudit:
    """The stored audit as a result: findings with handles and evidence, groups, points distribution."""
    groups, members, found = stored_frames(con, record["gaming_id"])
    grouped, flagged = assemble(groups, members, found)
    named = handles(con, (run := runs.get(con, record["run_id"])).snapshot_id, flagged["account_id"].to_list())
    flagged = flagged.join(named, on="account_id", how="left").sort(["points_from_group", "account_id"],
                                                                     descending=[True, False])
    snap = snapshots.get(con, run.snapshot_id)
    left_out = 0
    if record["snapshot_id"] is not None:
        left_out = snap.interactions - snapshots.get(con, record["snapshot_id"]).interactions
    det = detectors.get(con, record["detector_id"])
    return GamingAudit(record["gaming_id"], det.label, det.detector_id, run.run_id, run.algorithm, snap.snapshot_id,
                       snap.label, run.accounts, record["snapshot_id"], record["counterfactual_run_id"], left_out,
                       grouped, flagged, points_summary(flagged), record["seconds"], record["created_at"], new)


def resolve(con: duckdb.DuckDBPyConnection, ref: str) -> dict:
    """An audit by id or unique id prefix."""
    return required(find(con, resolve_id(con, "gaming", ref, what="gaming audit", listing="audit gaming --help")),
                    "gaming audit", ref, "audit gaming --help")


# ---------------------------------------------------------------- verify

def recompute(con: duckdb.DuckDBPyConnection, gaming_id: str) -> str | None:
    """The logged content of an audit from what the store holds; or what disagrees. Besides the digests,
    its findings must be the members and targets of its groups, with the scores the two stored runs
    hold and points = score - score_without exactly; its derived snapshot must leave out its groups."""
    r = find(con, gaming_id)
    if r is None:
        return None
    groups, members, found = stored_frames(con, gaming_id)
    if (groups.height, found.height) != (r["groups"], r["flagged"]):
        return f"stored group/finding counts disagree with the rows of {gaming_id}"
    if r["counterfactual_run_id"] is not None:
        ids = members["account_id"].to_list()
        expected = findings(groups, members, runs.run_scores(con, r["run_id"], ids),
                            runs.run_scores(con, r["counterfactual_run_id"], ids))
        if not expected.equals(found):
            return "its findings are not the stored runs' scores and their differences"
        if snapshots.exclusion(con, r["snapshot_id"]) != sorted(
                [sorted(p) for p in exclusion_parts(members)], key=min):
            return f"its derived snapshot {r['snapshot_id']} does not leave out exactly its groups"
        cf = runs.find(con, r["counterfactual_run_id"])
        run = runs.find(con, r["run_id"])
        if cf is None or run is None or cf.snapshot_id != r["snapshot_id"] or cf.algorithm_id != run.algorithm_id:
            return "its counterfactual run is not the audited version on its derived snapshot"
    elif found.height or groups.height:
        return "it has findings but no counterfactual run"
    content = gaming_hash(gaming_id, r["run_id"], r["detector_id"], r["snapshot_id"], r["counterfactual_run_id"],
                          r["groups"], r["flagged"], groups_digest(groups, members), findings_digest(found),
                          r["seconds"])
    if (groups_digest(groups, members), findings_digest(found)) != (r["groups_hash"], r["findings_hash"]):
        return f"stored groups_hash/findings_hash disagree with the rows of {gaming_id}"
    return logged(content, created_at=r["created_at"])


def recompute_detector(con: duckdb.DuckDBPyConnection, detector_id: str) -> str | None:
    stored = detectors.find(con, detector_id)
    if stored is None:
        return None
    derived = detectors.from_source(stored.source, stored.label)
    if (derived.name, derived.version, derived.description, derived.changelog, derived.detector_id,
            derived.params) != (stored.name, stored.version, stored.description, stored.changelog,
                                stored.detector_id, stored.params):
        return "fields differ from what the stored source declares"
    return logged(detectors.content_hash(stored), registered_at=stored.registered_at)


def rerun(con: duckdb.DuckDBPyConnection, step=None) -> tuple[list[dict], int]:
    """Re-detect every audit from its run's stored inputs and the detector's stored source; the groups
    and members must be the stored ones (the findings are checked against the stored runs by recompute,
    and the counterfactual run is re-executed with every run)."""
    problems = []
    every = list_all(con)
    for r in every:
        if step is not None:
            step(f"re-detecting {r['gaming_id']}")
        where = {"seq": None, "kind": "gaming", "record_id": r["gaming_id"]}
        run, det = runs.find(con, r["run_id"]), detectors.find(con, r["detector_id"])
        if run is None or det is None:
            problems.append({**where, "problem": "its run or detector is missing"})
            continue
        try:
            groups, members = detect(con, run, det)
        except AuditError as exc:
            problems.append({**where, "problem": f"re-detection failed: {exc}"})
            continue
        fresh = groups_digest(groups, members)
        if fresh != r["groups_hash"]:
            problems.append({**where, "problem": f"re-detecting with {det.label} on run {run.run_id} gives groups "
                                                 f"{fresh[:16]}, stored {r['groups_hash'][:16]}"})
    return problems, len(every)

