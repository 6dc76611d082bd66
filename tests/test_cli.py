"""The command line, word for word, on a small real store: the first 2,000 Higgs interactions
written as a CSV. The first command (ingest) and the history with a warning run as an `audit`
subprocess (the installed entry point, found next to the running interpreter); the others go
through the same entry point (`audit.cli.main(argv)` and its one error handler) in-process, which
prints the same bytes about 1.5 s quicker per command.

Batch and snapshot ids are content hashes of the data, so they are written out here (they must
not change between versions of audit). Every count, score and rank is computed in the test from
the CSV (polars) or from the store (SQL), never copied from output. Run ids and result hashes also
hash the shipped algorithms' source, and publication ids hash the CLI's clock, so those (and the
seconds a run took) are read from the store, not written out.
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import click
import numpy as np
import polars as pl
import pytest
import scipy.stats

from audit import api, cli
from audit.api.demo import BASELINE, CANDIDATE
from conftest import audit_main, query, read_frame, run_audit

ROOT = Path(__file__).resolve().parent.parent
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
INDEGREE = ROOT / "tests" / "algorithms" / "indegree_v1.py"
KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}
BATCH = "b_73b32ca25bbc"
EARLY, ALL = "s_30377424e766", "s_36d4d2c02c91"
LINES = 2000
EARLY_AS_OF = 1341100800 + 3 * 3600                                    # 2012-07-01T03:00:00Z


def higgs_csv(path: Path, n: int = LINES) -> Path:
    """The first N lines of the Higgs activity file as an interactions CSV (ts in epoch seconds)."""
    with gzip.open(HIGGS, "rt") as fh:
        rows = [next(fh).split() for _ in range(n)]
    path.write_text("source,target,kind,ts\n" + "".join(f"{a},{b},{KINDS[k]},{t}\n" for a, b, t, k in rows))
    return path


def audit(store: Path, *args: str) -> subprocess.CompletedProcess:
    """`audit --store STORE ARGS` as a subprocess: the installed entry point."""
    return run_audit("--store", str(store), *args, cwd=store.parent)


def audit_here(store: Path, *args: str) -> subprocess.CompletedProcess:
    """The same command in this process (about 1.5 s quicker: no interpreter start, no imports)."""
    code, out, err = here("--store", str(store), *args)
    return subprocess.CompletedProcess(["audit", "--store", str(store), *args], code, out, err)


def here(*args: str) -> tuple[int, str, str]:
    """`audit ARGS` in this process through the real entry point (`cli.main(argv)` and its error handler)."""
    return audit_main(*args)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    return proc.stdout


def seconds_masked(text: str) -> str:
    return re.sub(r" in \d+\.\d\ds ", " in S ", text)


def n_accounts(frame: pl.DataFrame) -> int:
    return pl.concat([frame["source"], frame["target"]]).n_unique()


def run_scores(store: Path, run_id: str) -> pl.DataFrame:
    """Every stored score of a run, read with SQL, with its rank computed here: 1 + the number of
    accounts of the run with a strictly higher score."""
    frame = read_frame(store, "SELECT account_id, score, raw FROM score WHERE run_id = ?", [run_id])
    higher = frame.select(pl.col("score").map_batches(
        lambda s: pl.Series([int((s > v).sum()) for v in s.to_list()], dtype=pl.Int64)).alias("higher"))
    return frame.with_columns((higher["higher"] + 1).alias("rank"))


def score_of(store: Path, run_id: str, account: str) -> dict:
    return run_scores(store, run_id).filter(pl.col("account_id") == account).row(0, named=True)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    """The scenario, run once: every command's output, in order (two of them as subprocesses)."""
    folder = tmp_path_factory.mktemp("cli")
    csv = higgs_csv(folder / "higgs-2000.csv")
    store = folder / "audit.duckdb"
    out: dict[str, subprocess.CompletedProcess] = {}
    out["ingest"] = audit(store, "ingest", str(csv))
    out["ingest again"] = audit_here(store, "ingest", str(csv))
    out["snapshot early"] = audit_here(store, "snapshot", "--as-of", "2012-07-01T03:00:00Z", "--window", "3h",
                                       "--label", "early")
    out["snapshot all"] = audit_here(store, "snapshot", "--as-of", "2012-07-02", "--label", "all")
    out["snapshot early again"] = audit_here(store, "snapshot", "--as-of", "2012-07-01T03:00:00Z", "--window", "3h")
    out["snapshots"] = audit_here(store, "snapshots")
    out["score early"] = audit_here(store, "score", EARLY[:6], "activity@1")
    out["score all"] = audit_here(store, "score", "latest", "activity@1")
    out["score all again"] = audit_here(store, "score", "latest", "activity@1")
    out["score all network"] = audit_here(store, "score", "latest", "network@2")
    runs = {(r.snapshot_id, r.algorithm): r for r in api.runs(store)}
    early, act, net = runs[(EARLY, "activity@1")], runs[(ALL, "activity@1")], runs[(ALL, "network@2")]
    out["publish early"] = audit_here(store, "publish", early.run_id, "--period", "2012-07-01")
    out["publish all"] = audit_here(store, "publish", act.run_id[:8], "--period", "2012-07-02")
    out["publish all again"] = audit_here(store, "publish", act.run_id, "--period", "2012-07-02")
    out["restate all"] = audit_here(store, "publish", net.run_id, "--period", "2012-07-02")
    out["history"] = audit(store, "history", "3604", "26486", "nope")
    out["history restated"] = audit_here(store, "history", "3604", "--restated")
    out["verify"] = audit_here(store, "verify")
    frame = pl.read_csv(csv, schema_overrides={"source": pl.String, "target": pl.String})
    early_rows = frame.filter(pl.col("ts").is_between(EARLY_AS_OF - 3 * 3600, EARLY_AS_OF, closed="left"))
    return {"folder": folder, "csv": csv, "store": store, "out": out, "runs": (early, act, net),
            "publications": api.publications(store), "frame": frame,
            "counts": {"rows": frame.height, "accounts": n_accounts(frame),
                       "early_rows": early_rows.height, "early_accounts": n_accounts(early_rows)}}


