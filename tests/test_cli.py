"""The command line, word for word, on a small real store: the first 2,000 Higgs interactions
written as a CSV. The first command of each kind runs as an `audit` subprocess (the installed
entry point); repeats, the JSON documents and the help of every subcommand go through the same
entry point (`audit.cli.main` and its one error handler) in-process, which prints the same bytes
about 1.5 s quicker per command.

Batch and snapshot ids are content hashes of the data, so they are written out here. Run ids
and result hashes also hash the shipped algorithms' source, and publication ids hash the CLI's
clock, so those (and the seconds a run took) are read from the store, not written out.
"""
from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import click
import polars as pl
import pytest

from audit import api, cli

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / ".venv" / "bin" / "audit"
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
INDEGREE = ROOT / "tests" / "algorithms" / "indegree_v1.py"
KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}
BATCH = "b_73b32ca25bbc"
EARLY, ALL = "s_30377424e766", "s_36d4d2c02c91"


def higgs_csv(path: Path, n: int = 2000) -> Path:
    """The first N lines of the Higgs activity file as an interactions CSV (ts in epoch seconds)."""
    with gzip.open(HIGGS, "rt") as fh:
        rows = [next(fh).split() for _ in range(n)]
    path.write_text("source,target,kind,ts\n" + "".join(f"{a},{b},{KINDS[k]},{t}\n" for a, b, t, k in rows))
    return path


def audit(store: Path, *args: str) -> subprocess.CompletedProcess:
    """`audit --store STORE ARGS` as a subprocess: the installed entry point."""
    return subprocess.run([str(AUDIT), "--store", str(store), *args], capture_output=True, text=True,
                          cwd=store.parent, timeout=300)


def audit_here(store: Path, *args: str) -> subprocess.CompletedProcess:
    """The same command in this process (about 1.5 s quicker: no interpreter start, no imports)."""
    code, out, err = here("--store", str(store), *args)
    return subprocess.CompletedProcess(["audit", "--store", str(store), *args], code, out, err)


