"""Commands about topics and influence: an account's topics, its influencers and influencees (and
the view relative to it), and who among its engagers matters."""
from __future__ import annotations

import click

from .. import api, present
from .base import cli, emit, json_option, store_of, topic_option


@cli.command("topics")
@click.argument("account")
@click.option("--run", default=None, help="A topic run (id or prefix); default: the topic run on display now.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Only its N best topics.")
@json_option
@click.pass_context
def topics(ctx: click.Context, account: str, run: str | None, top: int | None, as_json: bool) -> None:
    """ACCOUNT's (id or @handle) topics in a topic run, best first, with its score and rank in each.

    \b
    Example:
        audit score latest topics@1
        audit topics @Craig --run r_5e6f
    """
    result = api.account_topics(store_of(ctx), account, run=run, top=top)
    emit(present.account_topics_json(result), present.account_topics_text(result), as_json)


@cli.command("influence")
@click.argument("account")
@click.option("--run", required=True, help="The run (id or prefix).")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="How many of each to list.")
@click.option("--relative", is_flag=True,
              help="Also rank the accounts by PageRank personalised to ACCOUNT (teleport to it alone).")
@topic_option
@json_option
@click.pass_context
def influence(ctx: click.Context, account: str, run: str, top: int, relative: bool, topic: str | None,
              as_json: bool) -> None:
    """ACCOUNT's influencers (whose engagement adds most to its score, in points) and influencees
    (whose score it adds most to), from the run's own version; with --relative, the accounts that
    matter most relative to ACCOUNT.

    \b
    Example:
        audit influence 1837 --run r_9cef --top 5
        audit influence @Craig --run r_5e6f --topic cryptography --relative
    """
    result = api.influence(store_of(ctx), account, run=run, top=top, relative=relative, topic=topic)
    emit(present.influence_json(result), present.influence_text(result), as_json)


@cli.command("engagers")
@click.argument("account")
@click.option("--run", default=None, help="The run whose scores rank the engagers (default: the one on display now).")
@click.option("--since", default=None, help="Only engagements at or after this instant (a bare date: its start).")
@click.option("--min-score", type=float, default=None, help="Engagers scoring at least this are alerts.")
@topic_option
@json_option
@click.pass_context
def engagers(ctx: click.Context, account: str, run: str | None, since: str | None, min_score: float | None,
             topic: str | None, as_json: bool) -> None:
    """Every account that engaged ACCOUNT in the run's snapshot window: its score and rank, its
    interactions by kind, first and last time, and `new` when it did not engage ACCOUNT in the
    previous snapshot of the same window. Those at or above --min-score are the alerts (!).

    \b
    Example:
        audit engagers 1837 --min-score 40
        audit engagers @Craig --run r_9cef --since 2018-08-01 --json
    """
    result = api.engagers(store_of(ctx), account, run=run, since=since, min_score=min_score, topic=topic)
    emit(present.engagers_json(result), present.engagers_text(result), as_json)
