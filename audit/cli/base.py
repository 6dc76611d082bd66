"""What every command shares: the `audit` group and its options, printing, progress, and `main`,
the one place an AuditError becomes a message on stderr and exit 2."""
from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import click

from .. import present
from ..errors import AuditError


def now_utc() -> datetime:
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
topic_option = click.option("--topic", default=None, metavar="T",
                            help="A topic of a topic run (e.g. of topics@1): its scores, ranked within the topic.")


class AuditGroup(click.Group):
    """The `audit` group: its own options (--store, --debug) may also come after the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        front, rest, i = [], [], 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rest += args[i:]
                break
            if arg == "--store" and i + 1 < len(args):
                front += args[i:i + 2]
                i += 2
                continue
            (front if arg == "--debug" or arg.startswith("--store=") else rest).append(arg)
            i += 1
        return super().parse_args(ctx, front + rest)


@click.group(cls=AuditGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--store", envvar="AUDIT_STORE", default="audit.duckdb", show_default=True,
              type=click.Path(dir_okay=False), help="The DuckDB store file (or set AUDIT_STORE); before or after the command.")
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


def listing(name: str, doc: str) -> click.Command:
    """A command that lists records: `audit NAME [--json]` prints api.NAME(store) as JSON
    (present.NAME_json) or text (present.NAME_text), looked up when the command runs."""
    @json_option
    @click.pass_context
    def command(ctx: click.Context, as_json: bool) -> None:
        from .. import api
        items = getattr(api, name)(store_of(ctx))
        emit(getattr(present, f"{name}_json")(items), getattr(present, f"{name}_text")(items), as_json)
    command.__doc__ = doc
    return cli.command(name)(command)


def store_of(ctx: click.Context) -> str:
    return ctx.obj["store"]


def account_ids(accounts: tuple[str, ...], accounts_file) -> list[str]:
    """Accounts given as arguments or options, then those of --accounts-file (one per line)."""
    return list(accounts) + ([line.strip() for line in accounts_file if line.strip()] if accounts_file else [])


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
