"""The HTML reports, rendered from a real demo store (the bundled Higgs data, both shipped versions).

Numbers are checked against the API's results, formatted by the same filter the templates use.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil
import struct
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from markupsafe import escape

from audit import api
from audit.api import run_demo
from reports import svg
from reports.render import FILTERS, render_account, render_compare, render_transparency, tone

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)
CHROMIUM = Path("/usr/bin/chromium")
f = FILTERS


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The demo store, built once with a deterministic clock."""
    root = tmp_path_factory.mktemp("demo")
    ticks = (datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i) for i in itertools.count())
    result = run_demo(root / "demo.duckdb", root / "out", lambda: next(ticks))
    return result


@pytest.fixture(scope="session")
def transparency_data(demo):
    return api.transparency(demo.store)


@pytest.fixture(scope="session")
def statement(demo):
    return api.account_statement(demo.store, demo.account, now=NOW)


@pytest.fixture(scope="session")
def comparison(demo):
    return api.compare(demo.store, demo.runs["activity@1"][-1], demo.runs["network@3"][-1])


@pytest.fixture(scope="session")
def reports(transparency_data, statement, comparison) -> dict[str, str]:
    return {"transparency": render_transparency(transparency_data), "compare": render_compare(comparison),
            "account": render_account(statement)}


