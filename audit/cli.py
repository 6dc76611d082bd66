"""The command line: each command parses, calls one api function, prints. Errors are turned
into messages in one place (`main`)."""
from __future__ import annotations

import json
import sys
import traceback
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import polars as pl

from . import api, present
from .errors import AuditError


def _now() -> datetime:
    return datetime.now(timezone.utc)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True, indent=2, default=str))


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
    if as_json:
        emit_json({"batch_id": result.batch_id, "rows": result.rows, "accounts": result.accounts,
                   "new": result.new, "format": result.format, "kind": result.batch_kind,
                   "warnings": result.warnings, "duplicates_of_stored": result.duplicates_of_stored})
        return
    what = "interactions" if result.batch_kind == "interactions" else "accounts"
    if not result.new:
        click.echo(f"already stored as batch {result.batch_id}: nothing new "
                   f"({result.rows:,} {what} from {result.path})")
        return
    among = f" among {result.accounts:,} accounts" if result.batch_kind == "interactions" else ""
    click.echo(f"stored batch {result.batch_id} ({result.format}): {result.rows:,} {what}{among}")
    for w in result.warnings:
        click.echo(f"warning: {w['text']}", err=True)


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
    if as_json:
        emit_json(_snapshot_json(snap) | {"new": snap.new})
        return
    verb = "created" if snap.new else "already exists:"
    click.echo(f"{verb} snapshot {snap.snapshot_id} as of {snap.as_of.isoformat()}"
               f"{' (' + _window(snap.window_seconds) + ' window)' if snap.window_seconds else ''}: "
               f"{snap.interactions:,} interactions, {snap.accounts:,} accounts")


def _window(seconds: int | None) -> str:
    if seconds is None:
        return "all"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _snapshot_json(s: api.Snapshot) -> dict:
    return {"snapshot_id": s.snapshot_id, "label": s.label, "as_of": s.as_of.isoformat(),
            "window": _window(s.window_seconds), "batches": list(s.batch_ids),
            "interactions": s.interactions, "accounts": s.accounts}


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
    if as_json:
        emit_json([_snapshot_json(s) for s in items])
        return
    if not items:
        click.echo('no snapshots yet; "audit snapshot --as-of DATE" creates one')
        return
    click.echo(f"{'snapshot':<15} {'as of':<26} {'window':>6} {'interactions':>12} {'accounts':>9}  label")
    for s in items:
        click.echo(f"{s.snapshot_id:<15} {s.as_of.isoformat():<26} {_window(s.window_seconds):>6} "
                   f"{s.interactions:>12,} {s.accounts:>9,}  {s.label or ''}")


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
    if as_json:
        emit_json({"algorithm_id": algo.algorithm_id, "name": algo.name, "version": algo.version, "new": new})
        return
    click.echo(f"{'registered' if new else 'already registered:'} {algo.label} as {algo.algorithm_id}")


def _algorithm_json(a: api.Algorithm) -> dict:
    return {"algorithm_id": a.algorithm_id, "name": a.name, "version": a.version, "params": a.params,
            "description": a.description, "changelog": a.changelog,
            "components": [c for c, _ in a.components], "source_sha256": a.source_sha256}


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
    if as_json:
        emit_json([_algorithm_json(a) for a in items])
        return
    if not items:
        click.echo('no algorithm registered yet; "audit score latest network@2" registers and runs a shipped one')
    for a in items:
        click.echo(f"{a.label:<14} {a.algorithm_id}  {a.changelog}")
        click.echo(f"{'':<14} params {json.dumps(a.params, sort_keys=True)}")


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
    if as_json:
        emit_json(_run_json(run) | {"new": run.new})
        return
    verb = "run" if run.new else "already scored: run"
    click.echo(f"{verb} {run.run_id}: {run.accounts:,} accounts of {run.snapshot_id} scored with "
               f"{run.algorithm} in {run.seconds:.2f}s (result {run.result_hash[:12]})")


