"""Commands that write HTML reports, and the demo job that writes all three."""
from __future__ import annotations

from pathlib import Path

import click

from .. import api, present
from .base import now_utc, cli, emit, json_option, store_of, Steps


@cli.group()
def report() -> None:
    """Write an HTML report: transparency, compare, or account.

    \b
    Example:
        audit report transparency --out transparency.html
    """


def write_report(path: str | Path, html: str) -> int:
    """Write one report file; its folder must exist (nothing is created outside what was asked)."""
    data = html.encode("utf-8")
    Path(path).write_bytes(data)
    return len(data)


def _written(path: str, html: str, as_json: bool) -> None:
    size = write_report(path, html)
    emit(present.written_json(path, size), present.written_text(path, size), as_json)


@report.command("transparency")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--release", "releases", multiple=True, help="Only this published version, e.g. network@2 (repeatable).")
@json_option
@click.pass_context
def report_transparency(ctx: click.Context, out: str, releases: tuple[str, ...], as_json: bool) -> None:
    """The transparency report: per published version its parameters and their weight, what
    changed, who moved, restatements, data quality, and the verification of the log.

    \b
    Example:
        audit report transparency --out out/transparency.html
    """
    from reports.render import render_transparency
    _written(out, render_transparency(api.transparency(store_of(ctx), list(releases) or None)), as_json)


@report.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@json_option
@click.pass_context
def report_compare(ctx: click.Context, baseline: str, candidate: str, out: str, as_json: bool) -> None:
    """The comparison report of two runs.

    \b
    Example:
        audit report compare r_1a2b r_3c4d --out out/compare.html
    """
    from reports.render import render_compare
    _written(out, render_compare(api.compare(store_of(ctx), baseline, candidate)), as_json)


@report.command("account")
@click.argument("account")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@json_option
@click.pass_context
def report_account(ctx: click.Context, account: str, out: str, as_json: bool) -> None:
    """The account statement: history as published and restated, the latest change explained.

    \b
    Example:
        audit report account 44086 --out out/account-44086.html
    """
    from reports.render import render_account
    _written(out, render_account(api.account_statement(store_of(ctx), account, now=now_utc())), as_json)


@cli.command()
@click.option("--out", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the reports.")
@json_option
@click.pass_context
def demo(ctx: click.Context, out: str, as_json: bool) -> None:
    """Run the main job on the bundled Higgs data: ingest, daily snapshots 2012-07-01..07, score
    with activity@1 and network@2, publish activity@1 then restate with network@2, compare,
    explain the biggest drop, write the reports. Running it again reuses what is stored.

    \b
    Example:
        audit --store out/demo.duckdb demo --out out
    """
    from reports.render import render_account, render_compare, render_transparency

    from ..present.demo import demo_json, demo_text
    store, folder = store_of(ctx), Path(out)
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    progress = Steps(True)
    result = api.run_demo(store, folder, now_utc, step=progress)
    reports = {"transparency": folder / "transparency.html", "compare": folder / "compare.html",
               "account": folder / f"account-{result.account}.html"}
    progress("report: transparency (verifies the log and re-runs every run)")
    write_report(reports["transparency"], render_transparency(api.transparency(store)))
    progress("report: compare")
    b, c = result.runs["activity@1"][-1], result.runs["network@2"][-1]
    write_report(reports["compare"], render_compare(api.compare(store, b, c)))
    progress(f"report: account {result.account}")
    write_report(reports["account"], render_account(api.account_statement(store, result.account, now=now_utc())))
    progress.done()
    result.reports = {k: str(v) for k, v in reports.items()}
    emit(demo_json(result), demo_text(result), as_json)
