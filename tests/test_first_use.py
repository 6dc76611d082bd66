"""The rough edges a new user meets, each with its exact message, on small real files cut from the
bundled Higgs data."""
from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from audit import api, cli
from reports import svg
from reports.render import render_transparency

HIGGS = Path(__file__).resolve().parent.parent / "data" / "higgs-activity_time.txt.gz"
KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def higgs_csv(n: int) -> str:
    """The first N Higgs interactions as a CSV with the documented header."""
    lines = ["source,target,kind,ts"]
    with gzip.open(HIGGS, "rt") as fh:
        for _, line in zip(range(n), fh):
            a, b, t, k = line.split()
            lines.append(f"{a},{b},{KINDS[k]},{t}")
    return "\n".join(lines) + "\n"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        cli.main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def test_store_before_or_after_the_command(tmp_path, capsys):
    store, src = tmp_path / "s.duckdb", tmp_path / "mine.csv"
    src.write_text(higgs_csv(20))
    assert run(capsys, "ingest", str(src), "--store", str(store))[0] == 0
    before = run(capsys, "--store", str(store), "snapshots", "--json")
    after = run(capsys, "snapshots", "--json", f"--store={store}")
    assert before == after and before[0] == 0


def test_a_store_in_a_missing_folder_is_refused_and_nothing_is_created(tmp_path, capsys):
    src, missing = tmp_path / "mine.csv", tmp_path / "no" / "such"
    src.write_text(higgs_csv(5))
    code, out, err = run(capsys, "--store", str(missing / "x.duckdb"), "ingest", str(src))
    assert code == 2 and out == ""
    assert err == (f'error: store "{missing / "x.duckdb"}": the folder "{missing}" does not exist; create it first '
                   "or pass another --store\n")
    assert not (tmp_path / "no").exists()


def test_a_report_into_a_missing_folder_is_refused_and_nothing_is_created(tmp_path, capsys):
    store, src = tmp_path / "s.duckdb", tmp_path / "mine.csv"
    src.write_text(higgs_csv(30))
    api.ingest(store, src, now=NOW)
    snap = api.snapshot(store, as_of="2012-07-02", now=NOW + timedelta(seconds=1)).snapshot_id
    r = api.score(store, snap, "activity@1", now=NOW + timedelta(seconds=2)).run_id
    target = tmp_path / "nope" / "compare.html"
    code, _, err = run(capsys, "--store", str(store), "report", "compare", r, r, "--out", str(target))
    assert code == 2
    assert err == (f'error: --out {target}: the folder "{target.parent}" does not exist; create it first or '
                   "write elsewhere\n")
    assert not target.parent.exists()


def test_blank_trailing_lines_are_not_rows(tmp_path):
    src = tmp_path / "blank.csv"
    src.write_text(higgs_csv(4) + "\n\n")
    assert api.ingest(tmp_path / "s.duckdb", src, now=NOW).rows == 4


def test_a_wrong_header_names_the_columns_it_needs(tmp_path, capsys):
    src = tmp_path / "wrong.csv"
    src.write_text("from,to,type,time\n223789,213163,mention,1341100972\n")
    code, _, err = run(capsys, "--store", str(tmp_path / "s.duckdb"), "ingest", str(src))
    assert code == 2
    assert err == (f'error: {src}: cannot tell the format from the first line "from,to,type,time": a CSV needs a '
                   "header naming source, target, kind, ts (interactions) or account_id (accounts); for another "
                   "layout pass --format (csv, parquet, snap-higgs, uvt, signed-csv)\n")
    assert not (tmp_path / "s.duckdb").exists()


def test_a_repeat_ingest_names_both_files_and_counts_in_the_singular(tmp_path, capsys):
    store, mine, copy = tmp_path / "s.duckdb", tmp_path / "mine.csv", tmp_path / "copy.csv"
    mine.write_text(higgs_csv(1))
    copy.write_text(higgs_csv(1))
    code, out, _ = run(capsys, "--store", str(store), "ingest", str(mine))
    batch = json.loads(run(capsys, "--store", str(store), "ingest", str(mine), "--json")[1])["batch_id"]
    assert code == 0 and out == f"stored batch {batch} (csv): 1 interaction among 2 accounts\n"
    assert run(capsys, "--store", str(store), "ingest", str(mine))[1] == \
        f"already stored as batch {batch}: nothing new (1 interaction from {mine})\n"
    assert run(capsys, "--store", str(store), "ingest", str(copy))[1] == \
        f"{copy} holds what batch {batch} stored from {mine}: nothing new (1 interaction)\n"


def test_tooltips_count_in_the_singular():
    assert svg.counted(1, "account") == ((1, "count"), " account")
    assert svg.counted(2, "account") == ((2, "count"), " accounts")


