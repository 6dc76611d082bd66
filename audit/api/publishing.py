"""Facade: publications and score history."""
from __future__ import annotations

from datetime import datetime

import polars as pl

from ..records import accounts as accts
from ..records import publications as pubs
from ..records import runs as runs_
from ..records import snapshots as snaps
from ..records.publications import Publication
from ._store import Store, lazily, reading, writing
from .lookup import ScoreSource, StoreScores


def publish(store: Store, run: str, *, period: str, now: datetime) -> Publication:
    """Publish RUN for PERIOD; a period that already has a publication gets a restatement beside it."""
    with writing(store) as con:
        return pubs.publish(con, runs_.resolve(con, run).run_id, period, now)


def publications(store: Store) -> list[Publication]:
    """Every publication, in the order they were made."""
    with reading(store) as con:
        return pubs.list_all(con)


def history(store: Store, accounts: str | list[str], *, restated: bool = False,
            as_of: datetime | str | None = None, source: ScoreSource | None = None,
            topic: str | None = None) -> pl.DataFrame:
    """Score history of one or many accounts (ids or @handles): as published (default), as
    restated, or as of an instant. `source`: where published scores are read (default: the store).
    With `topic`: the account's score in that topic, from the publications of topic runs."""
    refs = [accounts] if isinstance(accounts, str) else list(accounts)
    instant = snaps.parse_instant(as_of) if isinstance(as_of, str) else as_of
    with lazily(store) as con:
        ids = [accts.resolve_one(con(), r) if accts.is_handle(r) else r for r in refs]
        if topic is not None:
            return pubs.history_frame(pubs.points(con(), topical=True), pubs.ranked_in_store(con(), topic), ids,
                                      restated=restated, as_of=instant)
        src = source or StoreScores(con())
        df = pubs.history_frame(src.points(), src.ranked, ids, restated=restated, as_of=instant)
        known = src.handles(list(dict.fromkeys(ids)))
        return df.with_columns(pl.Series("handle", [known.get(a) for a in df["account_id"].to_list()], pl.String))