# ---------------------------------------------------------------- word for word

def test_ingest_and_again(session):
    n = session["counts"]
    assert n["rows"] == LINES                        # one interaction per line of the file
    assert ok(session["out"]["ingest"]) == (
        f"stored batch {BATCH} (csv): {n['rows']:,} interactions among {n['accounts']:,} accounts\n")
    assert ok(session["out"]["ingest again"]) == (
        f"already stored as batch {BATCH}: nothing new ({n['rows']:,} interactions from {session['csv']})\n")
    assert query(session["store"], "SELECT batch_id, rows, accounts FROM batch") == [
        (BATCH, n["rows"], n["accounts"])]


def test_snapshot_and_snapshots(session):
    out, n = session["out"], session["counts"]
    early = f"{n['early_rows']:,} interactions, {n['early_accounts']:,} accounts"
    assert 0 < n["early_rows"] < n["rows"]
    assert ok(out["snapshot early"]) == (
        f"created snapshot {EARLY} as of 2012-07-01T03:00:00+00:00 (3h window): {early}\n")
    assert ok(out["snapshot all"]) == (
        f"created snapshot {ALL} as of 2012-07-03T00:00:00+00:00: "
        f"{n['rows']:,} interactions, {n['accounts']:,} accounts\n")
    assert ok(out["snapshot early again"]) == (
        f"already exists: snapshot {EARLY} as of 2012-07-01T03:00:00+00:00 (3h window): {early}\n")
    assert ok(out["snapshots"]) == (
        "snapshot        as of                      window interactions  accounts  label\n"
        f"{EARLY}  2012-07-01T03:00:00+00:00      3h {n['early_rows']:>12,} {n['early_accounts']:>9,}  early\n"
        f"{ALL}  2012-07-03T00:00:00+00:00     all {n['rows']:>12,} {n['accounts']:>9,}  all\n")


def test_score(session):
    out = session["out"]
    early, act, net = session["runs"]

    def line(run, accounts: str, snapshot: str) -> str:
        return (f"run {run.run_id}: {accounts} accounts of {snapshot} scored with {run.algorithm} in S "
                f"(result {run.result_hash[:12]})\n")
    n = session["counts"]
    small, every = f"{n['early_accounts']:,}", f"{n['accounts']:,}"
    assert seconds_masked(ok(out["score early"])) == line(early, small, EARLY)
    assert seconds_masked(ok(out["score all"])) == line(act, every, ALL)
    assert seconds_masked(ok(out["score all again"])) == "already scored: " + line(act, every, ALL)
    assert seconds_masked(ok(out["score all network"])) == line(net, every, ALL)
    # one stored score per account of the snapshot
    assert query(session["store"], "SELECT run_id, count(*) FROM score GROUP BY 1 ORDER BY 2, 1") == sorted(
        [(early.run_id, n["early_accounts"]), (act.run_id, n["accounts"]), (net.run_id, n["accounts"])],
        key=lambda r: (r[1], r[0]))
    assert [r.run_id for r in api.runs(session["store"])] == [early.run_id, act.run_id, net.run_id]