def text_of(html: str) -> str:
    """The visible text, tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- content

def test_transparency_shows_the_api_numbers(demo, transparency_data, reports):
    html = reports["transparency"]
    current, first = transparency_data.releases[-1], transparency_data.releases[0]
    assert (current.algorithm.label, first.algorithm.label) == ("network@3", "activity@1")
    assert html.index('<h2>network@3 <span class="badge ok">newest</span>') < \
        html.index('<h2>activity@1 <span class="badge">superseded by network@3</span>')
    cmp = api.compare(demo.store, current.comparison.baseline.run_id, current.comparison.candidate.run_id)
    assert f"<td>All accounts in both runs</td><td class=\"n\">{f['count'](cmp.coverage.both)}</td>" \
           f"<td class=\"n\">{f['corr'](cmp.spearman)}</td><td class=\"n\">{f['corr'](cmp.kendall_tau_b)}</td>" in html
    for release in transparency_data.releases:
        for share in release.shares:
            assert f"<strong>{escape(share.label)}</strong>: {f['pct'](share.share)} of all score mass" in html
        for b in release.histogram:                     # every bin count, in the table under the chart
            assert f"{f['tick'](b.low)}-{f['tick'](b.high)}" in html
        biggest = max(release.histogram, key=lambda b: b.accounts)
        assert f"<td class=\"n\">{f['count'](biggest.accounts)}</td>" in html
        assert f"{f['count'](biggest.accounts)} accounts</title>" in html      # and in the bar's tooltip
    assert len(current.restatements) == 7
    for r in current.restatements:
        assert f"<td class=\"id\">{r.period}</td><td>{r.original_algorithm} <code>{r.original_run}</code>" in html
    check = api.verify(demo.store)
    assert check.ok and transparency_data.verification.reran == len(api.runs(demo.store)) == 14
    assert f"<dt>Log entries checked</dt><dd>{f['count'](check.entries)}</dd>" in html
    assert f'<code class="hash">{check.head}</code>' in html
    batch = transparency_data.batches[0]
    n = len(batch.validation["expectations"])
    assert f"{n} of {n} expectations passed" in text_of(html)
    assert "Verification OK" in text_of(html)


def test_compare_shows_everything_a_comparison_holds(comparison, reports):
    html, c = reports["compare"], comparison
    summary = text_of(html[:html.index("</ul>")])
    assert f"Spearman rank correlation {f['corr'](c.spearman)} Kendall tau-b {f['corr'](c.kendall_tau_b)}" in summary
    assert f"Mean score change {f['points'](c.deltas.mean)} median {f['points'](c.deltas.median)}" in summary
    for a in c.agreement:
        assert f"<td class=\"n\">{f['count'](a.accounts)}</td><td class=\"n\">{f['corr'](a.spearman)}</td>" in html
    for p, v in c.rbo.items():
        assert f"Rank-biased overlap, p = {f['tick'](p)}</td><td class=\"n\">{f['corr'](v)}</td>" in html
    for k, v in c.top_k_overlap.items():
        assert f"Top {f['count'](k)} overlap</td><td class=\"n\">{f['pct'](v)}</td>" in html
    cells = re.findall(r'<text class="cell(?:-dark)?"[^>]*>([^<]+)</text>', html)
    assert cells == [f["count"](v) for row in c.bands for v in row if v]        # the heat map, row by row
    for row in c.segments.iter_rows(named=True):
        assert f"<td class=\"n\">{f['count'](row['accounts'])}</td><td class=\"n {tone(row['mean_delta'])}\">" \
               f"{f['points'](row['mean_delta'])}</td>" in html
    for movers in (c.risers, c.fallers):
        assert movers.height == 20
        for r in movers.iter_rows(named=True):
            assert f"<td class=\"id\">{r['account_id']}</td><td class=\"n\">{f['score'](r['baseline_score'])}</td>" in html
    for p in c.param_changes:
        assert f"<code>{p.path}</code></td><td>{p.kind}</td>" in html
    assert html.count('<span class="add">') == sum(
        1 for line in c.source_diff.splitlines() if line.startswith("+") and not line.startswith("+++"))


def test_account_statement_shows_history_and_explanation(demo, statement, reports):
    html = reports["account"]
    e = statement.explanation
    assert e is not None and statement.account_id == demo.account
    published = api.history(demo.store, demo.account)
    restated = api.history(demo.store, demo.account, restated=True)
    for p, r in zip(published.iter_rows(named=True), restated.iter_rows(named=True)):
        assert f"<td class=\"id\">{p['period']}</td>\n<td class=\"n\">{f['score'](p['score'])}</td>" \
               f"<td class=\"n\">{f['count'](p['rank'])}</td><td>{p['algorithm']}" in html
        assert f"<td class=\"n\">{f['score'](r['score'])}</td><td class=\"n\">{f['count'](r['rank'])}</td>" \
               f"<td>{r['algorithm']}" in html
    labels = {"own_activity": "Own activity", "population": "Everyone else", "algorithm": "Algorithm"}
    assert abs(sum(e.parts.values()) - e.total) < 1e-9
    for key, points in e.parts.items():
        assert f"<tr><td>{labels[key]}</td><td class=\"n {tone(points)}\">{f['points'](points)}</td></tr>" in html
    assert f"{f['points'](e.total)} points</strong>" in html
    shown = [m.group(1) for m in re.finditer(r"<li>(.*?) <span class=\"muted mono\">", html)]
    assert shown == [str(escape(r.text)) for r in e.reasons]                    # in ranked order
    assert html.count("<circle class=\"d-published\"") == published.height
    assert html.count("<circle class=\"d-restated\"") == restated.height
    top = e.engagers.head(20)
    assert html.count("<tr><td class=\"id\">") == min(20, e.engagers.height)
    assert set(re.findall(r"<tr><td class=\"id\">([^<]+)</td><td>(?:retweet|mention|reply)", html)) == \
        set(top["engager"].to_list())


def test_account_without_explanation_says_why(statement):
    html = render_account(dataclasses.replace(statement, explanation=None, note="only one published score so far"))
    assert "No change to explain: only one published score so far." in html
    assert "The latest change, explained" in html and "Three parts" not in html


# ---------------------------------------------------------------- escaping, self-containment, determinism

@pytest.fixture(scope="session")
def hostile(demo, tmp_path_factory):
    """A scratch copy of the store with a period named like a script, and results with hostile strings."""
    store = tmp_path_factory.mktemp("hostile") / "store.duckdb"
    shutil.copy(demo.store, store)
    api.publish(store, demo.runs["network@3"][-1], period=XSS, now=NOW)
    data = api.transparency(store, rerun_runs=False)
    st = api.account_statement(store, demo.account, now=NOW)
    assert XSS in st.published["period"].to_list() and st.explanation is not None
    e = st.explanation
    e = dataclasses.replace(e, account_id=XSS, reasons=tuple(dataclasses.replace(r, text=XSS, code=XSS) for r in e.reasons),
                            engagers=e.engagers.with_columns(pl.lit(XSS).alias("engager")),
                            components=tuple(dataclasses.replace(c, label=XSS) for c in e.components),
                            method=XSS)
    st = dataclasses.replace(st, account_id=XSS, explanation=e)
    rel = data.releases[-1]
    algo = dataclasses.replace(rel.algorithm, name=XSS, description=XSS, changelog=XSS, source=XSS, params={XSS: XSS})
    c = dataclasses.replace(rel.comparison, band_labels=(XSS,) * 10,
                            segments=rel.comparison.segments.with_columns(pl.lit(XSS).alias("band")),
                            risers=rel.comparison.risers.with_columns(pl.lit(XSS).alias("account_id")),
                            source_diff=f"+{XSS}\n")
    rel = dataclasses.replace(rel, algorithm=algo, comparison=c, snapshot_label=XSS,
                              shares=tuple(dataclasses.replace(s, label=XSS) for s in rel.shares))
    batches = tuple(dataclasses.replace(b, source_name=XSS) for b in data.batches)
    data = dataclasses.replace(data, releases=(*data.releases[:-1], rel), batches=batches)
    return {"transparency": render_transparency(data), "compare": render_compare(c), "account": render_account(st)}


@pytest.mark.parametrize("name", ["transparency", "compare", "account"])
def test_user_strings_are_escaped(hostile, name):
    html = hostile[name]
    assert ESCAPED in html
    assert "<script" not in html.lower()


def test_scripted_period_is_escaped_in_chart_and_table(hostile):
    html = hostile["account"]
    assert f'<td class="id">{ESCAPED}</td>' in html
    assert f"as published (activity@1, network@3) {ESCAPED}: " in html       # the point's tooltip


@pytest.mark.parametrize("name", ["transparency", "compare", "account"])
def test_self_contained(reports, name):
    html = reports[name]
    assert "<script" not in html and "<link" not in html and "<img" not in html and "@import" not in html
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)|url\(([^)]*)\)""", html)
    assert all(ref.startswith("#") for pair in refs for ref in pair if ref), refs
    assert "http://" not in html and "https://" not in html
    svgs = re.findall(r"<svg [^>]*>", html)
    assert svgs and all(re.search(r'viewBox="0 0 [1-9][0-9.]* [1-9][0-9.]*"', s) and 'width="100%"' in s for s in svgs)
    assert "@media print" in html and "@media (max-width" in html


