"""The HTTP service in process (FastAPI's TestClient) on a real store: the quantumcomputing
Stack Exchange dump (accounts with real display names as handles, interactions), five daily
periods published with activity@1 and the last two restated with network@2.

Every JSON body is checked byte for byte against what the CLI prints with --json for the same
question, and values against the store itself (an independent SQL query).
"""
from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from markupsafe import escape
from click.testing import CliRunner

from audit import api, present
from audit.api._store import writing
from audit.cli import cli
from audit.records import publications as pubs
from audit.records.publications import ranked_in_store
from audit.store.db import connect

from conftest import SHARED_DATA, START, Clock

from fastapi.testclient import TestClient      # on httpx2 (starlette >= 1.10; httpx before)

from audit.server import Settings, create_app
from audit.server.cache import PublishedCache

QC = SHARED_DATA / "se-quantumcomputing"
PERIODS = ["2018-07-31", "2018-08-01", "2018-08-07", "2018-08-31", "2018-09-01"]
TOKEN = "t0ken-for-tests-0123456789"
HOSTILE = ['"', "' OR '1'='1", "../../etc/passwd", "<script>alert(1)</script>", "x" * 10_240, "a\x00b", "@",
           "@<script>", "%00", "r_", "latest", " "]


@pytest.fixture(scope="module")
def qc(tmp_path_factory) -> dict:
    """The quantumcomputing store and its ids (built once for this module)."""
    if not (QC / "accounts.csv").is_file():
        pytest.skip(f"the shared dataset {QC} is not beside the checkout")
    store = tmp_path_factory.mktemp("qc") / "audit.duckdb"
    clock = Clock(START)
    api.ingest(store, QC / "accounts.csv", now=clock())
    api.ingest(store, QC / "interactions.csv", now=clock())
    runs: dict[tuple[str, str], str] = {}
    for period in PERIODS:
        snap = api.snapshot(store, as_of=period, window="90d", label=period, now=clock())
        for algorithm in ("activity@1", "network@2"):
            runs[(period, algorithm)] = api.score(store, snap.snapshot_id, algorithm, now=clock()).run_id
    for period in PERIODS:
        api.publish(store, runs[(period, "activity@1")], period=period, now=clock())
    for period in PERIODS[-2:]:
        api.publish(store, runs[(period, "network@2")], period=period, now=clock())
    # one snapshot scored with activity@1 only: explaining it against network@2 needs a
    # counterfactual run that is not stored
    extra = api.snapshot(store, as_of="2018-06-30", window="90d", label="2018-06-30", now=clock())
    runs[("2018-06-30", "activity@1")] = api.score(store, extra.snapshot_id, "activity@1", now=clock()).run_id
    last = api.snapshot(store, as_of=PERIODS[-1], window="90d", label=PERIODS[-1], now=clock()).snapshot_id
    runs[(PERIODS[-1], "topics@1")] = api.score(store, last, "topics@1", now=clock()).run_id
    top = api.scores(store, runs[(PERIODS[-1], "network@2")], top=1)["account_id"][0]
    copy = store.with_name("hostile.duckdb")        # hostile requests get their own store: some are valid writes
    shutil.copy(store, copy)
    return {"store": store, "runs": runs, "top": top, "clock": clock, "copy": copy}


