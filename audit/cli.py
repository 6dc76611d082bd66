"""The command line: each command parses, calls one api function, prints. Errors are turned
into messages in one place (`main`)."""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Any

import click

from . import api
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
@json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Walk the hash-chained log and recompute every record's content hash; exit 1 on a difference.

    \b
    Example:
        audit verify
    """
    result = api.verify(store_of(ctx))
    if as_json:
        emit_json({"ok": result.ok, "entries": result.entries, "head": result.head,
                   "problems": result.problems, "reran": result.reran, "notes": result.notes})
    else:
        for p in result.problems:
            where = f"log entry {p['seq']}: " if p["seq"] is not None else ""
            click.echo(f"FAIL {where}{p['problem']}")
        status = "ok" if result.ok else f"{len(result.problems)} problem(s)"
        click.echo(f"{status}: {result.entries:,} log entries checked, head {result.head[:16]}")
    if not result.ok:
        sys.exit(1)


def main() -> None:
    """Entry point: the one place an AuditError becomes a message on stderr and exit 2."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except AuditError as exc:
        if debug:
            raise
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