def test_publish(session):
    out = session["out"]
    early, act, net = session["runs"]
    p1, p2, p3 = session["publications"]
    assert ok(out["publish early"]) == f"published {early.run_id} for 2012-07-01 as {p1.publication_id}\n"
    assert ok(out["publish all"]) == f"published {act.run_id} for 2012-07-02 as {p2.publication_id}\n"
    assert ok(out["publish all again"]) == (
        f"already published: {act.run_id} for 2012-07-02 ({p2.publication_id}); nothing new\n")
    assert ok(out["restate all"]) == (
        f"restated 2012-07-02: {p3.publication_id} publishes {net.run_id} beside {p2.publication_id}, "
        "which stays as published\n")
    assert (p3.restates, p2.restates, p1.restates) == (p2.publication_id, None, None)


def history_line(period: str, point: dict, algorithm: str, run_id: str, mark: str = " ",
                 note: str = "") -> str:
    return (f"  {period:<12} {point['score']:6.1f}  rank {point['rank']:>7,}  {mark}{algorithm:<12} "
            f"{run_id}  {note}").rstrip() + "\n"


def test_history(session):
    store = session["store"]
    early, act, net = session["runs"]
    proc = session["out"]["history"]
    assert proc.returncode == 0
    assert proc.stderr == "warning: account 'nope' has no published score\n"
    # the figures are the runs' own, read from the store
    e3604, a3604, n3604 = (score_of(store, r.run_id, "3604") for r in (early, act, net))
    a26486 = score_of(store, act.run_id, "26486")
    assert query(store, "SELECT count(*) FROM score WHERE run_id = ? AND account_id = '26486'",
                 [early.run_id]) == [(0,)]                     # 26486 has no score on 07-01
    assert proc.stdout == (
        "account 26486\n"
        + history_line("2012-07-02", a26486, "activity@1", act.run_id, note="superseded")
        + "account 3604\n"
        + history_line("2012-07-01", e3604, "activity@1", early.run_id)
        + history_line("2012-07-02", a3604, "activity@1", act.run_id, note="superseded"))
    assert ok(session["out"]["history restated"]) == (
        "account 3604\n"
        + history_line("2012-07-01", e3604, "activity@1", early.run_id)
        + history_line("2012-07-02", n3604, "network@2", net.run_id, mark="*", note="restatement"))
    # and api.scores agrees with the stored rows
    for run, point in ((early, e3604), (act, a3604), (net, n3604)):
        row = api.scores(store, run.run_id, accounts=["3604"]).row(0, named=True)
        assert (row["score"], row["rank"]) == (point["score"], point["rank"])


def test_verify(session):
    store = session["store"]
    # a batch, two snapshots, two shipped versions, three runs, three publications: each logged once
    records = sum(query(store, f"SELECT count(*) FROM {t}")[0][0]
                  for t in ("batch", "snapshot", "algorithm", "run", "publication"))
    (entries, head), = query(store, "SELECT count(*), arg_max(entry_hash, seq) FROM log")
    assert entries == records == 1 + 2 + 2 + 3 + 3
    assert ok(session["out"]["verify"]) == f"ok: {entries} log entries checked, head {head[:16]}\n"


# ---------------------------------------------------------------- errors

def test_an_audit_error_is_one_line_on_stderr_with_exit_2(session):
    store = session["store"]
    before = store.read_bytes()
    proc = audit(store, "publish", "r_000000000000", "--period", "2012-07-03")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == 'error: run "r_000000000000" not found; "audit runs" lists them\n'
    assert store.read_bytes() == before


def test_debug_shows_the_traceback(session):
    proc = audit(session["store"], "--debug", "publish", "r_000000000000", "--period", "2012-07-03")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("Traceback (most recent call last):\n")
    assert proc.stderr.endswith(
        'audit.errors.NotFound: run "r_000000000000" not found; "audit runs" lists them\n'
        'error: run "r_000000000000" not found; "audit runs" lists them\n')