def run_cli(store: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# Each question asked through both doors: (HTTP path, CLI arguments).
def twins(qc: dict) -> dict[str, tuple[str, list[str]]]:
    top, runs = qc["top"], qc["runs"]
    last, before = runs[(PERIODS[-1], "network@2")], runs[(PERIODS[-2], "network@2")]
    a_first = runs[(PERIODS[0], "activity@1")]
    topics = runs[(PERIODS[-1], "topics@1")]
    return {
        "score": (f"/api/v1/accounts/{top}/score", ["account", top, "--json"]),
        "score release": (f"/api/v1/accounts/{top}/score?release=activity@1",
                          ["account", top, "--release", "activity@1", "--json"]),
        "score run": (f"/api/v1/accounts/{top}/score?run={a_first[:8]}", ["account", top, "--run", a_first[:8], "--json"]),
        "score handle": ("/api/v1/accounts/@Taryn/score", ["account", "@Taryn", "--json"]),
        "history": (f"/api/v1/accounts/{top}/history", ["history", top, "--json"]),
        "history restated": (f"/api/v1/accounts/{top}/history?view=restated", ["history", top, "--restated", "--json"]),
        "history as of": (f"/api/v1/accounts/{top}/history?as_of=2026-01-01T00:00:20Z",
                          ["history", top, "--as-of", "2026-01-01T00:00:20Z", "--json"]),
        "explain runs": (f"/api/v1/accounts/{top}/explain?from={before}&to={last}",
                         ["explain", top, "--from", before, "--to", last, "--json"]),
        "explain periods": (f"/api/v1/accounts/{top}/explain?from={PERIODS[-2]}&to={PERIODS[-1]}&release=network@2",
                            ["explain", top, "--from", PERIODS[-2], "--to", PERIODS[-1], "--release", "network@2",
                             "--json"]),
        "runs": ("/api/v1/runs", ["runs", "--json"]),
        "run": (f"/api/v1/runs/{last}", ["runs", last, "--json"]),
        "snapshots": ("/api/v1/snapshots", ["snapshots", "--json"]),
        "algorithms": ("/api/v1/algorithms", ["algorithms", "--json"]),
        "publications": ("/api/v1/publications", ["publications", "--json"]),
        "compare": (f"/api/v1/compare?baseline={runs[(PERIODS[-1], 'activity@1')]}&candidate={last}",
                    ["compare", runs[(PERIODS[-1], "activity@1")], last, "--json"]),
        "verify": ("/api/v1/verify", ["verify", "--json"]),
        "topics": (f"/api/v1/accounts/{top}/topics?run={topics}", ["topics", top, "--run", topics, "--json"]),
        "topics handle": (f"/api/v1/accounts/@DaftWullie/topics?run={topics[:7]}&top=5",
                          ["topics", "@DaftWullie", "--run", topics[:7], "--top", "5", "--json"]),
        "influence": (f"/api/v1/accounts/{top}/influence?run={last}&top=3&relative=true",
                      ["influence", top, "--run", last, "--top", "3", "--relative", "--json"]),
        "influence topic": (f"/api/v1/accounts/{top}/influence?run={topics}&topic=quantum-gate",
                            ["influence", top, "--run", topics, "--topic", "quantum-gate", "--json"]),
        "engagers": (f"/api/v1/accounts/{top}/engagers?run={last}&min_score=50&since=2018-08-01",
                     ["engagers", top, "--run", last, "--min-score", "50", "--since", "2018-08-01", "--json"]),
        "engagers topic": (f"/api/v1/accounts/{top}/engagers?run={topics}&topic=qubit",
                           ["engagers", top, "--run", topics, "--topic", "qubit", "--json"]),
    }


BULK = ["@Taryn", "@Sam", "@nobody-has-this", "1", "no-such-id", "1"]


@pytest.fixture(scope="module")
def cli_out(qc) -> dict[str, str]:
    """What the CLI prints for each question (asked before the service holds the store)."""
    out = {name: run_cli(qc["store"], *args) for name, (_, args) in twins(qc).items()}
    out["bulk"] = run_cli(qc["store"], "lookup", *BULK, "--json")
    return out


@pytest.fixture(scope="module")
def client(qc, cli_out):
    app = create_app(qc["store"], Settings(token=TOKEN, clock=qc["clock"]))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def hostile_client(qc):
    app = create_app(qc["copy"], Settings(token=TOKEN, clock=qc["clock"]))
    with TestClient(app) as c:
        yield c


# ---------------------------------------------------------------- one answer, two doors

@pytest.mark.parametrize("name", ["score", "score release", "score run", "score handle", "history", "history restated",
                                  "history as of", "explain runs", "explain periods", "runs", "run", "snapshots",
                                  "algorithms", "publications", "compare", "verify", "topics", "topics handle",
                                  "influence", "influence topic", "engagers", "engagers topic"])
def test_json_body_is_the_cli_output_byte_for_byte(qc, cli_out, client, name):
    path, _ = twins(qc)[name]
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.content.decode() == cli_out[name]          # present.dumps + the newline click.echo adds
    assert r.content.endswith(b"}\n") or r.content.endswith(b"]\n")


def test_bulk_lookup_is_the_cli_output_byte_for_byte(cli_out, client):
    r = client.post("/api/v1/scores", json={"accounts": BULK})
    assert r.status_code == 200
    assert r.text == cli_out["bulk"]


def test_score_card_answers_from_the_view_on_display(qc, client):
    """The default score is the restated view's latest period; its changes compare with that view."""
    top, run_id = qc["top"], qc["runs"][(PERIODS[-1], "network@2")]
    card = client.get(f"/api/v1/accounts/{top}/score").json()
    assert card["run_id"] == run_id and card["algorithm"] == "network@2" and card["period"] == PERIODS[-1]
    assert card["rank"] == 1
    # day, week and month compare with the restated view's earlier periods: 08-31 (network@2),
    # 08-07 and 08-01 (activity@1, as first and only published)
    expect = {"day": ("2018-08-31", qc["runs"][("2018-08-31", "network@2")]),
              "week": ("2018-08-07", qc["runs"][("2018-08-07", "activity@1")]),
              "month": ("2018-08-01", qc["runs"][("2018-08-01", "activity@1")])}
    for name, (period, run) in expect.items():
        c = card["changes"][name]
        assert (c["period"], c["run_id"]) == (period, run)
        assert c["change"] == round(card["score"] - c["score"], 9)


def test_score_values_match_an_independent_query(qc, client):
    """Score, raw and rank of the top account and of @Taryn against plain SQL on the service's
    own connection: the score row, and 1 + the number of strictly higher scores."""
    con = client.app.state.service.con.cursor()
    try:
        run_id = qc["runs"][(PERIODS[-1], "network@2")]
        for account, ref in ((qc["top"], qc["top"]), ("2", "@Taryn")):
            score, raw = con.execute("SELECT score, raw FROM score WHERE run_id = ? AND account_id = ?",
                                     [run_id, account]).fetchone()
            higher = con.execute("SELECT count(*) FROM score WHERE run_id = ? AND score > ?", [run_id, score]).fetchone()[0]
            card = client.get(f"/api/v1/accounts/{ref}/score").json()
            assert (card["account_id"], card["score"], card["raw"], card["rank"]) == (account, score, raw, higher + 1)
    finally:
        con.close()


def test_bulk_lookup_lists_unknown_and_ambiguous_apart(client):
    doc = client.post("/api/v1/scores", json={"accounts": BULK}).json()
    assert [(s["ref"], s["account_id"]) for s in doc["scores"]] == [("@Taryn", "2"), ("1", "1")]
    assert doc["unknown"] == ["@nobody-has-this", "no-such-id"]
    (sam,) = doc["ambiguous"]
    assert sam["ref"] == "@Sam"
    assert [a["account_id"] for a in sam["accounts"]] == ["2069", "257", "321", "473", "678"]   # same first_seen
    assert {a["handle"] for a in sam["accounts"]} == {"Sam"}
    assert len({a["first_seen"] for a in sam["accounts"]}) == 1


def test_handle_with_a_quote_resolves_and_is_escaped_on_the_page(client):
    r = client.get("/api/v1/accounts/" + quote("@Conor O'Brien", safe="@") + "/score")
    assert r.status_code == 200, r.text
    account = r.json()["account_id"]
    page = client.get("/accounts/" + quote("@Conor O'Brien", safe="@"))
    assert page.status_code == 200 and f"account {account}" in page.text.replace("<code>", "").replace("</code>", "")


def test_ambiguous_handle_of_one_account_is_refused_naming_each_holder(client):
    r = client.get("/api/v1/accounts/@Sam/score")
    assert r.status_code == 400
    assert r.json()["error"].startswith('handle "Sam" was held by 5 accounts: 2069 (first seen ')


def test_memory_and_store_give_the_same_ranks_and_history(qc, client):
    """The service's scores in memory against the store's SQL (the CLI's source): every rank of
    several runs, and both views of history."""
    con = client.app.state.service.con
    cache = PublishedCache(con, max_runs=4)
    cur = con.cursor()
    for run_id in list(qc["runs"].values())[:6]:            # more runs than it holds: some are let go
        ids = [r[0] for r in cur.execute("SELECT account_id FROM score WHERE run_id = ?", [run_id]).fetchall()]
        assert cache.ranked(run_id, ids + ["absent"]) == ranked_in_store(cur)(run_id, ids + ["absent"])
    accounts = [qc["top"], "2", "1", "absent"]
    for restated in (False, True):
        mem = pubs.history_frame(cache.points(), cache.ranked, accounts, restated=restated)
        sql = pubs.history_frame(pubs.points(cur), ranked_in_store(cur), accounts, restated=restated)
        assert mem.equals(sql) and mem.height > 0
    cur.close()


# ---------------------------------------------------------------- errors

def test_unknown_account_and_run_are_404_with_the_cli_message(client):
    r = client.get("/api/v1/accounts/no-such-account/score")
    assert r.status_code == 404
    assert r.json()["error"].startswith('account "no-such-account" has no score in run r_')
    r = client.get("/api/v1/runs/r_ffffffffffff")
    assert (r.status_code, r.json()["error"]) == (404, 'run "r_ffffffffffff" not found; "audit runs" lists them')
    r = client.get("/api/v1/accounts/1/score?release=network@9")
    assert r.status_code == 404 and "never published" in r.json()["error"]


def test_malformed_json_and_ids_are_422(client):
    r = client.post("/api/v1/scores", content=b'{"accounts": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"].startswith("malformed request")
    assert client.post("/api/v1/scores", json={"accounts": "1"}).status_code == 422
    assert client.post("/api/v1/scores", json={"accounts": ["1"], "extra": 1}).status_code == 422
    assert client.post("/api/v1/scores", json={"accounts": ["a\x00b"]}).status_code == 422
    assert client.post("/api/v1/scores", json={"accounts": ["1"], "release": "activity@1", "run": "r_"}).status_code == 422
    assert client.get("/api/v1/accounts/1/history?view=sideways").status_code == 422


def test_bulk_over_10000_is_413(client):
    r = client.post("/api/v1/scores", json={"accounts": [str(i) for i in range(10_001)]})
    assert r.status_code == 413 and "at most 10,000" in r.json()["error"]
    assert client.post("/api/v1/scores", json={"accounts": [str(i) for i in range(10_000)]}).status_code == 200


def test_body_over_the_limit_is_refused_before_it_is_read(qc):
    read = []

    async def app(scope, receive, send):           # what would read the body
        read.append(await receive())

    from audit.server.guards import BodyLimit
    import asyncio
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"x" * 2000, "more_body": False}
    guard = BodyLimit(app, limit=1000, upload_limit=5000)
    scope = {"type": "http", "path": "/api/v1/scores", "headers": [(b"content-length", b"2000")]}
    asyncio.run(guard(scope, receive, send))
    assert read == [] and sent[0]["status"] == 413
    # without a declared length, the body is counted as it arrives
    sent.clear()
    asyncio.run(guard({"type": "http", "path": "/api/v1/scores", "headers": []}, receive, send))
    assert sent[0]["status"] == 413


def test_a_declared_body_over_the_limit_gets_413(qc, client):
    r = client.post("/api/v1/scores", content=b"x" * (3 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_explain_without_stored_counterfactuals_is_409_naming_the_job(qc, client):
    runs = qc["runs"]
    frm, to = runs[("2018-06-30", "activity@1")], runs[(PERIODS[-1], "network@2")]
    r = client.get(f"/api/v1/accounts/{qc['top']}/explain?from={frm}&to={to}")
    assert r.status_code == 409
    assert '{"op": "explain", "account": "' in r.json()["error"]


def _all_requests(qc, value: str) -> list[tuple[str, str, dict]]:
    q = quote(value, safe="")
    run = qc["runs"][(PERIODS[-1], "network@2")]
    topics = qc["runs"][(PERIODS[-1], "topics@1")]
    gets = [f"/api/v1/accounts/{q}/score", f"/api/v1/accounts/{q}/history", f"/api/v1/accounts/{q}/explain?from={q}&to={q}",
            f"/api/v1/accounts/1/explain?from={run}&to={q}&release={q}", f"/api/v1/accounts/1/score?release={q}",
            f"/api/v1/accounts/1/score?run={q}", f"/api/v1/accounts/1/history?as_of={q}", f"/api/v1/runs/{q}",
            f"/api/v1/compare?baseline={q}&candidate={run}", f"/api/v1/compare?baseline={run}&candidate={q}",
            f"/api/v1/accounts/{q}/topics", f"/api/v1/accounts/1/topics?run={q}",
            f"/api/v1/accounts/{q}/influence?run={run}", f"/api/v1/accounts/1837/influence?run={q}&relative=true",
            f"/api/v1/accounts/1837/influence?run={topics}&topic={q}", f"/api/v1/accounts/{q}/engagers",
            f"/api/v1/accounts/1837/engagers?run={q}", f"/api/v1/accounts/1837/engagers?since={q}",
            f"/api/v1/accounts/1837/engagers?run={topics}&topic={q}",
            f"/api/v1/jobs/{q}", f"/accounts/{q}", f"/accounts?ref={q}", f"/compare/{q}/{run}", f"/compare/{run}/{q}",
            "/api/v1/runs", "/api/v1/snapshots", "/api/v1/algorithms", "/api/v1/publications", "/", "/docs"]
    out = [("GET", p, {}) for p in gets]
    out.append(("POST", "/api/v1/scores", {"json": {"accounts": [value, "1"]}}))
    out.append(("POST", "/api/v1/scores", {"json": {"accounts": ["1"], "release": value}}))
    out.append(("POST", "/api/v1/scores", {"json": {"accounts": ["1"], "run": value}}))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for job in ({"op": "score", "snapshot": value, "algorithm": value}, {"op": "publish", "run": value, "period": value},
                {"op": "snapshot", "as_of": value, "label": value}, {"op": "ingest", "path": value},
                {"op": "explain", "account": value, "from": value, "to": value}, {"op": value}):
        out.append(("POST", "/api/v1/jobs", {"json": job, "headers": auth}))
    out.append(("POST", "/api/v1/jobs", {"files": {"file": (value[:200] or "x", b"a,b\n")}, "data": {"op": "ingest"},
                                         "headers": auth}))
    return out


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:12]))
def test_hostile_input_never_gets_a_500(qc, hostile_client, value):
    client = hostile_client
    for method, path, kw in _all_requests(qc, value):
        r = client.request(method, path, **kw)
        assert r.status_code < 500, (method, path[:120], r.status_code, r.text[:300])
        if r.headers.get("content-type", "").startswith("text/html"):
            assert "<script>alert(1)" not in r.text
    jobs = [client.get(f"/api/v1/jobs/{j}").json() for j in _job_ids(client)]
    assert all(j["state"] in ("queued", "running", "done", "failed") for j in jobs)
    assert not any((j.get("error") or "").startswith("internal error") for j in jobs), jobs


