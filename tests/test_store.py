"""The store: migrations, refusal of newer or busy stores, and the hash-chained log that makes raw
SQL tampering detectable and pinpointed by `verify`."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from audit import api
from audit.errors import AuditError, NotFound, SchemaTooNew, StoreBusy
from audit.store.schema import MIGRATION_TABLE, MIGRATIONS, SCHEMA_VERSION
from audit.store.db import GENESIS, entry_hash
from audit.store.recipes import logged
from conftest import audit_main, query, run_audit, store_state

ROOT = Path(__file__).resolve().parent.parent
HIGGS = ROOT / "data" / "higgs-activity_time.txt.gz"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
CHANGED = "(its content hash no longer matches the log)"
DETAIL = {"batch": ": stored content_hash/min_ts/max_ts disagree with the rows of {}",
          "snapshot": ": stored interactions/accounts/content_hash disagree with a recount of {}"}


def head_lines(path: Path, n: int) -> str:
    with gzip.open(path, "rt") as fh:
        return "".join(next(fh) for _ in range(n))


def tamper(store: Path, sql: str, params: list | None = None) -> None:
    """What an attacker (or a careless script) does: raw SQL on the store file."""
    con = duckdb.connect(str(store))
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute(sql, params or [])
    finally:
        con.close()


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`audit ARGS` in this process, through the real entry point and its one error handler."""
    from audit import cli
    monkeypatch.setattr(sys, "argv", ["audit", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    higgs = d / "higgs-3000.txt"
    higgs.write_text(head_lines(HIGGS, 3000))
    higgs_more = d / "higgs-3000-4000.txt"
    higgs_more.write_text(head_lines(HIGGS, 4000)[len(higgs.read_text()):])
    later = d / "higgs-4000-4300.txt"
    later.write_text(head_lines(HIGGS, 4300)[len(head_lines(HIGGS, 4000)):])
    return {"higgs": higgs, "more": higgs_more, "later": later}


@pytest.fixture(scope="module")
def template(tmp_path_factory, inputs) -> dict:
    """A store holding two real batches and two snapshots, with ids for the tamper cases."""
    store = tmp_path_factory.mktemp("template") / "audit.duckdb"
    higgs = api.ingest(store, inputs["higgs"], now=NOW)
    later = api.ingest(store, inputs["later"], now=NOW)
    early = api.snapshot(store, as_of="2012-07-01T00:30:00Z", window="1h", now=NOW)
    everything = api.snapshot(store, as_of="2012-07-08", now=NOW)
    return {"store": store, "higgs": higgs.batch_id, "later": later.batch_id,
            "early": early.snapshot_id, "all": everything.snapshot_id}


@pytest.fixture
def copy(tmp_path, template) -> Path:
    path = tmp_path / "audit.duckdb"
    shutil.copy(template["store"], path)
    return path


# ---------------------------------------------------------------- migrations

def test_migrations_are_recorded_once(tmp_path, inputs):
    store = tmp_path / "audit.duckdb"
    api.ingest(store, inputs["higgs"], now=NOW)
    expected = [(version, name) for version, name, _ in MIGRATIONS]
    assert query(store, "SELECT version, name FROM schema_migration ORDER BY version") == expected
    versions = [v for v, _ in expected]
    assert SCHEMA_VERSION == versions[-1] and versions == sorted(set(versions))
    tables = {r[0] for r in query(store, "SELECT table_name FROM information_schema.tables")}
    assert {"batch", "interaction", "account", "snapshot", "log", "schema_migration"} <= tables
    api.snapshot(store, as_of="2012-07-02", now=NOW)
    api.ingest(store, inputs["more"], now=NOW)
    assert query(store, "SELECT version, name FROM schema_migration ORDER BY version") == expected


def test_a_migration_numbered_below_one_applied_is_still_applied(tmp_path, monkeypatch):
    """Branches merge in any order: a store migrated without migration N (which arrived later) but
    with N + 1 gets N on its next write."""
    from audit.store import db
    store = tmp_path / "audit.duckdb"
    late = MIGRATIONS[-2]
    monkeypatch.setattr(db, "MIGRATIONS", [m for m in MIGRATIONS if m != late])
    with db.connect(store, write=True, create=True):
        pass
    assert late[0] not in {r[0] for r in query(store, "SELECT version FROM schema_migration")}
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    with pytest.raises(AuditError, match="run a writing command"):
        with db.connect(store):
            pass
    with db.connect(store, write=True):
        pass
    assert query(store, "SELECT version, name FROM schema_migration ORDER BY version") == [(v, n) for v, n, _ in MIGRATIONS]


def _stale_store(path: Path) -> None:
    """A store written by the first release: only migration 1 applied."""
    con = duckdb.connect(str(path))
    con.execute(MIGRATION_TABLE)
    con.execute(MIGRATIONS[0][2])
    con.execute("INSERT INTO schema_migration VALUES (?, ?)", [MIGRATIONS[0][0], MIGRATIONS[0][1]])
    con.close()


@pytest.mark.skipif(SCHEMA_VERSION < 2, reason="needs a second migration")
def test_stale_store_is_refused_by_readers(tmp_path, inputs):
    store = tmp_path / "audit.duckdb"
    _stale_store(store)
    before = store_state(store)
    with pytest.raises(AuditError) as exc:
        api.snapshots(store)
    assert str(exc.value) == (f'store "{store}" has schema version 1; run a writing command '
                              f"(e.g. audit snapshot) to migrate it to {SCHEMA_VERSION}")
    assert store_state(store) == before


@pytest.mark.skipif(SCHEMA_VERSION < 2, reason="needs a second migration")
def test_ingest_migrates_a_stale_store(tmp_path, inputs):
    store = tmp_path / "audit.duckdb"
    _stale_store(store)
    result = api.ingest(store, inputs["higgs"], now=NOW)
    assert result.new
    assert query(store, "SELECT max(version) FROM schema_migration") == [(SCHEMA_VERSION,)]


NEWER_COMMANDS = {
    "ingest new file": lambda s, i: api.ingest(s, i["more"], now=NOW),
    "ingest stored file": lambda s, i: api.ingest(s, i["higgs"], now=NOW),
    "snapshot": lambda s, i: api.snapshot(s, as_of="2012-07-03", window="7d", now=NOW),
    "snapshots": lambda s, i: api.snapshots(s),
    "latest": lambda s, i: api.get_snapshot(s, "latest"),
    "verify": lambda s, i: api.verify(s),
}


@pytest.mark.parametrize("command", list(NEWER_COMMANDS))
def test_newer_schema_is_refused(command, copy, inputs):
    tamper(copy, "INSERT INTO schema_migration VALUES (999, 'from a later audit')")
    before = store_state(copy)
    with pytest.raises(SchemaTooNew) as exc:
        NEWER_COMMANDS[command](copy, inputs)
    assert str(exc.value) == (f'store "{copy}" has schema version 999, newer than this audit '
                              f"(which knows up to {SCHEMA_VERSION}); upgrade audit to read it")
    assert store_state(copy) == before


@pytest.mark.parametrize("args", [("snapshots",), ("snapshot", "--as-of", "2012-07-03"), ("verify",)],
                         ids=" ".join)
def test_newer_schema_cli_exit_2(args, copy, inputs):
    tamper(copy, "INSERT INTO schema_migration VALUES (999, 'from a later audit')")
    before = store_state(copy)
    code, out, err = audit_main("--store", str(copy), *args)
    assert (code, out) == (2, "")
    assert err == (f'error: store "{copy}" has schema version 999, newer than this audit '
                   f"(which knows up to {SCHEMA_VERSION}); upgrade audit to read it\n")
    assert store_state(copy) == before


def test_readers_refuse_a_missing_store_and_do_not_create_it(tmp_path):
    store = tmp_path / "nowhere.duckdb"
    for read in (api.snapshots, api.verify, lambda s: api.get_snapshot(s, "latest")):
        with pytest.raises(NotFound) as exc:
            read(store)
        assert str(exc.value) == (f'no store at "{store}"; "audit ingest FILE" creates one '
                                  "(or pass --store / set AUDIT_STORE)")
    assert not store.exists()


def test_a_file_that_is_not_a_store_is_refused_untouched(tmp_path, inputs):
    store = tmp_path / "audit.duckdb"
    shutil.copy(HIGGS, store)
    for command in (lambda: api.verify(store), lambda: api.ingest(store, inputs["higgs"], now=NOW),
                    lambda: api.snapshot(store, as_of="2012-07-02", now=NOW)):
        with pytest.raises(AuditError) as exc:
            command()
        assert str(exc.value).startswith(f'cannot open store "{store}": ')
        assert "not a valid DuckDB database file" in str(exc.value)
    assert store.read_bytes() == HIGGS.read_bytes()


# ---------------------------------------------------------------- a busy store

HOLDER = ("import duckdb, sys, time\n"
          "con = duckdb.connect(sys.argv[1])\n"
          "con.execute('SELECT count(*) FROM log').fetchall()\n"
          "print('holding', flush=True)\n"
          "time.sleep(120)\n")


@pytest.fixture
def held(copy):
    """The store, with another process holding a write connection to it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "holding\n"
        yield copy
    finally:
        proc.kill()
        proc.wait()


BUSY = (' is busy: another audit process is using it; wait for it to finish and run the command again')


def test_busy_store_is_reported_not_crashed(held, inputs):
    before = store_state(held)
    for command in (lambda: api.ingest(held, inputs["more"], now=NOW),
                    lambda: api.snapshot(held, as_of="2012-07-03", now=NOW),
                    lambda: api.snapshots(held), lambda: api.verify(held)):
        with pytest.raises(StoreBusy) as exc:
            command()
        assert str(exc.value) == f'store "{held}"{BUSY}'
    assert store_state(held) == before


def test_busy_store_cli_exit_2_without_traceback(held, inputs):
    before = store_state(held)
    proc = run_audit("--store", str(held), "ingest", str(inputs["more"]), timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f'error: store "{held}"{BUSY}\n'
    assert store_state(held) == before


def test_busy_store_is_usable_once_released(copy, inputs):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "holding\n"
        with pytest.raises(StoreBusy):
            api.ingest(copy, inputs["more"], now=NOW)
    finally:
        proc.kill()
        proc.wait()
    assert api.ingest(copy, inputs["more"], now=NOW).new
    assert api.verify(copy).ok


# ---------------------------------------------------------------- the hash chain

def test_log_is_a_chain_over_every_record(template):
    store = template["store"]
    entries = query(store, "SELECT seq, record_kind, record_id, content_hash, prev_hash, entry_hash, logged_at "
                           "FROM log ORDER BY seq")
    assert [(e[0], e[1], e[2]) for e in entries] == [
        (1, "batch", template["higgs"]), (2, "batch", template["later"]),
        (3, "snapshot", template["early"]), (4, "snapshot", template["all"])]
    prev = GENESIS
    for seq, kind, record_id, content, prev_hash, h, at in entries:
        assert prev_hash == prev
        assert h == entry_hash(seq, kind, record_id, content, prev_hash, at)
        prev = h
    content_of = dict(query(store, "SELECT batch_id, content_hash FROM batch UNION ALL "
                                   "SELECT snapshot_id, content_hash FROM snapshot"))
    # A snapshot's log entry covers its content hash (its id is a prefix of that hash), its label
    # and when it was made.
    label, created_at = query(store, "SELECT label, created_at FROM snapshot WHERE snapshot_id = ?",
                              [template["early"]])[0]
    assert entries[2][3] == logged(content_of[template["early"]], label=label, created_at=created_at)
    assert template["early"] == "s_" + content_of[template["early"]][:12]
    result = api.verify(store)
    assert (result.ok, result.entries, result.head, result.problems) == (True, 4, entries[-1][5], [])


def _first_interaction(t):
    return ("UPDATE interaction SET weight = 2 WHERE rowid = (SELECT min(rowid) FROM interaction "
            f"WHERE batch_id = '{t['higgs']}')")


# case -> (the raw SQL, the records verify must name: (log seq, which record)). A record that
# depends on the tampered one is named too: a snapshot counts a batch's rows and names its hash.
TAMPER = {
    "interaction weight": (_first_interaction, [(1, "higgs")]),
    "interaction deleted": (lambda t: "DELETE FROM interaction WHERE rowid = (SELECT max(rowid) FROM interaction "
                                      f"WHERE batch_id = '{t['later']}')", [(2, "later"), (4, "all")]),
    "batch source_name": (lambda t: f"UPDATE batch SET source_name = 'elsewhere.txt' WHERE batch_id = '{t['later']}'",
                          [(2, "later")]),
    "batch content_hash": (lambda t: f"UPDATE batch SET content_hash = md5(content_hash) "
                                     f"WHERE batch_id = '{t['higgs']}'", [(1, "higgs"), (3, "early"), (4, "all")]),
    "batch min_ts": (lambda t: f"UPDATE batch SET min_ts = min_ts - INTERVAL 1 DAY WHERE batch_id = '{t['later']}'",
                     [(2, "later")]),
    "snapshot as_of": (lambda t: f"UPDATE snapshot SET as_of = as_of + INTERVAL 1 HOUR "
                                 f"WHERE snapshot_id = '{t['early']}'", [(3, "early")]),
    "snapshot window": (lambda t: f"UPDATE snapshot SET window_seconds = 7200 WHERE snapshot_id = '{t['early']}'",
                        [(3, "early")]),
    "snapshot count": (lambda t: f"UPDATE snapshot SET interactions = interactions + 1 "
                                 f"WHERE snapshot_id = '{t['all']}'", [(4, "all")]),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampered_record_is_pinpointed(case, copy, template, monkeypatch, capsys):
    sql, named = TAMPER[case]
    tamper(copy, sql(template))
    expected = []
    for seq, which in named:
        record = template[which]
        kind = "batch" if record.startswith("b_") else "snapshot"
        # A column derived from the rows names what disagrees; an edited descriptive field shows
        # only in the content hash.
        detail = f" {CHANGED}" if case == "batch source_name" else DETAIL[kind].format(record)
        expected.append({"seq": seq, "kind": kind, "record_id": record,
                         "problem": f"{kind} {record} changed after it was stored{detail}"})
    result = api.verify(copy)
    assert not result.ok
    assert result.problems == expected
    code, out, err = run_cli(monkeypatch, capsys, "--store", str(copy), "verify")
    assert (code, err) == (1, "")
    assert out == "".join(f"FAIL log entry {p['seq']}: {p['problem']}\n" for p in expected) + \
        f"{len(expected)} problem(s): 4 log entries checked, head {result.head[:16]}\n"


def test_tampered_log_entry_is_pinpointed(copy, template, monkeypatch, capsys):
    tamper(copy, "UPDATE log SET content_hash = repeat('0', 64) WHERE seq = 2")
    result = api.verify(copy)
    later = template["later"]
    assert result.problems == [
        {"seq": 2, "kind": "batch", "record_id": later, "problem": "log entry hash does not match its fields"},
        {"seq": 2, "kind": "batch", "record_id": later, "problem": f"batch {later} changed after it was stored {CHANGED}"},
    ]
    code, out, _ = run_cli(monkeypatch, capsys, "--store", str(copy), "verify", "--json")
    assert code == 1 and '"ok": false' in out and f'"record_id": "{later}"' in out


def test_relinked_log_entry_is_pinpointed(copy, template):
    tamper(copy, "UPDATE log SET prev_hash = repeat('0', 64) WHERE seq = 3")
    result = api.verify(copy)
    assert [(p["seq"], p["record_id"], p["problem"]) for p in result.problems] == [
        (3, template["early"], "log entry does not link to the previous entry"),
        (3, template["early"], "log entry hash does not match its fields")]


def test_unlogged_batch_is_pinpointed(copy, monkeypatch, capsys):
    tamper(copy, "INSERT INTO batch (batch_id, content_hash, file_sha256, source_name, format, batch_kind, rows, "
                 "accounts, validation, ingested_at) VALUES ('b_0123456789ab', repeat('1', 64), repeat('2', 64), "
                 "'forged.csv', 'csv', 'interactions', 0, 0, '{}', TIMESTAMPTZ '2026-01-01 00:00:00+00')")
    result = api.verify(copy)
    assert result.problems == [{"seq": None, "kind": "batch", "record_id": "b_0123456789ab",
                                "problem": "batch b_0123456789ab is in the store but not in the log"}]
    code, out, _ = run_cli(monkeypatch, capsys, "--store", str(copy), "verify")
    assert code == 1
    assert out.splitlines()[0] == "FAIL batch b_0123456789ab is in the store but not in the log"


def test_deleted_record_is_pinpointed(copy, template):
    tamper(copy, f"DELETE FROM snapshot WHERE snapshot_id = '{template['early']}'")
    result = api.verify(copy)
    early = template["early"]
    assert result.problems == [{"seq": 3, "kind": "snapshot", "record_id": early,
                                "problem": f"snapshot {early} is missing from the store"}]


def test_non_utc_clock_still_verifies(tmp_path, inputs):
    """`now` and `as_of` in another zone are the same instants: the hashes must read back the same."""
    from datetime import timedelta
    cest = timezone(timedelta(hours=2))
    store = tmp_path / "audit.duckdb"
    api.ingest(store, inputs["higgs"], now=datetime(2026, 1, 1, 2, tzinfo=cest))
    snap = api.snapshot(store, as_of=datetime(2012, 7, 1, 2, 30, tzinfo=cest), window="1h",
                        now=datetime(2026, 1, 1, 2, tzinfo=cest))
    assert snap.as_of == datetime(2012, 7, 1, 0, 30, tzinfo=timezone.utc)
    assert api.verify(store).ok
    utc = tmp_path / "utc.duckdb"
    api.ingest(utc, inputs["higgs"], now=NOW)
    assert api.snapshot(utc, as_of="2012-07-01T00:30:00Z", window="1h", now=NOW).snapshot_id == snap.snapshot_id
