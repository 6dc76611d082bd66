"""What a command imports: `audit --help` and the help of every command load none of the heavy
libraries, a read command loads what reading needs (not great-expectations, scipy, the service,
the report templates), and ingest still validates with great-expectations. Each check runs in a
fresh interpreter, since this process has imported everything already. No timings here."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
from conftest import run_audit

HEAVY = ("polars", "duckdb", "numpy", "pyarrow", "pandas", "scipy", "great_expectations", "fastapi", "pyspark",
         "jinja2", "audit.analysis.explain", "audit.inputs.validate")
NOT_FOR_READS = ("great_expectations", "scipy", "fastapi", "pyspark", "jinja2", "pandas", "audit.analysis.explain",
                 "audit.analysis.compare", "audit.inputs.validate", "audit.server")
NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)

GOOD = """source,target,kind,ts
a,b,like,2012-07-01T00:00:00Z
b,c,reply,2012-07-01T01:00:00Z
c,a,mention,2012-07-01T02:00:00Z
a,c,like,2012-07-02T00:00:00Z
d,a,retweet,2012-07-02T03:00:00Z
"""
BAD = GOOD.replace("b,c,reply", "b,,reply")       # line 3: no target

# Runs `audit ARGS` through the real entry point in a fresh interpreter, then writes the modules it
# loaded (of those asked about) to a file. A script file, not -c: pyspark, when great-expectations
# imports it, exits a process whose __main__ has no file.
PROBE = """
import json, sys
out, names, args = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
from audit.cli import main
code = 0
try:
    main(args)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as fh:
    json.dump({"code": code, "loaded": sorted(n for n in names if n in sys.modules)}, fh)
"""


def loaded(tmp_path: Path, *args: str, names: tuple[str, ...] = HEAVY) -> tuple[int, list[str], str]:
    """(exit code, the modules of NAMES loaded, stdout) of `audit ARGS` in a fresh interpreter."""
    probe, out = tmp_path / "probe.py", tmp_path / "probe.json"
    probe.write_text(PROBE)
    proc = subprocess.run([sys.executable, str(probe), str(out), json.dumps(names), *args],
                          capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text())
    return result["code"], result["loaded"], proc.stdout


def python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_imports_no_heavy_library(tmp_path):
    code, mods, out = loaded(tmp_path, "--help")
    assert code == 0 and "Score audit" in out and "ingest" in out
    assert mods == []


def test_the_help_of_every_command_imports_no_heavy_library():
    out = python(f"""
import sys
import click
from audit.cli import cli
def walk(group, path):
    for name, command in group.commands.items():
        with click.Context(command, info_name=name) as ctx:
            assert command.get_help(ctx)
        if isinstance(command, click.Group):
            walk(command, path + [name])
walk(cli, [])
print(sorted(m for m in {HEAVY!r} if m in sys.modules))
""")
    assert out.strip() == "[]"


def test_the_facade_loads_names_on_first_use():
    out = python("""
import sys
from audit import api, present
assert "polars" not in sys.modules and "audit.api.runs" not in sys.modules
import audit.api.runs, audit.api.gaming      # binding the submodules must not hide the functions
runs_module = sys.modules["audit.api.runs"]
assert api.runs is runs_module.runs and api.gaming is sys.modules["audit.api.gaming"].gaming
assert api.scores is runs_module.scores and api.demo.BASELINE
from audit.api import IngestResult, StoreScores, run_demo
assert set(api.__all__) <= set(dir(api))
assert present.dumps({"a": 1}) and "scipy" not in sys.modules
for module, name in ((api, "nope"), (present, "nope")):
    try:
        getattr(module, name)
    except AttributeError:
        pass
    else:
        raise SystemExit(f"{name} resolved")
print("ok")
""")
    assert out.strip() == "ok"


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> tuple[Path, Path, str]:
    """A store holding one 5-row batch (ingested by the `audit` executable), a snapshot and a
    published network@3 run of it: (store, the CSV, the run id)."""
    from audit import api
    folder = tmp_path_factory.mktemp("startup")
    csv, store = folder / "five.csv", folder / "s.duckdb"
    csv.write_text(GOOD)
    proc = run_audit("--store", str(store), "ingest", str(csv))
    assert proc.returncode == 0, proc.stderr
    api.snapshot(str(store), as_of="2012-07-03", now=NOW)
    run = api.score(str(store), "latest", "network@3", now=NOW)
    api.publish(str(store), run.run_id, period="2012-07-03", now=NOW)
    return store, csv, run.run_id


def test_ingest_still_validates_with_great_expectations(small_store):
    store, _, _ = small_store
    with duckdb.connect(str(store), read_only=True) as con:
        (validation,), = con.execute("SELECT validation FROM batch").fetchall()
    validation = json.loads(validation)
    assert validation["validator"].startswith("great_expectations ")
    assert validation["rows"] == 5 and all(e["success"] for e in validation["expectations"])


def test_a_bad_file_is_refused_naming_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD)
    proc = run_audit("--store", str(tmp_path / "s.duckdb"), "ingest", str(bad))
    assert proc.returncode == 2
    assert f"{bad}: rejected, nothing was stored" in proc.stderr
    assert "expect_column_values_to_not_be_null on column target" in proc.stderr
    assert "line 3: target=None" in proc.stderr
    assert not (tmp_path / "s.duckdb").exists()


@pytest.mark.parametrize("args", [("runs",), ("runs", "--json"), ("snapshots",), ("publications",),
                                  ("scores", "RUN", "--top", "5"), ("scores", "RUN", "--json"),
                                  ("runs", "RUN"), ("history", "a"), ("account", "a")])
def test_a_read_command_imports_what_reading_needs(tmp_path, small_store, args):
    store, _, run_id = small_store
    args = tuple(run_id if a == "RUN" else a for a in args)
    code, mods, out = loaded(tmp_path, "--store", str(store), *args, names=NOT_FOR_READS)
    assert code in (0, None) and out
    assert mods == []


def test_listing_versions_imports_no_validator_service_or_templates(tmp_path, small_store):
    # shipped versions not registered yet are listed from their executed source (network@2
    # imports scipy), so only these are out
    store, _, _ = small_store
    code, mods, out = loaded(tmp_path, "--store", str(store), "algorithms", "--json",
                             names=("great_expectations", "fastapi", "pyspark", "jinja2", "audit.inputs.validate"))
    assert code in (0, None) and json.loads(out)
    assert mods == []


def test_listings_do_not_import_numpy(tmp_path, small_store):
    store, _, _ = small_store
    for command in ("runs", "snapshots", "publications"):
        code, mods, _ = loaded(tmp_path, "--store", str(store), command, names=("numpy", "pyarrow"))
        assert code in (0, None) and mods == [], command
