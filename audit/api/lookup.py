"""Facade: the published score of an account with its day / week / month change, and the bulk
lookup of many accounts by id or `@handle`.

Both read through a ScoreSource: the publications and the ranked scores of a run. By default
that is the store itself (SQL per question); the service passes its in-memory copy of the same
records (`audit.server.cache`). Runs and publications are never changed, so both give the same
answer; a test holds them equal.

Which publication answers: by default the one on display now (the latest publication of the
latest period, as restated); with `release` (name@version) the latest period that release was
published for; with `run`, that run (its period when it was published). A change compares with
the latest period of the same view whose snapshot is at least 1, 7 or 30 days older.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, NamedTuple, Protocol

import duckdb

from ..errors import NotFound
from ..records import accounts as accts
from ..records import publications as pubs
from ..records import runs as runs_
from ..records import snapshots as snaps
from ..records.accounts import Holder, Resolution
from ..records.publications import Point
from ._store import Store, lazily

HORIZONS = (("day", 1), ("week", 7), ("month", 30))


class ScoreSource(Protocol):
    """Where published scores are read from: the store, or the service's memory."""

    def points(self) -> list[Point]:
        """Every publication, in the order they were made (`publications.points`)."""

    def ranked(self, run_id: str, accounts: list[str]) -> list[tuple[str, float, float, int]]:
        """(account_id, score, raw, rank) of those accounts with a score in the run, by account id."""

    def handles(self, accounts: list[str]) -> dict[str, str]:
        """The handle of each of those accounts that has one (`accounts.handles`)."""


class StoreScores:
    """The ScoreSource of an open store connection: every question is SQL."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.ranked = pubs.ranked_in_store(con)

    def points(self) -> list[Point]:
        return pubs.points(self.con)

    def handles(self, accounts: list[str]) -> dict[str, str]:
        return accts.handles(self.con, accounts)


class TopicScores:
    """The ScoreSource of one topic: the publications of topic runs, ranks within the topic."""

    def __init__(self, con: duckdb.DuckDBPyConnection, topic: str) -> None:
        self.con = con
        self.ranked = pubs.ranked_in_store(con, topic)

    def points(self) -> list[Point]:
        return pubs.points(self.con, topical=True)


def _source(con: Callable[[], duckdb.DuckDBPyConnection], source: ScoreSource | None, run: str | None,
            topic: str | None) -> ScoreSource:
    """Where the scores are read: one topic's (checked against RUN when given), or the published ones."""
    if run is not None:
        from .topics import check_topic
        check_topic(con(), runs_.resolve(con(), run), topic)
    return TopicScores(con(), topic) if topic is not None else source or StoreScores(con())


@dataclass(frozen=True)
class Change:
    """The score of an earlier period of the same view, and the change since."""
    period: str
    run_id: str
    as_of: datetime
    score: float
    change: float                       # current score - this score


@dataclass(frozen=True)
class ScoreCard:
    """One account's score in one run, with its rank and its change since a day, week and month."""
    account_id: str
    score: float
    raw: float
    rank: int
    run_id: str
    algorithm: str
    as_of: datetime
    period: str | None                  # None: the run was never published
    publication_id: str | None
    published_at: datetime | None
    changes: dict[str, Change | None]   # day, week, month; None where no earlier period has a score


class LookupRow(NamedTuple):            # a tuple: a bulk lookup makes thousands
    ref: str                            # as asked: an id or @handle
    account_id: str
    score: float
    raw: float
    rank: int


@dataclass(frozen=True)
class Lookup:
    """Many accounts' scores in one run; references that name no scored account listed apart."""
    run_id: str
    algorithm: str
    as_of: datetime
    period: str | None
    publication_id: str | None
    rows: tuple[LookupRow, ...]
    unknown: tuple[str, ...]                                 # no such handle, or no score in the run
    ambiguous: tuple[tuple[str, tuple[Holder, ...]], ...]    # handles several accounts held


