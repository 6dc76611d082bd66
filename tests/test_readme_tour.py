"""The README's short tour runs as written: every `$ audit ...` line, in order, on a fresh store,
its output compared with the README text line by line. Only ids (content hashes: another version
of the code may name a run differently), timings, result hashes and the log head may differ; ids
are mapped as they appear, so a later command's prefix (`r_f051`) is rewritten to the id the
store gave, and one README id must always stand for one real id."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"\b([bsrpagdx])_([0-9a-f]{4,12})\b")
MASKS = [(re.compile(r"\bin \d+\.\d+s\b"), "in <seconds>"),
         (re.compile(r"\(result [0-9a-f]{12}\)"), "(result <hash>)"),
         (re.compile(r"\bhead [0-9a-f]{16}\b"), "head <hash>")]


def tour() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of the tour, `...` ending an output early."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A short tour"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```\n")]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return [(c, out) for c, out in steps if c.startswith("audit ")]


def masked(line: str) -> str:
    for pattern, to in MASKS:
        line = pattern.sub(to, line)
    return line


class Ids:
    """README ids -> the ids this run gave, learnt in order of appearance."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def command(self, command: str) -> str:
        """A README command with its id prefixes rewritten to this store's ids."""
        def swap(m: re.Match) -> str:
            ref = m.group(0)
            full = [v for k, v in self.known.items() if k.startswith(ref)]
            assert len(set(full)) <= 1, f"{ref} is ambiguous among {full}"
            return full[0][:len(ref)] if full else ref
        return ID.sub(swap, command)

    def match(self, expected: str, got: str) -> bool:
        """Whether a README line and an output line agree once ids are mapped (learning new ones)."""
        e_ids, g_ids = ID.findall(expected), ID.findall(got)
        if ID.sub("<id>", masked(expected)) != ID.sub("<id>", masked(got)) or len(e_ids) != len(g_ids):
            return False
        for (ek, ev), (gk, gv) in zip(e_ids, g_ids):
            e, g = f"{ek}_{ev}", f"{gk}_{gv}"
            if ek != gk:
                return False
            if len(ev) == 12:                       # a full id: learn or check the mapping
                if self.known.setdefault(e, g) != g:
                    return False
        return True


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path):
    steps = tour()
    assert len(steps) >= 14 and steps[-1][0].startswith("audit verify")
    exe = shutil.which("audit", path=str(Path(sys.executable).parent))
    assert exe, "the audit command next to this Python"
    env = {**os.environ, "AUDIT_STORE": str(tmp_path / "tour.duckdb")}
    ids = Ids()
    for command, expected in steps:
        args = ids.command(command).split()[1:]
        proc = subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        assert proc.returncode == 0, (command, proc.stderr)
        got = [line for line in proc.stdout.splitlines() if line.strip()]
        cut = expected.index("...") if "..." in expected else None
        if cut is not None:
            expected, got = expected[:cut], got[:cut]
        assert len(got) == len(expected), (command, got, expected)
        for e, g in zip(expected, got):
            assert ids.match(e, g), f"{command}:\n  README: {e}\n  output: {g}"