def _job_ids(client) -> list[str]:
    service = client.app.state.service
    with service.jobs._lock:
        return list(service.jobs._jobs)


def test_hostile_jobs_store_nothing_but_what_the_cli_would(qc, hostile_client):
    """Every hostile job failed with the CLI's message, except `latest`, which names the newest
    run and snapshot to the CLI as well; the log stays a valid chain."""
    client = hostile_client
    _drain(client)
    before, earlier = client.get("/api/v1/verify").json(), set(_job_ids(client))
    for value in HOSTILE:
        for method, path, kw in _all_requests(qc, value):
            if path == "/api/v1/jobs":
                client.request(method, path, **kw)
    _drain(client)
    after = client.get("/api/v1/verify").json()
    assert after["ok"]
    jobs = [client.get(f"/api/v1/jobs/{j}").json() for j in _job_ids(client) if j not in earlier]
    done = [j for j in jobs if j["state"] == "done"]
    assert jobs and all(j["error"] for j in jobs if j["state"] == "failed")   # the rest were refused at submit
    assert all("latest" in json.dumps(j["args"]) or " " in json.dumps(j["args"]) for j in done), done
    new = after["entries"] - before["entries"]
    assert new == sum(1 for j in done if j["result"].get("new")), (new, done)


def _drain(client, timeout: float = 60) -> None:
    import time
    service = client.app.state.service
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with service.jobs._lock:
            if all(j.state in ("done", "failed") for j in service.jobs._jobs.values()):
                return
        time.sleep(0.05)
    raise AssertionError("jobs did not finish")