@dataclass(frozen=True)
class _Target:
    run_id: str
    algorithm: str
    as_of: datetime
    point: Point | None
    view: list[Point]                   # the periods of its view, oldest first


def _published_labels(points: list[Point]) -> str:
    return ", ".join(sorted({p.algorithm for p in points})) or "none"


def _target(source: ScoreSource, con: Callable[[], duckdb.DuckDBPyConnection], release: str | None,
            run: str | None) -> _Target:
    """The run that answers, its publication, and the view its changes are measured in."""
    points = source.points()
    if run is not None:
        r = runs_.resolve(con(), run)
        view = [p for p, _ in pubs.shown(points, latest=True, release=r.algorithm)]
        mine = [p for p in points if p.run_id == r.run_id]
        return _Target(r.run_id, r.algorithm, snaps.get(con(), r.snapshot_id).as_of, mine[-1] if mine else None,
                       view)
    view = [p for p, _ in pubs.shown(points, latest=True, release=release)]
    if not view:
        if release is not None:
            raise NotFound(f'release "{release}" was never published; published: {_published_labels(points)}')
        raise NotFound('nothing is published yet; "audit publish RUN --period P" publishes a run')
    last = view[-1]
    return _Target(last.run_id, last.algorithm, last.as_of, last, view)


def _where(t: _Target) -> str:
    return f"run {t.run_id} ({t.algorithm}" + (f", period {t.point.period})" if t.point else ", not published)")


def account_score(store: Store, account: str, *, release: str | None = None, run: str | None = None,
                  source: ScoreSource | None = None, topic: str | None = None) -> ScoreCard:
    """ACCOUNT's (id or @handle) score, raw, rank, run and period, with the change since the
    previous published day, week and month (in one topic, from the topic runs, with `topic`)."""
    with lazily(store) as con:
        src = _source(con, source, run, topic)
        account_id = accts.resolve_one(con(), account) if accts.is_handle(account) else account
        t = _target(src, con, release, run)
        hit = src.ranked(t.run_id, [account_id])
        if not hit:
            raise NotFound(f'account "{account}" has no score in {_where(t)}')
        _, score, raw, rank = hit[0]
        changes: dict[str, Change | None] = {}
        for name, days in HORIZONS:
            earlier = [p for p in t.view if p.as_of <= t.as_of - timedelta(days=days)]
            before = src.ranked(earlier[-1].run_id, [account_id]) if earlier else []
            changes[name] = None if not before else Change(
                earlier[-1].period, earlier[-1].run_id, earlier[-1].as_of, before[0][1], round(score - before[0][1], 9))
    p = t.point
    return ScoreCard(account_id, score, raw, rank, t.run_id, t.algorithm, t.as_of, p.period if p else None,
                     p.publication_id if p else None, p.published_at if p else None, changes)


def lookup_scores(store: Store, refs: list[str], *, release: str | None = None, run: str | None = None,
                  source: ScoreSource | None = None, topic: str | None = None) -> Lookup:
    """Scores of many accounts (ids or @handles) in one run (in one topic, with `topic`); unknown and
    ambiguous ones apart, never an error for the whole call."""
    with lazily(store) as con:
        src = _source(con, source, run, topic)
        t = _target(src, con, release, run)
        if any(accts.is_handle(r) for r in refs):
            res = accts.resolve(con(), refs)
        else:
            unique = tuple(dict.fromkeys(refs))
            res = Resolution(tuple(zip(unique, unique)), (), ())
        found = {hit[0]: hit for hit in src.ranked(t.run_id, res.ids)}
    row = tuple.__new__                 # LookupRow without its Python __new__: thousands per call
    rows = tuple(row(LookupRow, (ref, *found[a])) for ref, a in res.accounts if a in found)
    missing = {ref for ref, a in res.accounts if a not in found} | set(res.unknown)
    unknown = tuple(r for r in dict.fromkeys(refs) if r in missing) if missing else ()
    p = t.point
    return Lookup(t.run_id, t.algorithm, t.as_of, p.period if p else None, p.publication_id if p else None,
                  rows, unknown, res.ambiguous)
