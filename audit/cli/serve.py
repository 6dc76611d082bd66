"""`audit serve`: the HTTP service over the store (see audit.server)."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import AuditError
from .base import cli, store_of


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="The port.")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A file whose first line is the bearer token of write jobs; without it, writes are refused.")
@click.option("--ingest-root", type=click.Path(file_okay=False, exists=True), default=None,
              help="A folder whose files ingest jobs may name by path (uploads need none).")
@click.option("--cache-runs", type=click.IntRange(min=1), default=16, show_default=True,
              help="Runs whose scores are held in memory at once.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token_file: str | None, ingest_root: str | None,
          cache_runs: int) -> None:
    """Serve the store over HTTP: the JSON API under /api/v1 (the same answers as --json), the
    web pages (/, /transparency, /accounts/REF, /compare/A/B), and write jobs behind a token.
    This process holds the store: other audit commands on it are refused and name this address.

    \b
    Example:
        audit --store out/demo.duckdb serve --port 8000 --token-file ~/.audit-token
    """
    from ..server import Settings
    from ..server import serve as run
    from ..server.guards import read_token
    try:
        token = read_token(token_file) if token_file else None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuditError(str(exc)) from None
    settings = Settings(token=token, ingest_root=Path(ingest_root) if ingest_root else None, cache_runs=cache_runs)
    click.echo(f"audit: serving {store_of(ctx)} at http://{host}:{port} "
               f"(writes {'need the token' if token else 'disabled: no --token-file'}); Ctrl-C stops", err=True)
    run(store_of(ctx), host=host, port=port, settings=settings)