@pytest.mark.slow
def test_rebuilt_reports_are_byte_identical(demo, reports):
    again = {"transparency": render_transparency(api.transparency(demo.store)),
             "compare": render_compare(api.compare(demo.store, demo.runs["activity@1"][-1], demo.runs["network@3"][-1])),
             "account": render_account(api.account_statement(demo.store, demo.account, now=NOW))}
    for name, html in reports.items():
        assert again[name].encode() == html.encode(), name


# ---------------------------------------------------------------- geometry and filters

def test_filters_format_stably():
    assert [f["points"](v) for v in (-0.004, 0.45, -55.2199, float("nan"))] == ["0.00", "+0.45", "-55.22", "n/a"]
    assert [f["pct"](0.53592), f["corr"](0.995372), f["count"](304691), f["score"](45.36)] == \
           ["53.6%", "0.995", "304,691", "45.4"]
    assert [f["num"](v) for v in (35988.0, 51.99999999999, 6.7601, 0.14672, 2.2185e-05, None)] == \
           ["35,988", "52", "6.76", "0.147", "2.22e-05", "n/a"]
    assert f["ts"](datetime(2026, 1, 1, 1, 2, 3, 456, tzinfo=timezone(timedelta(hours=2)))) == "2025-12-31 23:02:03 UTC"
    assert f["param"]({"b": 1, "a": [0.5, "x"]}) == '{"a": [0.5, "x"], "b": 1}'