def _run_json(r: api.Run) -> dict:
    return {"run_id": r.run_id, "snapshot_id": r.snapshot_id, "algorithm": r.algorithm,
            "algorithm_id": r.algorithm_id, "accounts": r.accounts, "result_hash": r.result_hash,
            "engines": r.engines, "seconds": r.seconds, "counterfactual": r.counterfactual}


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
    if as_json:
        emit_json([_run_json(r) for r in items])
        return
    if not items:
        click.echo('no runs yet; "audit score latest network@2" makes one')
        return
    click.echo(f"{'run':<15} {'snapshot':<15} {'algorithm':<12} {'accounts':>9} {'seconds':>8}  note")
    for r in items:
        click.echo(f"{r.run_id:<15} {r.snapshot_id:<15} {r.algorithm:<12} {r.accounts:>9,} {r.seconds:>8.2f}"
                   f"  {'counterfactual' if r.counterfactual else ''}")


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
    missing = sorted(set(wanted) - set(df["account_id"].to_list()))
    if as_json:
        emit_json(df.to_dicts())
    else:
        click.echo(df_text(df))
    for m in missing:
        click.echo(f"warning: account {m!r} is not in this run", err=True)


def _account_ids(accounts: tuple[str, ...], accounts_file) -> list[str]:
    """Accounts given as arguments or options, then those of --accounts-file (one per line)."""
    return list(accounts) + ([line.strip() for line in accounts_file if line.strip()] if accounts_file else [])


