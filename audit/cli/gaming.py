"""The gaming audit command."""
from __future__ import annotations

import click

from .. import api, present
from ..detectors import DEFAULT
from .base import cli, emit, json_option, now_utc, steps, store_of


@cli.command()
@click.argument("run")
@click.option("--detector", default=DEFAULT, show_default=True, help="The detector version, NAME@VERSION.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Flagged accounts and groups to list in the text (--json lists all).")
@json_option
@click.pass_context
def gaming(ctx: click.Context, run: str, detector: str, top: int, as_json: bool) -> None:
    """Find score earned inside closed rings and from puppet accounts in RUN, in points.

    A stored detector version finds the groups; the same algorithm version then scores the same
    snapshot with the groups' interactions among themselves left out (a counterfactual run, stored),
    and each flagged account's points from its group are its score minus that score. The audit is
    stored (verify --rerun re-detects it); a second call returns it. Scores are never edited.

    \b
    Example:
        audit gaming r_1a2b
        audit gaming r_1a2b --json
    """
    progress = steps()
    result = api.gaming(store_of(ctx), run, detector=detector, now=now_utc(), step=progress)
    progress.done()
    emit(present.gaming_json(result), present.gaming_text(result, top=top), as_json)
