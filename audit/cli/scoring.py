"""Commands about algorithm versions, runs, scores, publications and history."""
from __future__ import annotations

import click

from .. import api, present
from .base import (
    account_ids,
    cli,
    emit,
    emit_json,
    emit_text,
    json_option,
    listing,
    now_utc,
    steps,
    store_of,
    topic_option,
)


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
    algo, new = api.register(store_of(ctx), path, now=now_utc())
    emit(present.registered_json(algo, new), present.registered_text(algo, new), as_json)


list_algorithms = listing(
    "algorithms",
    """List registered algorithm versions with their parameters.

    Shipped versions (activity@1, activity@2, network@2, network@3) are registered the first time they
    score.

    \b
    Example:
        audit algorithms --json
    """)


@cli.command()
@click.argument("snapshot")
@click.argument("algorithm")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: polars, numpy, scipy in this process (the reference); spark: the version's "
                   "compute_spark on Apache Spark.")
@click.option("--master", default=None, help="Spark master: local[2] (default), spark://HOST:7077 or yarn.")
@click.option("--conf", "conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeat for many).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the Parquet exports Spark reads (default: <store name>-parquet beside the store).")
@json_option
@click.pass_context
def score(ctx: click.Context, snapshot: str, algorithm: str, engine: str, master: str | None,
          conf: tuple[str, ...], data_dir: str | None, as_json: bool) -> None:
    """Score SNAPSHOT (id, prefix or `latest`) with ALGORITHM (NAME@VERSION) and store the run.

    Scoring the same snapshot with the same version on the same engine again returns the stored
    run. A Spark run gives the same scores as a local run (README, "Scaling out").

    \b
    Example:
        audit score latest network@3
        audit score latest network@3 --engine spark --master local[2]
    """
    progress = steps()
    progress(f"scoring {snapshot} with {algorithm}" + (f" on {engine}" if engine != "local" else ""))
    run = api.score(store_of(ctx), snapshot, algorithm, now=now_utc(), engine=engine, master=master,
                    conf=conf, data_dir=data_dir)
    progress.done()
    emit(present.scored_json(run), present.scored_text(run), as_json)


@cli.command("runs")
@click.argument("run", required=False)
@json_option
@click.pass_context
def list_runs(ctx: click.Context, run: str | None, as_json: bool) -> None:
    """List runs by snapshot as-of, then algorithm; or show one RUN (id or prefix).

    \b
    Example:
        audit runs --json
        audit runs r_1a2b
    """
    items = [api.get_run(store_of(ctx), run)] if run else api.runs(store_of(ctx))
    if run and as_json:
        emit_json(present.run_json(items[0]))
    else:
        emit(present.runs_json(items), present.runs_text(items), as_json)


@cli.command("scores")
@click.argument("run")
@click.option("--account", "accounts", multiple=True, help="An account to show (repeat for many).")
@click.option("--accounts-file", type=click.File("r"), help="A file of account ids, one per line.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Only the N best.")
@topic_option
@json_option
@click.pass_context
def list_scores(ctx: click.Context, run: str, accounts: tuple[str, ...], accounts_file, top: int | None,
                topic: str | None, as_json: bool) -> None:
    """Show scores of RUN with rank and components, best first (of one topic of a topic run, with
    --topic: a topic's leaders).

    \b
    Example:
        audit scores r_1a2b --top 10
        audit scores r_1a2b --account 88 --account 14454
        audit scores r_5e6f --topic cryptography --top 5
    """
    wanted = account_ids(accounts, accounts_file)
    df = api.scores(store_of(ctx), run, accounts=wanted or None, top=top if top or wanted else 20, topic=topic)
    emit(present.scores_json(df), present.scores_text(df), as_json)
    emit_text("\n".join(present.missing_warnings(wanted, df, "is not in this run")), err=True)


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
    pub = api.publish(store_of(ctx), run, period=period, now=now_utc())
    emit(present.published_json(pub), present.published_text(pub), as_json)


list_publications = listing(
    "publications",
    """List publications in the order they were made.

    \b
    Example:
        audit publications
    """)


@cli.command()
@click.argument("accounts", nargs=-1)
@click.option("--accounts-file", type=click.File("r"), help="A file of account ids, one per line.")
@click.option("--restated", is_flag=True, help="Show the latest publication of each period.")
@click.option("--as-of", "as_of", default=None,
              help="Show what was on display at this instant: a publication instant (when scores were "
                   "published, see `audit publications`), not the date of the data; a bare date means its end.")
@topic_option
@json_option
@click.pass_context
def history(ctx: click.Context, accounts: tuple[str, ...], accounts_file, restated: bool, as_of: str | None,
            topic: str | None, as_json: bool) -> None:
    """Score history of ACCOUNT(s) per period: as originally published (default), as restated, or
    as it was on display at an instant. `*` marks where the algorithm changed; "superseded" marks a
    score a later publication replaced, "restatement" a score that replaced an earlier one.

    \b
    Example:
        audit history 88
        audit history 88 14454 --restated
        audit history --accounts-file ids.txt --json
    """
    wanted = account_ids(accounts, accounts_file)
    if not wanted:
        raise click.UsageError("give at least one ACCOUNT or --accounts-file")
    df = api.history(store_of(ctx), wanted, restated=restated, as_of=as_of, topic=topic)
    emit(present.history_json(df), present.history_text(df), as_json)
    if not as_json:
        where = "has no published score" if as_of is None else f"had no published score on display at {as_of}"
        emit_text("\n".join(present.missing_warnings(wanted, df, where)), err=True)


release_option = click.option("--release", default=None, metavar="NAME@VERSION",
                              help="The latest period this published version was published for.")
run_option = click.option("--run", default=None, help="This run (id or prefix) instead of a publication.")


@cli.command("account")
@click.argument("account")
@release_option
@run_option
@topic_option
@json_option
@click.pass_context
def account_score(ctx: click.Context, account: str, release: str | None, run: str | None, topic: str | None,
                  as_json: bool) -> None:
    """The published score of ACCOUNT (id or @handle): score, raw, rank, run and period, and the
    change since the previous published day, week and month. By default the score on display
    now (the latest period, as restated).

    \b
    Example:
        audit account 88
        audit account @Taryn --release network@2 --json
    """
    if release and run:
        raise click.UsageError("give --release or --run, not both")
    card = api.account_score(store_of(ctx), account, release=release, run=run, topic=topic)
    emit(present.score_card_json(card), present.score_card_text(card), as_json)


@cli.command("lookup")
@click.argument("accounts", nargs=-1)
@click.option("--accounts-file", type=click.File("r"), help="A file of account ids or @handles, one per line.")
@release_option
@run_option
@topic_option
@json_option
@click.pass_context
def lookup(ctx: click.Context, accounts: tuple[str, ...], accounts_file, release: str | None, run: str | None,
           topic: str | None, as_json: bool) -> None:
    """Scores of many ACCOUNTS (ids or @handles) at once, from the publication on display now (or
    --release, --run); unknown ones and handles held by several accounts are listed apart.

    \b
    Example:
        audit lookup 88 14454 @Taryn
        audit lookup --accounts-file ids.txt --release network@2 --json
    """
    if release and run:
        raise click.UsageError("give --release or --run, not both")
    wanted = account_ids(accounts, accounts_file)
    if not wanted:
        raise click.UsageError("give at least one ACCOUNT or --accounts-file")
    result = api.lookup_scores(store_of(ctx), wanted, release=release, run=run, topic=topic)
    emit(present.lookup_json(result), present.lookup_text(result), as_json)
