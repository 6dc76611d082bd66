"""Page context of the store index (the service's `/`): the releases, publications, runs and
snapshots the store holds, with links to the transparency report, the comparisons of the runs
of each snapshot, and any account's statement (a form: no script needed).

Invariant: computed only from the overview it is given, in its listing order.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .svg import say
from .widgets import Stat

if TYPE_CHECKING:
    from audit.api.reports import StoreOverview


@dataclass(frozen=True)
class ReleaseRow:
    algorithm: str
    changelog: str
    periods: int
    first_period: str
    last_period: str
    latest_run: str


@dataclass(frozen=True)
class PublicationRow:
    period: str
    run_id: str
    algorithm: str
    published_at: datetime
    restates: str | None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    snapshot: str
    algorithm: str
    accounts: int
    counterfactual: bool


@dataclass(frozen=True)
class CompareLink:
    snapshot: str
    baseline: str
    baseline_algorithm: str
    candidate: str
    candidate_algorithm: str


@dataclass(frozen=True)
class SnapshotRow:
    snapshot_id: str
    label: str
    as_of: datetime
    window: str
    interactions: int
    accounts: int


@dataclass(frozen=True)
class IndexPage:
    title: str
    summary: tuple[Stat, ...]
    releases: tuple[ReleaseRow, ...]
    publications: tuple[PublicationRow, ...]
    runs: tuple[RunRow, ...]
    compares: tuple[CompareLink, ...]
    snapshots: tuple[SnapshotRow, ...]
    entries: int
    head: str


def _window(seconds: int | None) -> str:
    if seconds is None:
        return "all"
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h" if seconds % 3600 == 0 \
        else f"{seconds}s"


def index_page(o: StoreOverview) -> IndexPage:
    """The index's context: releases in the order first published, the rest in listing order."""
    labels = {s.snapshot_id: s.label or s.snapshot_id for s in o.snapshots}
    changelog = {a.label: a.changelog for a in o.algorithms}
    releases: dict[str, list] = {}
    for p in o.publications:
        releases.setdefault(p.algorithm, []).append(p)
    release_rows = tuple(ReleaseRow(name, changelog.get(name, ""), len({p.period for p in ps}),
                                    min(ps, key=lambda p: (p.as_of, p.period)).period,
                                    max(ps, key=lambda p: (p.as_of, p.period)).period,
                                    max(ps, key=lambda p: (p.as_of, p.period, p.published_at)).run_id)
                         for name, ps in releases.items())
    by_snapshot: dict[str, list] = {}
    for r in o.runs:
        if not r.counterfactual:
            by_snapshot.setdefault(r.snapshot_id, []).append(r)
    compares = tuple(CompareLink(labels.get(sid, sid), a.run_id, a.algorithm, b.run_id, b.algorithm)
                     for sid, rs in by_snapshot.items() for a, b in zip(rs, rs[1:]))
    summary = (Stat("Published versions", say((len(release_rows), "count"))),
               Stat("Publications", say((len(o.publications), "count")),
                    say((sum(p.restates is not None for p in o.publications), "count"), " restatements")),
               Stat("Runs", say((len(o.runs), "count")),
                    say((sum(r.counterfactual for r in o.runs), "count"), " counterfactual")),
               Stat("Snapshots", say((len(o.snapshots), "count"))),
               Stat("Log entries", say((o.entries, "count"))))
    return IndexPage(
        "Score audit: this store", summary, release_rows,
        tuple(PublicationRow(p.period, p.run_id, p.algorithm, p.published_at, p.restates)
              for p in reversed(o.publications)),
        tuple(RunRow(r.run_id, labels.get(r.snapshot_id, r.snapshot_id), r.algorithm, r.accounts, r.counterfactual)
              for r in o.runs),
        compares,
        tuple(SnapshotRow(s.snapshot_id, s.label or "", s.as_of, _window(s.window_seconds), s.interactions,
                          s.accounts) for s in o.snapshots),
        o.entries, o.head)


@dataclass(frozen=True)
class MessagePage:
    """A page that only says something: an error, with what to do next."""
    title: str
    message: str
    status: int


@dataclass(frozen=True)
class Param:
    name: str
    where: str
    required: bool
    description: str


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    description: str
    params: tuple[Param, ...]


@dataclass(frozen=True)
class DocsPage:
    title: str
    version: str
    endpoints: tuple[Endpoint, ...]


def docs_page(openapi: dict) -> DocsPage:
    """The endpoints of an OpenAPI document, JSON API first, each path's methods in a fixed order."""
    order = {"get": 0, "post": 1}
    endpoints = []
    for path, methods in sorted(openapi.get("paths", {}).items(), key=lambda kv: (not kv[0].startswith("/api"), kv[0])):
        for method, op in sorted(methods.items(), key=lambda kv: order.get(kv[0], 9)):
            params = tuple(Param(p["name"], p["in"], bool(p.get("required")), p.get("description", ""))
                           for p in op.get("parameters", []))
            endpoints.append(Endpoint(method.upper(), path, op.get("summary", ""), op.get("description", ""), params))
    info = openapi.get("info", {})
    return DocsPage(info.get("title", "API"), info.get("version", ""), tuple(endpoints))