# ---------------------------------------------------------------- tokens and CORS

def test_writes_without_a_token_file_are_403(qc, cli_out):
    app = create_app(qc["store"], Settings(token=None))
    with TestClient(app) as c:
        r = c.post("/api/v1/jobs", json={"op": "snapshot", "as_of": "2018-09-02"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and "--token-file" in r.json()["error"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"])
def test_a_wrong_or_missing_token_is_401(client, header):
    headers = {"Authorization": header} if header else {}
    r = client.post("/api/v1/jobs", json={"op": "snapshot", "as_of": "2018-09-02"}, headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in r.text


def test_cors_allows_get_and_the_bulk_lookup_only(client):
    origin = {"Origin": "https://timeline.example"}
    assert client.get("/api/v1/runs", headers=origin).headers["access-control-allow-origin"] == "*"
    assert client.post("/api/v1/scores", json={"accounts": ["1"]},
                       headers=origin).headers["access-control-allow-origin"] == "*"
    pre = client.options("/api/v1/scores", headers=origin | {"Access-Control-Request-Method": "POST",
                                                              "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    pre = client.options("/api/v1/jobs", headers=origin | {"Access-Control-Request-Method": "POST"})
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    r = client.post("/api/v1/jobs", json={"op": "snapshot", "as_of": "2018-09-02"},
                    headers=origin | {"Authorization": f"Bearer {TOKEN}"})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in client.get("/api/v1/runs").headers   # no Origin, no header


# ---------------------------------------------------------------- jobs

def _wait(client, job_id: str, timeout: float = 120) -> dict:
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_jobs_run_the_cli_operations_and_answer_their_json(qc, client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post("/api/v1/jobs", json={"op": "snapshot", "as_of": "2018-09-02", "window": "90d",
                                          "label": "2018-09-02"}, headers=auth)
    assert r.status_code == 202
    snap = _wait(client, r.json()["job_id"])
    assert snap["state"] == "done" and snap["result"]["new"] and snap["result"]["label"] == "2018-09-02"
    r = client.post("/api/v1/jobs", json={"op": "score", "snapshot": snap["result"]["snapshot_id"],
                                          "algorithm": "network@2"}, headers=auth)
    scored = _wait(client, r.json()["job_id"])
    assert scored["state"] == "done" and scored["progress"]["steps"][0]["step"].startswith("scoring s_")
    run_id = scored["result"]["run_id"]
    listed = client.get(f"/api/v1/runs/{run_id}").json()
    assert listed == {k: v for k, v in scored["result"].items() if k != "new"}
    r = client.post("/api/v1/jobs", json={"op": "publish", "run": run_id, "period": "2018-09-02"}, headers=auth)
    published = _wait(client, r.json()["job_id"])
    assert published["state"] == "done" and published["result"]["run_id"] == run_id
    card = client.get(f"/api/v1/accounts/{qc['top']}/score").json()
    assert (card["run_id"], card["period"]) == (run_id, "2018-09-02")        # the new publication answers
    assert card["changes"]["day"]["period"] == "2018-09-01"
    # a failed job records the CLI's message and stores nothing
    head = client.get("/api/v1/verify").json()["head"]
    r = client.post("/api/v1/jobs", json={"op": "publish", "run": "r_ffffffffffff", "period": "x"}, headers=auth)
    failed = _wait(client, r.json()["job_id"])
    assert (failed["state"], failed["error"]) == ("failed", 'run "r_ffffffffffff" not found; "audit runs" lists them')
    assert client.get("/api/v1/verify").json()["head"] == head


def test_an_uploaded_file_is_ingested_under_its_own_name(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = (QC / "interactions.csv").read_bytes()
    r = client.post("/api/v1/jobs", files={"file": ("interactions.csv", data)}, data={"op": "ingest"}, headers=auth)
    assert r.status_code == 202
    job = _wait(client, r.json()["job_id"])
    assert job["state"] == "done" and job["result"]["new"] is False and job["args"] == {"name": "interactions.csv"}
    r = client.post("/api/v1/jobs", files={"file": ("broken.csv", b"source,target,kind,ts\n1,2,poke,2018\n")},
                    data={"op": "ingest"}, headers=auth)
    job = _wait(client, r.json()["job_id"])
    assert job["state"] == "failed" and job["error"].startswith("broken.csv") and "audit-upload" not in job["error"]


def test_an_ingest_path_must_be_inside_the_ingest_folder(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post("/api/v1/jobs", json={"op": "ingest", "path": "accounts.csv"}, headers=auth)
    assert r.status_code == 400 and "--ingest-root" in r.json()["error"]


def test_ingest_by_path_under_the_ingest_folder(qc, tmp_path):
    store = tmp_path / "fresh.duckdb"
    app = create_app(store, Settings(token=TOKEN, ingest_root=QC))
    with TestClient(app) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/api/v1/jobs", json={"op": "ingest", "path": "../../etc/passwd"}, headers=auth).status_code == 422
        r = c.post("/api/v1/jobs", json={"op": "ingest", "path": "accounts.csv"}, headers=auth)
        job = _wait(c, r.json()["job_id"])
        assert job["state"] == "done" and job["result"]["rows"] == 3461 and job["result"]["kind"] == "accounts"


# ---------------------------------------------------------------- reads during a write

def test_reads_see_the_last_committed_state_and_are_not_blocked_by_a_write(qc, tmp_path):
    """DuckDB's snapshot isolation between cursors of one connection: a read during an open write
    transaction answers at once with the state before it; after the commit, the new state."""
    import shutil
    import threading
    store = tmp_path / "iso.duckdb"
    shutil.copy(qc["store"], store)
    run_id = qc["runs"][(PERIODS[0], "network@2")]
    with connect(store, write=True) as con:
        before = [p.publication_id for p in api.publications(con)]
        with writing(con) as cur:
            new = pubs.publish(cur, run_id, "inside-a-transaction", START + timedelta(days=1))
            seen: list = []
            reader = threading.Thread(target=lambda: seen.append([p.publication_id for p in api.publications(con)]))
            reader.start()
            reader.join(timeout=10)
            assert not reader.is_alive(), "a read waited for the write"
            assert seen == [before]
        assert [p.publication_id for p in api.publications(con)] == before + [new.publication_id]


# ---------------------------------------------------------------- pages

def test_pages_render_from_the_report_templates_and_link_each_other(qc, client):
    index = client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    runs = qc["runs"]
    for link in ('href="/transparency"', 'action="/accounts"',
                 f'href="/compare/{runs[(PERIODS[-1], "activity@1")]}/{runs[(PERIODS[-1], "network@2")]}"'):
        assert link in index.text
    assert "<script" not in index.text
    page = client.get(f"/accounts/{qc['top']}")
    handle = client.get(f"/api/v1/accounts/{qc['top']}/history").json()[0]["handle"]
    assert handle        # the QC accounts file names every account
    assert page.status_code == 200 and f"Score statement: account {escape(handle)} ({qc['top']})" in page.text
    assert 'href="/"' in page.text and 'href="/transparency"' in page.text and "<script" not in page.text
    t = client.get("/transparency")
    assert t.status_code == 200 and "network@2" in t.text and "<script" not in t.text
    c = client.get(f"/compare/{runs[(PERIODS[-1], 'activity@1')]}/{runs[(PERIODS[-1], 'network@2')]}")
    assert c.status_code == 200 and "Baseline run" in c.text
    assert client.get("/accounts?ref=%40Taryn", follow_redirects=False).headers["location"] == "/accounts/@Taryn"
    missing = client.get("/accounts/no-such-account")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_account_page_is_the_report_of_the_same_statement(qc, client):
    from reports.render import render_account
    html = client.get(f"/accounts/{qc['top']}").text
    st = api.account_statement(client.app.state.service.con, qc["top"], now=START, compute=False)
    assert html == render_account(st, _nav_of(html))


def _nav_of(html: str) -> tuple:
    import re
    nav = re.search(r'<nav class="site">(.*?)</nav>', html).group(1)
    return tuple((label, href.replace("&amp;", "&")) for href, label in re.findall(r'<a href="([^"]*)">([^<]*)</a>', nav))


def test_openapi_and_docs_list_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for p in ("/api/v1/accounts/{ref}/score", "/api/v1/scores", "/api/v1/accounts/{ref}/history",
              "/api/v1/accounts/{ref}/explain", "/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/snapshots",
              "/api/v1/algorithms", "/api/v1/publications", "/api/v1/compare", "/api/v1/verify", "/api/v1/jobs",
              "/api/v1/accounts/{ref}/topics", "/api/v1/accounts/{ref}/influence", "/api/v1/accounts/{ref}/engagers",
              "/api/v1/jobs/{job_id}"):
        assert p in paths
    docs = client.get("/docs").text
    assert all(p in docs for p in paths) and "<script" not in docs


def test_dumps_is_json_dumps_byte_for_byte():
    """present.dumps computes json.dumps(sort_keys=True, indent=2, default=str) itself; on random
    nested documents of every JSON type (and values json hands to `default`) the two agree."""
    import random
    from datetime import datetime
    rng = random.Random(7)
    scalars = [None, True, False, 0, -5, 10**20, 2**63, 1.5, 1e-05, -0.0, 3.141592653589793, float("nan"),
               float("inf"), -float("inf"), "é<\"\\x", "", "a\x00b", datetime(2020, 1, 1)]

    def doc(depth: int = 0):
        r = rng.random()
        if depth > 3 or r < 0.5:
            return rng.choice(scalars)
        if r < 0.65:
            return [doc(depth + 1) for _ in range(rng.randint(0, 4))] if rng.random() < 0.8 else \
                tuple(doc(depth + 1) for _ in range(2))
        if r < 0.75:        # rows of a table: same keys, scalars, now and then one that differs
            keys = rng.sample(["a", "b", "é", "k1", "k2"], rng.randint(1, 4))
            return [{k: rng.choice(scalars) if rng.random() < 0.97 else doc(depth + 1)
                     for k in (keys if rng.random() < 0.97 else keys[:-1])} for _ in range(rng.randint(9, 14))]
        keys = ["a", "b", "é", "", *[f"k{i}" for i in range(10)], *([1] if rng.random() < 0.05 else [])]
        return {rng.choice(keys): doc(depth + 1) for _ in range(rng.randint(0, 4))}
    def either(encode, d):
        try:
            return encode(d)
        except TypeError as exc:          # keys of mixed types cannot be sorted, by either
            return type(exc)
    for _ in range(20_000):
        d = doc()
        assert either(present.dumps, d) == either(lambda x: json.dumps(x, sort_keys=True, indent=2, default=str), d)


def test_answers_are_kept_until_a_write_that_can_change_them(client):
    """An explanation by periods is computed again after a publication, not after a new run; by
    full run ids, never; by a handle, after an ingest."""
    from audit.server.service import depends_on
    assert depends_on("r_0123456789ab", "r_ba9876543210") == ()
    assert depends_on("2018-08-31", "2018-09-01") == ("publish",)
    assert depends_on("r_01", "latest") == ("score", "publish", "explain")
    assert depends_on("r_0123456789ab", "r_0123456789ab", account="@Taryn") == ("ingest",)
    s = client.app.state.service
    made: list[int] = []

    def make() -> int:
        made.append(1)
        return len(made)
    key = ("test", "2018-08-31")
    assert s.remembered(key, make, ("publish",)) == 1 == s.remembered(key, make, ("publish",))
    with s.answers_lock:
        s.writes["score"] = s.writes.get("score", 0) + 1
    assert s.remembered(key, make, ("publish",)) == 1
    with s.answers_lock:
        s.writes["publish"] = s.writes.get("publish", 0) + 1
    assert s.remembered(key, make, ("publish",)) == 2
