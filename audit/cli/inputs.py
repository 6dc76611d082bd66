"""Commands that store inputs: ingest a file, take a snapshot, list snapshots."""
from __future__ import annotations

import click

from .. import api, present
from .base import cli, emit, emit_text, json_option, listing, now_utc, steps, store_of


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
    result = api.ingest(store_of(ctx), path, now=now_utc(), fmt=fmt, kind=kind, step=progress)
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
    snap = api.snapshot(store_of(ctx), as_of=as_of, window=window, label=label, now=now_utc())
    emit(present.snapshot_created_json(snap), present.snapshot_text(snap), as_json)


list_snapshots = listing(
    "snapshots",
    """List the snapshots, oldest as-of first; the last is `latest`.

    \b
    Example:
        audit snapshots --json
    """)


@cli.group()
def export() -> None:
    """Write stored inputs out of the store (what --engine spark reads).

    \b
    Example:
        audit export snapshot latest --out exports
    """


@export.command("snapshot")
@click.argument("snapshot")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write into; the files go to OUT/<snapshot content hash>/.")
@json_option
@click.pass_context
def export_snapshot(ctx: click.Context, snapshot: str, out: str, as_json: bool) -> None:
    """Write SNAPSHOT's inputs as Parquet (interactions.parquet, accounts.parquet and a manifest
    with their sha256) to OUT/<snapshot content hash>/, as --engine spark does. Files already
    there are reused only when their recorded sha256 matches.

    \b
    Example:
        audit export snapshot latest --out exports
    """
    result = api.export_snapshot(store_of(ctx), snapshot, out)
    emit(present.export_json(result), present.export_text(result), as_json)