def test_histogram_geometry_uses_a_log_axis_for_skewed_counts():
    bins = [(5.0 * i, 5.0 * i + 5, n) for i, n in enumerate([0, 249_890, 26_574, 9] + [1] * 16)]
    chart = svg.histogram(bins, title="t")
    assert len(chart.boxes) == 20 and chart.boxes[0].h == 0
    heights = [b.h for b in chart.boxes]
    assert heights[1] > heights[2] > heights[3] > 0 and min(heights[4:]) >= 1.5      # a count of 1 stays visible
    ticks = [lab.text[0][0] for lab in chart.labels if lab.anchor == "end"]
    assert ticks == [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0]
    assert any(lab.text == (("accounts (log scale)", "text"),) for lab in chart.labels)
    linear = svg.histogram([(0.0, 50.0, 10), (50.0, 100.0, 20)], title="t")
    assert linear.boxes[1].h == pytest.approx(2 * linear.boxes[0].h)


def test_heatmap_line_chart_and_waterfall_geometry():
    heat = svg.heatmap(["a", "b"], ["a", "b"], [[5, 0], [1, 100]], title="t", row_title="r", col_title="c")
    cells = [b for b in heat.boxes if b.tone == "heat"]
    assert [b.opacity for b in cells][1] == 0.0 and cells[3].opacity == 1.0
    assert len([b for b in heat.boxes if b.tone == "diag"]) == 2
    line = svg.line_chart(["p1", "p2", "p3"], [("pub", "published", [10.0, None, 90.0]), ("res", "restated", [20.0, 30.0, 40.0])],
                          title="t", markers=[(1, svg.say("network@2"))], links=[(0, 10.0, 20.0)])
    pub, res = line.series
    assert len(pub.points) == 2 and len(res.points) == 3
    assert pub.points[0].y > pub.points[1].y                      # higher score, higher on screen
    assert [ln.style for ln in line.lines].count("marker") == 2   # the marker and its legend entry
    fall = svg.waterfall((svg.say("before"), 100.0), [(svg.say("own"), 0.45), (svg.say("algo"), -55.22)],
                         (svg.say("after"), 45.23), title="t")
    before, own, algo, after = fall.boxes
    assert (own.tone, algo.tone, after.tone) == ("pos", "neg", "total")
    assert before.h / after.h == pytest.approx(100 / 45.23, rel=0.01)
    assert algo.y + algo.h == pytest.approx(after.y, abs=0.02)   # the fall ends where the final bar starts


# ---------------------------------------------------------------- in a real browser

def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


PROBE = """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<script>
var blocked = [];
document.addEventListener("securitypolicyviolation", function (e) { blocked.push(e.blockedURI); });
window.addEventListener("load", function () {
  var d = document.documentElement;
  d.setAttribute("data-probe", JSON.stringify({
    blocked: blocked,
    resources: performance.getEntriesByType("resource").map(function (r) { return r.name; }),
    overflow: d.scrollWidth - d.clientWidth,
    charts: Array.prototype.map.call(document.querySelectorAll("svg"), function (s) {
      var r = s.getBoundingClientRect(); return [r.width, r.height]; })}));
});
</script>"""


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.browser
@pytest.mark.parametrize("name", ["transparency", "compare", "account"])
@pytest.mark.parametrize("width", [1200, 390])
def test_reports_render_in_headless_chromium(reports, tmp_path, name, width):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed (Debian package chromium); .ci/run installs it")
    page = tmp_path / f"{name}.html"
    page.write_text(reports[name], encoding="utf-8")
    png = tmp_path / f"{name}.png"
    _chromium(f"--screenshot={png}", f"--window-size={width},2400", page.as_uri(), tmp=tmp_path)
    assert png.is_file() and png.stat().st_size > 20_000
    assert _png_size(png) == (width, 2400)
    probe = tmp_path / f"{name}-probe.html"       # a copy with a measuring script and a no-network policy
    probe.write_text(reports[name].replace("<head>\n", "<head>\n" + PROBE + "\n", 1), encoding="utf-8")
    out = _chromium("--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},2400", probe.as_uri(),
                    tmp=tmp_path).stdout
    found = re.search(r'data-probe="([^"]*)"', out)
    assert found, out[:500]
    data = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert data["blocked"] == [] and data["resources"] == []
    assert data["overflow"] <= 0                  # wide tables and charts scroll inside their box
    assert data["charts"] and all(w > 200 and h > 50 for w, h in data["charts"])
