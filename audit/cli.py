"""The command line: each command parses, calls one facade function, and prints what the
presentation layer makes of the result. Errors become messages in one place (`main`)."""
from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from . import api, present
from .errors import AuditError


def _now() -> datetime:
    return datetime.now(timezone.utc)


def emit_json(doc: Any) -> None:
    click.echo(present.dumps(doc))


def emit_text(text: str, *, err: bool = False) -> None:
    if text:
        click.echo(text, err=err)


def emit(result_json: Any, result_text: str, as_json: bool) -> None:
    """Print a result: its JSON document with --json, else its text."""
    if as_json:
        emit_json(result_json)
    else:
        emit_text(result_text)


class Steps:
    """Progress on stderr: each step with its time, shown only on a terminal (or with --progress)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.label: str | None = None
        self.t0 = 0.0

    def __call__(self, label: str) -> None:
        self.done()
        self.label, self.t0 = label, time.perf_counter()
        if self.enabled:
            click.echo(f"  {label} ...", err=True, nl=False)

    def done(self) -> None:
        if self.label is not None and self.enabled:
            click.echo(f" {time.perf_counter() - self.t0:.1f}s", err=True)
        self.label = None


def steps() -> Steps:
    return Steps(sys.stderr.isatty())


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--store", envvar="AUDIT_STORE", default="audit.duckdb", show_default=True,
              type=click.Path(dir_okay=False), help="The DuckDB store file (or set AUDIT_STORE).")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, store: str, debug: bool) -> None:
    """Score audit: immutable inputs, versioned algorithms, reproducible scores.

    \b
    Example:
        audit ingest data/higgs-activity_time.txt.gz
        audit snapshot --as-of 2012-07-04 --window 7d
        audit snapshots
    """
    ctx.obj = {"store": store, "debug": debug}


def store_of(ctx: click.Context) -> str:
    return ctx.obj["store"]


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "csv", "parquet", "snap-higgs", "uvt", "signed-csv"]),
              help="Input format; auto tells it from the suffix and first line.")
@click.option("--kind", default=None, help="Interaction kind of a uvt file (default mention).")
@json_option
@click.pass_context
def ingest(ctx: click.Context, path: str, fmt: str, kind: str | None, as_json: bool) -> None:
    """Validate PATH and store it as one batch (the same content twice is a no-op).

    \b
    Example:
        audit ingest data/higgs-activity_time.txt.gz
        audit ingest ratings.csv.gz --format signed-csv
    """
    progress = steps()
    result = api.ingest(store_of(ctx), path, now=_now(), fmt=fmt, kind=kind, step=progress)
    progress.done()
    emit(present.ingest_json(result), present.ingest_text(result), as_json)
    if not as_json and result.new:
        emit_text("\n".join(present.ingest_warnings(result)), err=True)


@cli.command()
@click.option("--as-of", "as_of", required=True,
              help="Instant the snapshot is taken at (ISO 8601, UTC); a bare date means the end of that day.")
@click.option("--window", default=None, help="Only interactions in this span before --as-of, e.g. 7d, 24h (default: all).")
@click.option("--label", default=None, help="A name to show for the snapshot, e.g. 2012-07-04.")
@json_option
@click.pass_context
def snapshot(ctx: click.Context, as_of: str, window: str | None, label: str | None, as_json: bool) -> None:
    """Freeze the inputs stored so far as of --as-of (copies no rows).

    \b
    Example:
        audit snapshot --as-of 2012-07-04 --window 7d --label 2012-07-04
    """
    snap = api.snapshot(store_of(ctx), as_of=as_of, window=window, label=label, now=_now())
    emit(present.snapshot_created_json(snap), present.snapshot_text(snap), as_json)


@cli.command("snapshots")
@json_option
@click.pass_context
def list_snapshots(ctx: click.Context, as_json: bool) -> None:
    """List the snapshots, oldest as-of first; the last is `latest`.

    \b
    Example:
        audit snapshots --json
    """
    items = api.snapshots(store_of(ctx))
    emit(present.snapshots_json(items), present.snapshots_text(items), as_json)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
@click.pass_context
def register(ctx: click.Context, path: str, as_json: bool) -> None:
    """Register the algorithm module at PATH (its full source and parameters are stored).

    Changed source under an already registered NAME@VERSION is refused: bump VERSION.

    \b
    Example:
        audit register my_algorithm.py
    """
    algo, new = api.register(store_of(ctx), path, now=_now())
    emit(present.registered_json(algo, new), present.registered_text(algo, new), as_json)


@cli.command("algorithms")
@json_option
@click.pass_context
def list_algorithms(ctx: click.Context, as_json: bool) -> None:
    """List registered algorithm versions with their parameters.

    Shipped versions (activity@1, network@2) are registered the first time they score.

    \b
    Example:
        audit algorithms --json
    """
    items = api.algorithms(store_of(ctx))
    emit(present.algorithms_json(items), present.algorithms_text(items), as_json)


@cli.command()
@click.argument("snapshot")
@click.argument("algorithm")
@json_option
@click.pass_context
def score(ctx: click.Context, snapshot: str, algorithm: str, as_json: bool) -> None:
    """Score SNAPSHOT (id, prefix or `latest`) with ALGORITHM (NAME@VERSION) and store the run.

    Scoring the same snapshot with the same version again returns the stored run.

    \b
    Example:
        audit score latest network@2
    """
    progress = steps()
    progress(f"scoring {snapshot} with {algorithm}")
    run = api.score(store_of(ctx), snapshot, algorithm, now=_now())
    progress.done()
    emit(present.scored_json(run), present.scored_text(run), as_json)


@cli.command("runs")
@json_option
@click.pass_context
def list_runs(ctx: click.Context, as_json: bool) -> None:
    """List runs by snapshot as-of, then algorithm.

    \b
    Example:
        audit runs --json
    """
    items = api.runs(store_of(ctx))
    emit(present.runs_json(items), present.runs_text(items), as_json)


@cli.command("scores")
@click.argument("run")
@click.option("--account", "accounts", multiple=True, help="An account to show (repeat for many).")
@click.option("--accounts-file", type=click.File("r"), help="A file of account ids, one per line.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Only the N best.")
@json_option
@click.pass_context
def list_scores(ctx: click.Context, run: str, accounts: tuple[str, ...], accounts_file, top: int | None,
                as_json: bool) -> None:
    """Show scores of RUN with rank and components, best first.

    \b
    Example:
        audit scores r_1a2b --top 10
        audit scores r_1a2b --account 88 --account 14454
    """
    wanted = _account_ids(accounts, accounts_file)
    df = api.scores(store_of(ctx), run, accounts=wanted or None, top=top if top or wanted else 20)
    emit(present.scores_json(df), present.scores_text(df), as_json)
    emit_text("\n".join(present.missing_warnings(wanted, df["account_id"].to_list(), "is not in this run")), err=True)


def _account_ids(accounts: tuple[str, ...], accounts_file) -> list[str]:
    """Accounts given as arguments or options, then those of --accounts-file (one per line)."""
    return list(accounts) + ([line.strip() for line in accounts_file if line.strip()] if accounts_file else [])


@cli.command()
@click.argument("run")
@click.option("--period", required=True, help="The period this run is the published score for, e.g. 2012-07-04.")
@json_option
@click.pass_context
def publish(ctx: click.Context, run: str, period: str, as_json: bool) -> None:
    """Publish RUN as the score for --period. A period already published gets a restatement
    that points at the earlier publication, which stays as it was.

    \b
    Example:
        audit publish r_1a2b3c --period 2012-07-04
    """
    pub = api.publish(store_of(ctx), run, period=period, now=_now())
    emit(present.published_json(pub), present.published_text(pub), as_json)


@cli.command("publications")
@json_option
@click.pass_context
def list_publications(ctx: click.Context, as_json: bool) -> None:
    """List publications in the order they were made.

    \b
    Example:
        audit publications
    """
    items = api.publications(store_of(ctx))
    emit(present.publications_json(items), present.publications_text(items), as_json)


@cli.command()
@click.argument("accounts", nargs=-1)
@click.option("--accounts-file", type=click.File("r"), help="A file of account ids, one per line.")
@click.option("--restated", is_flag=True, help="Show the latest publication of each period.")
@click.option("--as-of", "as_of", default=None, help="Show what was on display at this instant.")
@json_option
@click.pass_context
def history(ctx: click.Context, accounts: tuple[str, ...], accounts_file, restated: bool, as_of: str | None,
            as_json: bool) -> None:
    """Score history of ACCOUNT(s) per period: as originally published (default), as restated, or
    as it was on display at an instant. `*` marks where the algorithm changed.

    \b
    Example:
        audit history 88
        audit history 88 14454 --restated
        audit history --accounts-file ids.txt --json
    """
    wanted = _account_ids(accounts, accounts_file)
    if not wanted:
        raise click.UsageError("give at least one ACCOUNT or --accounts-file")
    df = api.history(store_of(ctx), wanted, restated=restated, as_of=as_of)
    emit(present.history_json(df), present.history_text(df), as_json)
    if not as_json:
        emit_text("\n".join(present.missing_warnings(wanted, df["account_id"].to_list(), "has no published score")),
                  err=True)


def _segments(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise click.BadParameter(f"{item!r} is not NAME=EXPR", param_hint="--segment")
        out[name.strip()] = expr.strip()
    return out


@cli.command()
@click.argument("baseline")
@click.argument("candidate")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Risers and fallers to list.")
@click.option("--segment", "segment_items", multiple=True, metavar="NAME=EXPR",
              help="An extra segment: a DuckDB SQL expression over received, given, distinct_engagers, "
                   "followers, age_days (repeatable).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when any score differs, 0 when none.")
@json_option
@click.pass_context
def compare(ctx: click.Context, baseline: str, candidate: str, top: int, segment_items: tuple[str, ...],
            exit_code: bool, as_json: bool) -> None:
    """Compare run CANDIDATE against run BASELINE: coverage, score deltas, rank agreement
    (Spearman, Kendall tau-b, rank-biased overlap, top-k overlap), band migration, who pays by
    segment, the top movers, and what changed in the algorithm.

    \b
    Example:
        audit compare r_1a2b r_3c4d --top 10
        audit compare r_1a2b r_3c4d --segment "heavy=CASE WHEN received >= 100 THEN 'heavy' ELSE 'light' END"
    """
    result = api.compare(store_of(ctx), baseline, candidate, top=top, segments=_segments(segment_items))
    emit(present.comparison_json(result), present.comparison_text(result), as_json)
    if exit_code and result.any_difference:
        sys.exit(1)


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
    _written(out, render_account(api.account_statement(store_of(ctx), account, now=_now())), as_json)


@cli.command()
@click.argument("account")
@click.option("--from", "from_run", required=True, help="The baseline run (id or prefix).")
@click.option("--to", "to_run", required=True, help="The candidate run (id or prefix).")
@json_option
@click.pass_context
def explain(ctx: click.Context, account: str, from_run: str, to_run: str, as_json: bool) -> None:
    """Explain ACCOUNT's score change between two runs: own activity, everyone else, and the
    algorithm, with at most four ranked reasons and the engagers behind it.

    When both the snapshot and the algorithm differ, the counterfactual runs are computed and
    stored first (marked counterfactual); explaining the same change again reuses them.

    \b
    Example:
        audit explain 88 --from r_1a2b --to r_3c4d
    """
    progress = steps()
    e = api.explain(store_of(ctx), account, from_run=from_run, to_run=to_run, now=_now(), step=progress)
    progress.done()
    emit(present.explanation_json(e), present.explanation_text(e), as_json)


@cli.command()
@click.option("--rerun", is_flag=True, help="Also re-execute every run from stored inputs and stored source.")
@json_option
@click.pass_context
def verify(ctx: click.Context, rerun: bool, as_json: bool) -> None:
    """Walk the hash-chained log and recompute every record's content hash; exit 1 on a difference.

    \b
    Example:
        audit verify --rerun
    """
    progress = steps()
    result = api.verify(store_of(ctx), rerun=rerun, step=progress)
    progress.done()
    emit(present.verification_json(result), present.verification_text(result, rerun=rerun), as_json)
    if not result.ok:
        sys.exit(1)


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

    from .present.demo import demo_json, demo_text
    store, folder = store_of(ctx), Path(out)
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    progress = Steps(True)
    result = api.run_demo(store, folder, _now, step=progress)
    reports = {"transparency": folder / "transparency.html", "compare": folder / "compare.html",
               "account": folder / f"account-{result.account}.html"}
    progress("report: transparency (verifies the log and re-runs every run)")
    write_report(reports["transparency"], render_transparency(api.transparency(store)))
    progress("report: compare")
    b, c = result.runs["activity@1"][-1], result.runs["network@2"][-1]
    write_report(reports["compare"], render_compare(api.compare(store, b, c)))
    progress(f"report: account {result.account}")
    write_report(reports["account"], render_account(api.account_statement(store, result.account, now=_now())))
    progress.done()
    result.reports = {k: str(v) for k, v in reports.items()}
    emit(demo_json(result), demo_text(result), as_json)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the one place an AuditError becomes a message on stderr and exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = False
    try:
        with cli.make_context("audit", args) as ctx:
            debug = bool(ctx.params.get("debug"))
            cli.invoke(ctx)
    except AuditError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