def test_history_tells_superseded_scores_from_restatements_and_as_of_is_explained(tmp_path, capsys):
    store, src = tmp_path / "s.duckdb", tmp_path / "mine.csv"
    src.write_text(higgs_csv(300))
    clock = iter(NOW + timedelta(seconds=i) for i in range(100))
    api.ingest(store, src, now=next(clock))
    snap = api.snapshot(store, as_of="2012-07-02", now=next(clock)).snapshot_id
    a, n = (api.score(store, snap, v, now=next(clock)).run_id for v in ("activity@1", "network@3"))
    api.publish(store, a, period="2012-07-01", now=next(clock))
    api.publish(store, n, period="2012-07-01", now=next(clock))
    account = api.scores(store, a, top=1)["account_id"][0]
    published = run(capsys, "--store", str(store), "history", account)[1].splitlines()
    restated = run(capsys, "--store", str(store), "history", account, "--restated")[1].splitlines()
    assert published[1].endswith(f"{a}  superseded") and restated[1].endswith(f"{n}  restatement")
    doc = json.loads(run(capsys, "--store", str(store), "history", account, "--restated", "--json")[1])
    assert [(r["restated"], r["superseded"], r["restatement"]) for r in doc] == [(True, False, True)]
    helptext = run(capsys, "history", "--help")[1]
    assert "a publication instant (when scores were published, see `audit publications`), not the date of the data" \
        in " ".join(helptext.split())


def test_a_run_against_itself_overlaps_fully_however_few_its_accounts(tmp_path, capsys):
    store, src = tmp_path / "s.duckdb", tmp_path / "mine.csv"
    src.write_text(higgs_csv(3))
    api.ingest(store, src, now=NOW)
    snap = api.snapshot(store, as_of="2012-07-02", now=NOW + timedelta(seconds=1))
    r = api.score(store, snap.snapshot_id, "activity@1", now=NOW + timedelta(seconds=2)).run_id
    c = api.compare(store, r, r)
    n = snap.accounts
    assert n < 10
    assert c.top_k_overlap == {10: 1.0, 100: 1.0, 1000: 1.0} and c.top_k_accounts == {10: n, 100: n, 1000: n}
    out = run(capsys, "--store", str(store), "compare", r, r)[1]
    assert (f"top-k overlap: k=10 1.000 (of {n}: fewer than 10 accounts), k=100 1.000 (of {n}: fewer than 100 "
            f"accounts), k=1,000 1.000 (of {n}: fewer than 1,000 accounts)") in out


def test_algorithms_lists_the_shipped_versions_before_their_first_run(tmp_path, capsys):
    store, src = tmp_path / "s.duckdb", tmp_path / "mine.csv"
    src.write_text(higgs_csv(3))
    api.ingest(store, src, now=NOW)
    listed = json.loads(run(capsys, "--store", str(store), "algorithms", "--json")[1])
    from audit.records.algorithms import SHIPPED
    assert [(f'{a["name"]}@{a["version"]}', a["registered"]) for a in listed] == [(label, False) for label in sorted(SHIPPED)]
    assert sorted(SHIPPED) == ["activity@1", "activity@2", "network@2", "network@3", "topics@1"]
    snap = api.snapshot(store, as_of="2012-07-02", now=NOW + timedelta(seconds=1)).snapshot_id
    run_ = api.score(store, snap, "network@3", now=NOW + timedelta(seconds=2))
    again = {a["name"] + "@" + str(a["version"]): a for a in
             json.loads(run(capsys, "--store", str(store), "algorithms", "--json")[1])}
    assert again["network@3"]["registered"] and again["network@3"]["algorithm_id"] == run_.algorithm_id
    assert again["network@3"]["algorithm_id"] == {a["name"] + "@" + str(a["version"]): a for a in listed}[
        "network@3"]["algorithm_id"]
    text = run(capsys, "--store", str(store), "algorithms")[1]
    assert "activity@1" in text and "(shipped; registered in this store when it first scores)" in text


def test_a_public_report_names_files_without_the_operators_folders(tmp_path):
    store, src = tmp_path / "s.duckdb", tmp_path / "private-folder" / "mine.csv"
    src.parent.mkdir()
    src.write_text(higgs_csv(40))
    api.ingest(store, src, now=NOW)
    snap = api.snapshot(store, as_of="2012-07-02", now=NOW + timedelta(seconds=1)).snapshot_id
    r = api.score(store, snap, "activity@1", now=NOW + timedelta(seconds=2)).run_id
    api.publish(store, r, period="2012-07-01", now=NOW + timedelta(seconds=3))
    html = render_transparency(api.transparency(store))
    assert "mine.csv" in html and str(tmp_path) not in html and "private-folder" not in html


def test_progress_steps_come_in_the_order_they_run(tmp_path):
    src = tmp_path / "mine.csv"
    src.write_text(higgs_csv(50))
    seen: list[str] = []
    api.ingest(tmp_path / "s.duckdb", src, now=NOW, step=seen.append)
    assert seen == ["reading mine.csv", "validating 50 rows", "hashing", "storing"]


# ---------------------------------------------------------------- handles, on the QC Stack Exchange data

QC = Path(__file__).resolve().parents[2] / "shared" / "data" / "se-quantumcomputing"