def df_text(df: pl.DataFrame) -> str:
    """A plain table: numbers right-aligned, floats with 4 significant decimals."""
    cols = df.columns
    cells = [[_cell(v) for v in row] for row in df.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


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
    if as_json:
        emit_json(_publication_json(pub) | {"new": pub.new})
        return
    if not pub.new:
        click.echo(f"already published: {pub.run_id} for {pub.period} ({pub.publication_id}); nothing new")
    elif pub.restates:
        click.echo(f"restated {pub.period}: {pub.publication_id} publishes {pub.run_id} beside {pub.restates}, "
                   "which stays as published")
    else:
        click.echo(f"published {pub.run_id} for {pub.period} as {pub.publication_id}")


def _publication_json(p: api.Publication) -> dict:
    return {"publication_id": p.publication_id, "run_id": p.run_id, "period": p.period,
            "restates": p.restates, "published_at": p.published_at.isoformat()}


@cli.command("publications")
@json_option
@click.pass_context
def list_publications(ctx: click.Context, as_json: bool) -> None:
    """List publications in the order they were made.

    \b
    Example:
        audit publications
    """
    items = api.publications_list(store_of(ctx))
    if as_json:
        emit_json([_publication_json(p) for p in items])
        return
    if not items:
        click.echo('nothing published yet; "audit publish RUN --period P" publishes a run')
    for p in items:
        note = f"restates {p.restates}" if p.restates else ""
        click.echo(f"{p.publication_id}  {p.period:<12} {p.run_id}  {p.published_at.isoformat()}  {note}")


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
    if as_json:
        emit_json([{**r, "published_at": r["published_at"].isoformat()} for r in df.to_dicts()])
        return
    for account, rows in df.group_by("account_id", maintain_order=True):
        click.echo(f"account {account[0]}")
        for r in rows.iter_rows(named=True):
            mark = "*" if r["algorithm_changed"] else " "
            note = "restated" if r["restated"] else ""
            click.echo(f"  {r['period']:<12} {r['score']:6.1f}  rank {r['rank']:>7,}  {mark}{r['algorithm']:<12} "
                       f"{r['run_id']}  {note}".rstrip())
    for m in sorted(set(wanted) - set(df["account_id"].to_list())):
        click.echo(f"warning: account {m!r} has no published score", err=True)


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
    from .textfmt_compare import comparison_to_dict, format_comparison
    result = api.compare(store_of(ctx), baseline, candidate, top=top, segments=_segments(segment_items))
    if as_json:
        emit_json(comparison_to_dict(result))
    else:
        click.echo(format_comparison(result))
    if exit_code and result.any_difference:
        sys.exit(1)


@cli.group()
def report() -> None:
    """Write an HTML report: transparency, compare, or account.

    \b
    Example:
        audit report transparency --out transparency.html
    """


def _written(path: str, html: str, as_json: bool) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = html.encode("utf-8")
    Path(path).write_bytes(data)
    if as_json:
        emit_json({"path": path, "bytes": len(data)})
    else:
        click.echo(f"wrote {path} ({len(data):,} bytes)")


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

    from .reporting import transparency
    _written(out, render_transparency(transparency(store_of(ctx), list(releases) or None)), as_json)


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

    from .reporting import account_statement
    _written(out, render_account(account_statement(store_of(ctx), account, now=_now())), as_json)


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
    if as_json:
        emit_json(present.explanation_to_dict(e))
    else:
        click.echo(present.explanation_text(e))


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
    if as_json:
        emit_json({"ok": result.ok, "entries": result.entries, "head": result.head,
                   "problems": result.problems, "reran": result.reran, "notes": result.notes})
    else:
        for p in result.problems:
            where = f"log entry {p['seq']}: " if p["seq"] is not None else ""
            click.echo(f"FAIL {where}{p['problem']}")
        for n in result.notes:
            click.echo(f"note: {n}")
        status = "ok" if result.ok else f"{len(result.problems)} problem(s)"
        reran = f", {result.reran} run(s) re-executed" if rerun else ""
        click.echo(f"{status}: {result.entries:,} log entries checked{reran}, head {result.head[:16]}")
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
    from .demo import run_demo
    store = store_of(ctx)
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    progress = Steps(True)
    result = run_demo(store, out, _now, step=progress)
    result.reports = _demo_reports(store, Path(out), result, progress)
    progress.done()
    e = result.explanation
    if as_json:
        emit_json({"store": result.store, "reports": result.reports, "account": result.account,
                   "snapshots": result.snapshots, "runs": result.runs})
        return
    click.echo(f"store: {result.store}")
    click.echo(f"{len(result.snapshots)} daily snapshots, {sum(len(v) for v in result.runs.values())} runs, "
               f"{result.publications} publications ({result.restatements} restatements)")
    if e is not None:
        click.echo(f"biggest drop: account {result.account} {e.baseline.score:.1f} ({e.baseline.algorithm}, "
                   f"{e.baseline.snapshot_label}) -> {e.candidate.score:.1f} ({e.candidate.algorithm}, "
                   f"{e.candidate.snapshot_label}): own activity {e.parts['own_activity']:+.1f}, everyone else "
                   f"{e.parts['population']:+.1f}, algorithm {e.parts['algorithm']:+.1f}")
        for r in e.reasons:
            click.echo(f"  - {r.text}")
    for name, path in sorted(result.reports.items()):
        click.echo(f"report {name}: {path}")


def _demo_reports(store: str, out: Path, result, step: Steps) -> dict[str, str]:
    """The demo's three reports (written here: rendering belongs to the CLI, not the library)."""
    from reports.render import render_account, render_compare, render_transparency

    from .reporting import account_statement, transparency
    paths = {"transparency": out / "transparency.html", "compare": out / "compare.html",
             "account": out / f"account-{result.account}.html"}
    step("report: transparency (verifies the log and re-runs every run)")
    paths["transparency"].write_text(render_transparency(transparency(store)), encoding="utf-8")
    step("report: compare")
    b, c = result.runs["activity@1"][-1], result.runs["network@2"][-1]
    paths["compare"].write_text(render_compare(api.compare(store, b, c)), encoding="utf-8")
    step(f"report: account {result.account}")
    paths["account"].write_text(render_account(account_statement(store, result.account, now=_now())),
                                encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}


def main() -> None:
    """Entry point: the one place an AuditError becomes a message on stderr and exit 2."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
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