def test_usage_errors_exit_2(session):
    code, out, err = here("--store", str(session["store"]), "history")
    assert (code, out) == (2, "")
    assert err.endswith("Error: give at least one ACCOUNT or --accounts-file\n")
    code, out, err = here("--store", str(session["store"]), "scores", session["runs"][1].run_id, "--top", "0")
    assert (code, out) == (2, "")
    assert "Invalid value for '--top'" in err


# ---------------------------------------------------------------- help

def test_help_has_examples():
    proc = run_audit("--help", timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("Usage: audit [OPTIONS] COMMAND [ARGS]...\n")
    assert "Example:\n      audit ingest data/higgs-activity_time.txt.gz\n" in proc.stdout


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append(prefix + (name,))
        if isinstance(command, click.Group):
            found += commands(command, prefix + (name,))
    return found


SUBCOMMANDS = commands(cli.cli)


def test_every_command_is_listed():
    assert {c[0] for c in SUBCOMMANDS} >= {
        "ingest", "snapshot", "snapshots", "runs", "algorithms", "register", "score", "scores", "publish",
        "publications", "history", "compare", "explain", "report", "verify", "demo"}
    assert {c[1] for c in SUBCOMMANDS if len(c) == 2} == {"transparency", "compare", "account", "snapshot"}


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_help_has_an_example(command):
    code, out, err = here(*command, "--help")
    assert (code, err) == (0, "")
    usage = out.splitlines()[0]
    assert usage.startswith(f"Usage: audit {' '.join(command)} [OPTIONS]"), usage
    example = out.index("Example:\n")
    assert out[example:].splitlines()[1].strip().startswith("audit ")


# ---------------------------------------------------------------- --json documents

@pytest.fixture
def store_copy(session, tmp_path) -> Path:
    target = tmp_path / "audit.duckdb"
    shutil.copy(session["store"], target)
    return target


def json_of(*args: str) -> object:
    code, out, err = here(*args, "--json")
    assert (code, err) == (0, ""), err
    doc = json.loads(out)
    assert out == json.dumps(doc, sort_keys=True, indent=2) + "\n"          # one document, keys sorted
    return doc


def test_json_documents_of_the_listing_and_reading_commands(session, store_copy):
    s = ("--store", str(store_copy))
    early, act, net = session["runs"]
    n = session["counts"]
    assert json_of(*s, "ingest", str(session["csv"])).items() >= {
        "batch_id": BATCH, "rows": n["rows"], "accounts": n["accounts"], "new": False}.items()
    snap = json_of(*s, "snapshot", "--as-of", "2012-07-02")
    assert {"snapshot_id", "as_of", "interactions", "accounts"} <= set(snap)
    assert (snap["snapshot_id"], snap["as_of"], snap["interactions"], snap["accounts"], snap["new"]) == (
        ALL, "2012-07-03T00:00:00+00:00", n["rows"], n["accounts"], False)
    assert [s_["snapshot_id"] for s_ in json_of(*s, "snapshots")] == [EARLY, ALL]
    assert [r["run_id"] for r in json_of(*s, "runs")] == [early.run_id, act.run_id, net.run_id]
    algorithms = json_of(*s, "algorithms")
    # the two that scored, and every other shipped version, not yet registered in this store
    from audit.records.algorithms import SHIPPED
    assert [(f'{a["name"]}@{a["version"]}', a["registered"]) for a in algorithms] == sorted(
        (label, label in ("activity@1", "network@2")) for label in SHIPPED)
    assert all(a["algorithm_id"].startswith("a_") for a in algorithms)
    run = json_of(*s, "score", "latest", "network@2")
    assert {k: run[k] for k in ("run_id", "snapshot_id", "algorithm", "accounts", "new")} == {
        "run_id": net.run_id, "snapshot_id": ALL, "algorithm": "network@2", "accounts": n["accounts"], "new": False}
    scores = json_of(*s, "scores", act.run_id, "--top", "3")
    assert all({"account_id", "score", "raw", "rank"} <= set(r) for r in scores)
    best = run_scores(store_copy, act.run_id).sort(["score", "account_id"], descending=[True, False]).head(3)
    assert [(r["account_id"], r["score"], r["raw"], r["rank"]) for r in scores] == list(
        best.select("account_id", "score", "raw", "rank").iter_rows())
    history = json_of(*s, "history", "3604")
    assert [(h["period"], h["run_id"], h["algorithm"], h["score"], h["restated"]) for h in history] == [
        ("2012-07-01", early.run_id, "activity@1", score_of(store_copy, early.run_id, "3604")["score"], False),
        ("2012-07-02", act.run_id, "activity@1", score_of(store_copy, act.run_id, "3604")["score"], True)]
    assert all(set(h) >= {"period", "run_id", "algorithm", "score", "published_at", "restated"} for h in history)
    verify = json_of(*s, "verify")
    (entries, head), = query(store_copy, "SELECT count(*), arg_max(entry_hash, seq) FROM log")
    assert {k: verify[k] for k in ("ok", "entries", "problems", "head", "reran")} == {
        "ok": True, "entries": entries, "problems": [], "head": head, "reran": 0}
    publications = json_of(*s, "publications")
    assert [p["publication_id"] for p in publications] == [p.publication_id for p in session["publications"]]


def test_json_documents_of_the_writing_commands(session, store_copy, tmp_path):
    s = ("--store", str(store_copy))
    early, act, net = session["runs"]
    algorithm = tmp_path / "indegree.py"
    shutil.copy(INDEGREE, algorithm)
    registered = json_of(*s, "register", str(algorithm))
    assert {k: registered[k] for k in ("name", "version", "new")} == {"name": "indegree", "version": 1, "new": True}
    assert registered["algorithm_id"] == api.get_algorithm(store_copy, "indegree@1").algorithm_id
    run = json_of(*s, "score", EARLY, "indegree@1")
    assert {k: run[k] for k in ("snapshot_id", "algorithm", "accounts", "new")} == {
        "snapshot_id": EARLY, "algorithm": "indegree@1", "accounts": session["counts"]["early_accounts"],
        "new": True}
    pub = json_of(*s, "publish", run["run_id"], "--period", "2012-07-01")
    assert {k: pub[k] for k in ("run_id", "period", "restates", "new")} == {
        "run_id": run["run_id"], "period": "2012-07-01", "restates": session["publications"][0].publication_id,
        "new": True}
    assert pub["publication_id"] == api.publications(store_copy)[-1].publication_id


def test_json_documents_of_compare_and_explain(session, store_copy):
    s = ("--store", str(store_copy))
    early, act, net = session["runs"]
    comparison = json_of(*s, "compare", act.run_id, net.run_id)
    assert {"spearman", "kendall_tau_b", "rbo", "top_k_overlap", "bands", "segments", "movers"} <= set(comparison)
    both = stored_pair(store_copy, act.run_id, net.run_id)
    assert comparison["spearman"] == pytest.approx(
        scipy.stats.spearmanr(both["baseline"], both["candidate"]).statistic, abs=1e-12)
    assert comparison["kendall_tau_b"] == pytest.approx(
        scipy.stats.kendalltau(both["baseline"], both["candidate"]).statistic, abs=1e-12)
    explanation = json_of(*s, "explain", "3604", "--from", act.run_id, "--to", net.run_id)
    assert {"total", "parts", "components", "reasons"} <= set(explanation)
    assert {"own_activity", "population", "algorithm"} <= set(explanation["parts"])
    assert explanation["total"] == pytest.approx(sum(explanation["parts"].values()), abs=1e-9)
    assert explanation["total"] == pytest.approx(
        score_of(store_copy, net.run_id, "3604")["score"] - score_of(store_copy, act.run_id, "3604")["score"],
        abs=1e-9)
    assert all({"code", "text", "points"} <= set(r) for r in explanation["reasons"])


# ---------------------------------------------------------------- compare: which side is which

def stored_pair(store: Path, baseline: str, candidate: str) -> pl.DataFrame:
    """Accounts scored in both runs with their two stored scores, read with SQL."""
    return read_frame(store, """
        SELECT b.account_id, b.score AS baseline, c.score AS candidate
        FROM score b JOIN score c USING (account_id)
        WHERE b.run_id = ? AND c.run_id = ? ORDER BY b.account_id""", [baseline, candidate])


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_compare_keeps_baseline_and_candidate_in_the_order_given(direction, session):
    """`compare A B`: A is the baseline, B the candidate, and every delta is B - A. The early run
    (a 3-hour window) and the run of the whole file cover different accounts, so a swap shows in
    the run ids, the coverage and the sign of every delta."""
    early, act, _ = session["runs"]
    a, b = (early.run_id, act.run_id) if direction == "forward" else (act.run_id, early.run_id)
    store = session["store"]
    doc = json_of("--store", str(store), "compare", a, b)
    assert (doc["baseline"]["run_id"], doc["candidate"]["run_id"]) == (a, b)
    snapshot = {early.run_id: EARLY, act.run_id: ALL}
    assert (doc["baseline"]["snapshot_id"], doc["candidate"]["snapshot_id"]) == (snapshot[a], snapshot[b])

    counts = {r: query(store, "SELECT count(*) FROM score WHERE run_id = ?", [r])[0][0] for r in (a, b)}
    pair = stored_pair(store, a, b)
    assert doc["coverage"] == {"both": pair.height, "only_baseline": counts[a] - pair.height,
                               "only_candidate": counts[b] - pair.height}
    assert counts[a] != counts[b]                         # a swap cannot hide in the coverage

    delta = (pair["candidate"] - pair["baseline"]).to_numpy()
    assert abs(delta.mean()) > 1.0                        # nor in the mean
    assert doc["deltas"]["accounts"] == pair.height
    assert doc["deltas"]["mean"] == pytest.approx(delta.mean(), abs=1e-9)
    assert doc["deltas"]["median"] == pytest.approx(float(np.median(delta)), abs=1e-9)
    assert doc["deltas"]["changed"] == int((delta != 0).sum())
    assert doc["deltas"]["up_5"] == pytest.approx((delta > 5).mean(), abs=1e-12)
    assert doc["deltas"]["down_5"] == pytest.approx((delta < -5).mean(), abs=1e-12)
    assert doc["spearman"] == pytest.approx(
        scipy.stats.spearmanr(pair["baseline"], pair["candidate"]).statistic, abs=1e-12)
    assert doc["kendall_tau_b"] == pytest.approx(
        scipy.stats.kendalltau(pair["baseline"], pair["candidate"]).statistic, abs=1e-12)
    # the text says the same, baseline first
    code, text, err = here("--store", str(store), "compare", a, b)
    assert (code, err) == (0, "")
    lines = text.splitlines()
    assert lines[0].startswith(f"baseline  {a}  ") and lines[1].startswith(f"candidate {b}  ")
    assert f"mean {delta.mean():+.2f}," in text


# ---------------------------------------------------------------- reports, verify --rerun and the demo

def report(store: Path, *args: str) -> tuple[dict, bytes]:
    """`audit report ARGS --json`: the JSON it prints and the bytes of the file it wrote."""
    doc = json_of("--store", str(store), "report", *args)
    return doc, Path(doc["path"]).read_bytes()


def test_reports_are_written_and_rebuilt_byte_identical(session, store_copy, tmp_path):
    early, act, net = session["runs"]
    cases = {"transparency": ("transparency",), "compare": ("compare", act.run_id, net.run_id),
             "account": ("account", "3604")}
    # the account statement explains 3604's latest change (activity@1 on 07-01 -> network@2 on 07-02),
    # storing the counterfactual runs it needs: build it first, so the records are final
    first = {}
    for name in ("account", "compare", "transparency"):
        out = tmp_path / f"{name}-1.html"
        doc, data = report(store_copy, *cases[name], "--out", str(out))
        assert doc == {"path": str(out), "bytes": len(data)} and out.stat().st_size == len(data) > 10_000
        html = data.decode("utf-8")
        assert html.lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
        first[name] = data
    for name, args in cases.items():
        again = tmp_path / f"{name}-2.html"
        assert report(store_copy, *args, "--out", str(again))[1] == first[name], name
    # what the pages show is the store's: the transparency page names the log head, the comparison
    # both runs, the account statement the account and the counterfactual run its explanation stored
    (head,), = query(store_copy, "SELECT arg_max(entry_hash, seq) FROM log")
    assert head.encode() in first["transparency"]
    assert act.run_id.encode() in first["compare"] and net.run_id.encode() in first["compare"]
    counterfactual = [r for (r,) in query(store_copy, "SELECT run_id FROM run WHERE counterfactual")]
    assert counterfactual and all(r.encode() in first["account"] for r in counterfactual)
    assert b"3604" in first["account"]
    # the text form names the file and its size
    out = tmp_path / "compare-3.html"
    code, text, err = here("--store", str(store_copy), "report", "compare", act.run_id, net.run_id, "--out", str(out))
    assert (code, err, text) == (0, "", f"wrote {out} ({len(first['compare']):,} bytes)\n")


def test_verify_rerun_re_executes_every_run(session, store_copy):
    s = ("--store", str(store_copy))
    early, act, net = session["runs"]
    # explaining 07-01 activity@1 -> 07-02 network@2 stores the counterfactual run network@2 on 07-01
    json_of(*s, "explain", "3604", "--from", early.run_id, "--to", net.run_id)
    (runs, counterfactual), = query(store_copy, "SELECT count(*), count(*) FILTER (WHERE counterfactual) FROM run")
    assert (runs, counterfactual) == (len(session["runs"]) + 1, 1)
    (entries, head), = query(store_copy, "SELECT count(*), arg_max(entry_hash, seq) FROM log")
    doc = json_of(*s, "verify", "--rerun")
    assert doc == {"ok": True, "entries": entries, "head": head, "problems": [], "reran": runs, "notes": []}
    code, out, err = here(*s, "verify", "--rerun")
    assert (code, err) == (0, "")
    assert out == f"ok: {entries:,} log entries checked, {runs} run(s) re-executed, head {head[:16]}\n"


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """`audit demo` from an empty store: the whole job on the bundled data, its JSON against the
    store, and its reports rebuilt by `audit report` byte for byte. (The transparency report is
    rebuilt byte for byte on the small store above and in test_reports; that the demo reuses what
    is stored is checked by test_reports' demo fixture, which runs it over the session store.)"""
    store, out = tmp_path / "out" / "demo.duckdb", tmp_path / "out"      # as `make demo` has it
    code, text, err = here("--store", str(store), "demo", "--out", str(out), "--json")
    assert code == 0, err
    doc = json.loads(text)
    assert text == json.dumps(doc, sort_keys=True, indent=2) + "\n"
    assert doc["store"] == str(store)
    # 7 daily snapshots, each scored by both versions, as the store holds them
    # the daily snapshots (the gaming audit adds one derived from the last, leaving its groups out)
    snapshots = [r[0] for r in query(store, "SELECT snapshot_id FROM snapshot WHERE parent_id IS NULL ORDER BY as_of")]
    assert doc["snapshots"] == snapshots and len(snapshots) == 7
    for algorithm, runs in doc["runs"].items():
        name, version = algorithm.split("@")
        assert runs == [r[0] for r in query(store, """
            SELECT r.run_id FROM run r JOIN snapshot s USING (snapshot_id) JOIN algorithm a USING (algorithm_id)
            WHERE a.name = ? AND a.version = ? AND NOT r.counterfactual ORDER BY s.as_of""", [name, int(version)])]
    assert sorted(doc["runs"]) == sorted([BASELINE, CANDIDATE])
    assert query(store, "SELECT count(*), count(restates) FROM publication") == [(14, 7)]
    # the account is the biggest drop from activity@1 on 07-06 to the release on 07-07 (ties: smallest id)
    pair = stored_pair(store, doc["runs"][BASELINE][-2], doc["runs"][CANDIDATE][-1])
    drop = pair.with_columns((pl.col("candidate") - pl.col("baseline")).alias("d")).sort(["d", "account_id"])
    assert doc["account"] == drop["account_id"][0]
    # the reports it lists exist
    assert doc["reports"] == {"transparency": str(out / "transparency.html"), "compare": str(out / "compare.html"),
                              "account": str(out / f"account-{doc['account']}.html")}
    written = {name: Path(path).read_bytes() for name, path in doc["reports"].items()}
    for name, data in written.items():
        assert len(data) > 10_000 and data.lower().startswith(b"<!doctype html>"), name
    assert doc["account"].encode() in written["account"]
    (head,), = query(store, "SELECT arg_max(entry_hash, seq) FROM log")
    assert head.encode() in written["transparency"]
    rebuilt = {"compare": ("compare", doc["runs"][BASELINE][-1], doc["runs"][CANDIDATE][-1]),
               "account": ("account", doc["account"])}
    for name, args in rebuilt.items():
        assert report(store, *args, "--out", str(tmp_path / f"{name}.html"))[1] == written[name], name
    assert query(store, "SELECT arg_max(entry_hash, seq) FROM log") == [(head,)]       # nothing new stored
