"""Commands that analyse: compare two runs, explain a change, verify the store."""
from __future__ import annotations

import sys

import click

from .. import api, present
from .base import cli, emit, json_option, now_utc, steps, store_of, topic_option


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
@topic_option
@json_option
@click.pass_context
def compare(ctx: click.Context, baseline: str, candidate: str, top: int, segment_items: tuple[str, ...],
            exit_code: bool, topic: str | None, as_json: bool) -> None:
    """Compare run CANDIDATE against run BASELINE: coverage, score deltas, rank agreement
    (Spearman, Kendall tau-b, rank-biased overlap, top-k overlap), band migration, who pays by
    segment, the top movers, and what changed in the algorithm.

    \b
    Example:
        audit compare r_1a2b r_3c4d --top 10
        audit compare r_1a2b r_3c4d --segment "heavy=CASE WHEN received >= 100 THEN 'heavy' ELSE 'light' END"
    """
    result = api.compare(store_of(ctx), baseline, candidate, top=top, segments=_segments(segment_items),
                         topic=topic, now=now_utc())
    emit(present.comparison_json(result), present.comparison_text(result), as_json)
    if exit_code and result.any_difference:
        sys.exit(1)


@cli.command()
@click.argument("account")
@click.option("--from", "from_run", required=True, help="The baseline run (id or prefix) or published period.")
@click.option("--to", "to_run", required=True, help="The candidate run (id or prefix) or published period.")
@click.option("--release", default=None, metavar="NAME@VERSION",
              help="--from and --to are periods this published version was published for.")
@topic_option
@json_option
@click.pass_context
def explain(ctx: click.Context, account: str, from_run: str, to_run: str, release: str | None,
            topic: str | None, as_json: bool) -> None:
    """Explain ACCOUNT's (id or @handle) score change between two runs, or two published periods
    (the run on display for each): own activity, everyone else, and the algorithm, with at most
    four ranked reasons and the engagers behind it.

    When both the snapshot and the algorithm differ, the counterfactual runs are computed and
    stored first (marked counterfactual); explaining the same change again reuses them.

    \b
    Example:
        audit explain 88 --from r_1a2b --to r_3c4d
        audit explain 88 --from 2012-07-06 --to 2012-07-07 --release network@2
    """
    progress = steps()
    e = api.explain(store_of(ctx), account, from_run=from_run, to_run=to_run, now=now_utc(), step=progress,
                    release=release, topic=topic)
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