def here(*args: str) -> tuple[int, str, str]:
    """`audit ARGS` in this process through the real entry point (`cli.main` and its error handler)."""
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["audit", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code or 0
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def ok(proc: subprocess.CompletedProcess) -> str:
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    return proc.stdout


def seconds_masked(text: str) -> str:
    return re.sub(r" in \d+\.\d\ds ", " in S ", text)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    """The scenario, run once: every command's output, in order. The first of each kind of command
    runs as a subprocess, repeats run in-process."""
    folder = tmp_path_factory.mktemp("cli")
    csv = higgs_csv(folder / "higgs-2000.csv")
    store = folder / "audit.duckdb"
    out: dict[str, subprocess.CompletedProcess] = {}
    out["ingest"] = audit(store, "ingest", str(csv))
    out["ingest again"] = audit_here(store, "ingest", str(csv))
    out["snapshot early"] = audit(store, "snapshot", "--as-of", "2012-07-01T03:00:00Z", "--window", "3h",
                                  "--label", "early")
    out["snapshot all"] = audit_here(store, "snapshot", "--as-of", "2012-07-02", "--label", "all")
    out["snapshot early again"] = audit_here(store, "snapshot", "--as-of", "2012-07-01T03:00:00Z", "--window", "3h")
    out["snapshots"] = audit_here(store, "snapshots")
    out["score early"] = audit_here(store, "score", EARLY[:6], "activity@1")
    out["score all"] = audit(store, "score", "latest", "activity@1")
    out["score all again"] = audit_here(store, "score", "latest", "activity@1")
    out["score all network"] = audit_here(store, "score", "latest", "network@2")
    runs = {(r.snapshot_id, r.algorithm): r for r in api.runs(store)}
    early, act, net = runs[(EARLY, "activity@1")], runs[(ALL, "activity@1")], runs[(ALL, "network@2")]
    out["publish early"] = audit_here(store, "publish", early.run_id, "--period", "2012-07-01")
    out["publish all"] = audit_here(store, "publish", act.run_id[:8], "--period", "2012-07-02")
    out["publish all again"] = audit_here(store, "publish", act.run_id, "--period", "2012-07-02")
    out["restate all"] = audit(store, "publish", net.run_id, "--period", "2012-07-02")
    out["history"] = audit(store, "history", "3604", "26486", "nope")
    out["history restated"] = audit_here(store, "history", "3604", "--restated")
    out["verify"] = audit(store, "verify")
    return {"folder": folder, "csv": csv, "store": store, "out": out, "runs": (early, act, net),
            "publications": api.publications(store)}


# ---------------------------------------------------------------- word for word

def test_ingest_and_again(session):
    frame = pl.read_csv(session["csv"], schema_overrides={"source": pl.String, "target": pl.String})
    accounts = pl.concat([frame["source"], frame["target"]]).n_unique()
    assert (frame.height, accounts) == (2000, 1615)
    assert ok(session["out"]["ingest"]) == f"stored batch {BATCH} (csv): 2,000 interactions among 1,615 accounts\n"
    assert ok(session["out"]["ingest again"]) == (
        f"already stored as batch {BATCH}: nothing new (2,000 interactions from {session['csv']})\n")


def test_snapshot_and_snapshots(session):
    out = session["out"]
    assert ok(out["snapshot early"]) == (
        f"created snapshot {EARLY} as of 2012-07-01T03:00:00+00:00 (3h window): 163 interactions, 165 accounts\n")
    assert ok(out["snapshot all"]) == (
        f"created snapshot {ALL} as of 2012-07-03T00:00:00+00:00: 2,000 interactions, 1,615 accounts\n")
    assert ok(out["snapshot early again"]) == (
        f"already exists: snapshot {EARLY} as of 2012-07-01T03:00:00+00:00 (3h window): "
        "163 interactions, 165 accounts\n")
    assert ok(out["snapshots"]) == (
        "snapshot        as of                      window interactions  accounts  label\n"
        f"{EARLY}  2012-07-01T03:00:00+00:00      3h          163       165  early\n"
        f"{ALL}  2012-07-03T00:00:00+00:00     all        2,000     1,615  all\n")
    # the window counts are what polars counts on the CSV
    frame = pl.read_csv(session["csv"], schema_overrides={"source": pl.String, "target": pl.String})
    as_of = 1341100800 + 3 * 3600                                        # 2012-07-01T03:00:00Z
    early = frame.filter(pl.col("ts").is_between(as_of - 3 * 3600, as_of, closed="left"))
    assert (early.height, pl.concat([early["source"], early["target"]]).n_unique()) == (163, 165)


def test_score(session):
    out = session["out"]
    early, act, net = session["runs"]

    def line(run, accounts: str, snapshot: str) -> str:
        return (f"run {run.run_id}: {accounts} accounts of {snapshot} scored with {run.algorithm} in S "
                f"(result {run.result_hash[:12]})\n")
    assert seconds_masked(ok(out["score early"])) == line(early, "165", EARLY)
    assert seconds_masked(ok(out["score all"])) == line(act, "1,615", ALL)
    assert seconds_masked(ok(out["score all again"])) == "already scored: " + line(act, "1,615", ALL)
    assert seconds_masked(ok(out["score all network"])) == line(net, "1,615", ALL)
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


def test_history(session):
    early, act, net = session["runs"]
    proc = session["out"]["history"]
    assert proc.returncode == 0
    assert proc.stderr == "warning: account 'nope' has no published score\n"
    assert proc.stdout == (
        "account 26486\n"
        f"  2012-07-02    100.0  rank       1   activity@1   {act.run_id}  restated\n"
        "account 3604\n"
        f"  2012-07-01     92.2  rank       2   activity@1   {early.run_id}\n"
        f"  2012-07-02    100.0  rank       1   activity@1   {act.run_id}  restated\n")
    assert ok(session["out"]["history restated"]) == (
        "account 3604\n"
        f"  2012-07-01     92.2  rank       2   activity@1   {early.run_id}\n"
        f"  2012-07-02     42.9  rank      12  *network@2    {net.run_id}  restated\n")
    # the figures are the runs' own
    shown = {(r, a): api.scores(session["store"], r, accounts=[a]).row(0, named=True)
             for r, a in ((early.run_id, "3604"), (act.run_id, "3604"), (net.run_id, "3604"))}
    assert [(round(v["score"], 1), v["rank"]) for v in shown.values()] == [(92.2, 2), (100.0, 1), (42.9, 12)]


def test_verify(session):
    # a batch, two snapshots, two shipped versions, three runs, three publications
    assert re.fullmatch(r"ok: 11 log entries checked, head [0-9a-f]{16}\n", ok(session["out"]["verify"]))


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
    proc = subprocess.run([str(AUDIT), "--help"], capture_output=True, text=True, timeout=120)
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
    # (in-process, click names the program after the interpreter's command line, not "audit")
    usage = out.splitlines()[0]
    assert usage.startswith("Usage: ") and usage.split(" [OPTIONS]")[0].endswith(" " + " ".join(command)), usage
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
    assert json_of(*s, "ingest", str(session["csv"])).items() >= {"batch_id": BATCH, "rows": 2000, "new": False}.items()
    snap = json_of(*s, "snapshot", "--as-of", "2012-07-02")
    assert {"snapshot_id", "as_of", "interactions", "accounts"} <= set(snap)
    assert (snap["snapshot_id"], snap["as_of"], snap["interactions"], snap["accounts"], snap["new"]) == (
        ALL, "2012-07-03T00:00:00+00:00", 2000, 1615, False)
    assert [s_["snapshot_id"] for s_ in json_of(*s, "snapshots")] == [EARLY, ALL]
    assert [r["run_id"] for r in json_of(*s, "runs")] == [early.run_id, act.run_id, net.run_id]
    algorithms = json_of(*s, "algorithms")
    assert [(a["name"], a["version"]) for a in algorithms] == [("activity", 1), ("network", 2)]
    assert all(a["algorithm_id"].startswith("a_") for a in algorithms)
    run = json_of(*s, "score", "latest", "network@2")
    assert {k: run[k] for k in ("run_id", "snapshot_id", "algorithm", "accounts", "new")} == {
        "run_id": net.run_id, "snapshot_id": ALL, "algorithm": "network@2", "accounts": 1615, "new": False}
    scores = json_of(*s, "scores", act.run_id, "--top", "3")
    assert all({"account_id", "score", "raw", "rank"} <= set(r) for r in scores)
    assert [r["rank"] for r in scores] == [1, 1, 1]
    history = json_of(*s, "history", "3604")
    assert [(h["period"], h["run_id"], h["algorithm"], h["score"], h["restated"]) for h in history] == [
        ("2012-07-01", early.run_id, "activity@1", pytest.approx(92.166, abs=1e-3), False),
        ("2012-07-02", act.run_id, "activity@1", 100.0, True)]
    assert all(set(h) >= {"period", "run_id", "algorithm", "score", "published_at", "restated"} for h in history)
    verify = json_of(*s, "verify")
    assert {k: verify[k] for k in ("ok", "entries", "problems")} == {"ok": True, "entries": 11, "problems": []}
    assert re.fullmatch(r"[0-9a-f]{64}", verify["head"])
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
        "snapshot_id": EARLY, "algorithm": "indegree@1", "accounts": 165, "new": True}
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
    explanation = json_of(*s, "explain", "3604", "--from", act.run_id, "--to", net.run_id)
    assert {"total", "parts", "components", "reasons"} <= set(explanation)
    assert {"own_activity", "population", "algorithm"} <= set(explanation["parts"])
    assert explanation["total"] == pytest.approx(sum(explanation["parts"].values()), abs=1e-9)
    assert all({"code", "text", "points"} <= set(r) for r in explanation["reasons"])