@pytest.fixture(scope="module")
def qc(tmp_path_factory):
    if not (QC / "accounts.csv").is_file():
        pytest.skip(f"the QC Stack Exchange data is not beside the checkout ({QC})")
    store = tmp_path_factory.mktemp("qc") / "s.duckdb"
    clock = iter(NOW + timedelta(seconds=i) for i in range(100))
    api.ingest(store, QC / "interactions.csv", now=next(clock))
    api.ingest(store, QC / "accounts.csv", now=next(clock))
    runs = []
    for day in ("2018-07-01", "2018-08-01"):
        snap = api.snapshot(store, as_of=day, window="30d", label=day, now=next(clock)).snapshot_id
        runs.append(api.score(store, snap, "network@3", now=next(clock)).run_id)
        api.publish(store, runs[-1], period=day[:7], now=next(clock))
    handles = {r[0]: r[1] for r in query(store, "SELECT account_id, handle FROM account")}
    return {"store": store, "runs": runs, "handles": handles}


def query(store: Path, sql: str, params: list | None = None) -> list[tuple]:
    import duckdb
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def unique_handle(qc, rank: int = 1) -> tuple[str, str]:
    """(account id, handle) of the rank-th best account of the last run whose handle is unique."""
    counts = {}
    for h in qc["handles"].values():
        counts[h] = counts.get(h, 0) + 1
    best = api.scores(qc["store"], qc["runs"][-1], top=50)
    ids = [a for a in best["account_id"].to_list() if counts.get(qc["handles"].get(a), 0) == 1]
    return ids[rank - 1], qc["handles"][ids[rank - 1]]


def test_every_text_output_names_accounts_by_handle_and_id(qc, capsys):
    store, (r1, r2) = str(qc["store"]), qc["runs"]
    account, handle = unique_handle(qc)
    code, out, _ = run(capsys, "--store", store, "scores", r2, "--account", f"@{handle}")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["account_id", "handle", "score"]
    assert out.splitlines()[1].split()[:2] == [account, handle.split()[0]]
    assert run(capsys, "--store", store, "history", f"@{handle}")[1].splitlines()[0] == f"account {handle} ({account})"
    text = run(capsys, "--store", store, "explain", f"@{handle}", "--from", r1, "--to", r2)[1]
    assert text.splitlines()[0].startswith(f"account {handle} ({account}): ")
    engagers = text[text.index("\nengagers ("):].splitlines()[3:]
    for line in engagers:                       # each engager row names the engager by handle (id)
        engager = line.split(")")[0].rsplit("(", 1)[1]
        assert line.strip().startswith(f"{qc['handles'][engager]} ({engager})")
    movers = run(capsys, "--store", store, "compare", r1, r2, "--top", "3")[1]
    riser = movers[movers.index("top risers:"):].splitlines()[2].strip()
    engager = riser.split(")")[0].rsplit("(", 1)[1]
    assert riser.startswith(f"{qc['handles'][engager]} ({engager})")


def test_reports_show_handles_escaped(qc, tmp_path, capsys):
    store = str(qc["store"])
    quoted = {a: h for a, h in qc["handles"].items() if "'" in h and list(qc["handles"].values()).count(h) == 1}
    scored = {r[0] for r in query(qc["store"], "SELECT account_id FROM score WHERE run_id = ?", [qc["runs"][-1]])}
    account = sorted(a for a in quoted if a in scored)[0]
    out = tmp_path / "a.html"
    assert run(capsys, "--store", store, "report", "account", account, "--out", str(out))[0] == 0
    html = out.read_text()
    escaped = quoted[account].replace("'", "&#39;")
    assert f"Score statement: account {escaped} ({account})" in html and quoted[account] not in html


def test_a_handle_several_accounts_held_is_refused_naming_them(qc, capsys):
    counts: dict[str, list[str]] = {}
    for a, h in qc["handles"].items():
        counts.setdefault(h, []).append(a)
    handle, holders = sorted((h, ids) for h, ids in counts.items() if len(ids) > 2)[0]
    code, out, err = run(capsys, "--store", str(qc["store"]), "history", f"@{handle}")
    assert code == 2 and out == ""
    assert err.startswith(f'error: handle "{handle}" was held by {len(holders)} accounts: ')
    assert all(f"{a} (first seen " in err for a in holders) and err.rstrip().endswith("give the account id")


def test_the_readme_commands_table_lists_every_command_with_its_options():
    """Each command of `audit --help` has a row in the README's Commands table, and every option a
    row shows exists on that command (a renamed or dropped option fails here)."""
    import re

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `audit ")]
    shown: dict[str, set[str]] = {}
    for row in rows:
        cell = row.split(" | ")[0]
        for usage in cell.split("`")[1::2]:
            words = usage.split()
            if words[0] == "audit" and len(words) > 1:
                names = words[1].replace("\\|", "|").split("|")
                for name in names:
                    shown.setdefault(name, set()).update(re.findall(r"--[a-z][a-z-]*", usage))
    group = cli.cli
    assert sorted(shown) == sorted(group.commands)
    for name, options in shown.items():
        command = group.commands[name]
        known = {o for p in command.params for o in p.opts}
        if hasattr(command, "commands"):                       # a group: its subcommands' options
            known |= {o for sub in command.commands.values() for p in sub.params for o in p.opts}
        assert options <= known, (name, options - known)
