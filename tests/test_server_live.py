"""The real `audit serve` on a free loopback port, over a copy of the real Higgs store: a scoring
job submitted through the API while 8 clients read in a loop; the CLI refused on the held store;
the account statement loaded in headless Chromium; the address file gone after a stop.
"""
from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audit import api
from audit.store import holder

from conftest import DAYS, START, Clock

TOKEN = "live-test-token-0123456789abcdef"
ACCOUNT = "88"
CHROMIUM = Path("/usr/bin/chromium")
AUDIT = [sys.executable, "-c", "from audit.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None,
         conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        if own:
            conn.close()


@pytest.fixture(scope="module")
def served(real, tmp_path_factory):
    """`audit serve` on a published copy of the real store; yields (port, store, process)."""
    folder = tmp_path_factory.mktemp("live")
    store = real.copy_to(folder)
    clock = Clock(START.replace(year=2027))
    for day in DAYS:
        api.publish(store, real.runs[(day, "activity@1")], period=day, now=clock())
    for day in DAYS[-2:]:
        api.publish(store, real.runs[(day, "network@2")], period=day, now=clock())
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    log = open(folder / "serve.log", "w")
    proc = subprocess.Popen([*AUDIT, "--store", str(store), "serve", "--port", str(port),
                             "--token-file", str(token_file)], stdout=log, stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                if call(port, "GET", "/api/v1/runs")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError("audit serve did not start: " + (folder / "serve.log").read_text())
            time.sleep(0.2)
        yield port, store, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _job(port: int, body: dict) -> str:
    status, out = call(port, "POST", "/api/v1/jobs", body, token=TOKEN)
    assert status == 202, out
    return json.loads(out)["job_id"]


def _state(port: int, job_id: str) -> dict:
    status, out = call(port, "GET", f"/api/v1/jobs/{job_id}")
    assert status == 200
    return json.loads(out)


def test_reads_succeed_while_a_scoring_job_runs(served):
    port, store, _ = served
    snap_job = _job(port, {"op": "snapshot", "as_of": "2012-07-07T12:00:00Z", "window": "7d", "label": "live"})
    while (snap := _state(port, snap_job))["state"] not in ("done", "failed"):
        time.sleep(0.05)
    assert snap["state"] == "done", snap
    _, runs_before = call(port, "GET", "/api/v1/runs")

    stop = threading.Event()
    results: list[tuple[str, int, str]] = []          # (path, status, job state when it was sent)
    lock = threading.Lock()
    state = {"job": "queued"}
    paths = [f"/api/v1/accounts/{ACCOUNT}/score", f"/api/v1/accounts/{ACCOUNT}/history", "/api/v1/runs",
             f"/api/v1/accounts/{ACCOUNT}/history?view=restated", "/api/v1/publications"]

    def reader(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = k
        while not stop.is_set():
            seen = state["job"]
            if i % 6 == 5:
                status, _ = call(port, "POST", "/api/v1/scores", {"accounts": [ACCOUNT, "14454", "nope"]}, conn=conn)
                path = "/api/v1/scores"
            else:
                path = paths[i % len(paths)]
                status, _ = call(port, "GET", path, conn=conn)
            with lock:
                results.append((path, status, seen))
            i += 1
        conn.close()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    job_id = _job(port, {"op": "score", "snapshot": snap["result"]["snapshot_id"], "algorithm": "network@2"})
    deadline = time.monotonic() + 300
    while True:
        job = _state(port, job_id)
        state["job"] = job["state"]
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.3)                                    # a few reads after the commit too
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert job["state"] == "done", job
    failed = [r for r in results if r[1] != 200]
    assert not failed, failed[:10]
    during = [r for r in results if r[2] == "running"]
    assert len(during) >= 8, f"only {len(during)} reads overlapped the job"
    run_id = job["result"]["run_id"]
    assert run_id not in runs_before.decode()
    status, body = call(port, "GET", f"/api/v1/runs/{run_id}")
    assert status == 200 and json.loads(body)["run_id"] == run_id
    assert run_id in call(port, "GET", "/api/v1/runs")[1].decode()


def test_a_cli_write_on_the_held_store_names_the_service(served):
    port, store, _ = served
    out = subprocess.run([*AUDIT, "--store", str(store), "snapshot", "--as-of", "2012-07-03"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"held by the audit service at http://127.0.0.1:{port}" in out.stderr
    assert f"POST http://127.0.0.1:{port}/api/v1/jobs" in out.stderr


@pytest.mark.browser
def test_account_statement_in_headless_chromium(served, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed (Debian package chromium); .ci/run installs it")
    port, _, _ = served
    url = f"http://127.0.0.1:{port}/accounts/{ACCOUNT}"
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    png = tmp_path / "account.png"
    subprocess.run([*base, f"--screenshot={png}", "--window-size=1200,2400", url], capture_output=True, timeout=120)
    assert png.is_file() and png.stat().st_size > 20_000
    dom = subprocess.run([*base, "--dump-dom", "--virtual-time-budget=5000", url], capture_output=True, text=True,
                         timeout=120).stdout
    assert f"Score statement: account {ACCOUNT}" in dom
    assert re.search(r"<svg[^>]*viewBox", dom) and "Score history" in dom
    assert 'href="/transparency"' in dom and "<script" not in dom


def test_stopping_the_service_removes_its_address(served):
    port, store, proc = served
    assert holder.read(store)["url"] == f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 0 and not holder.holder_file(store).exists()
