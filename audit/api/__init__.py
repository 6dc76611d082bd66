"""The facade: every question a user can ask, as library functions that take the store (a path,
or the open connection of the process that owns it) and return result dataclasses and polars
frames. The CLI, the HTTP service and the report files all go through here; nothing below this
package imports it.

Writing functions take `now` (the caller's clock; the library never reads one) and run in one
transaction: a failure stores nothing.

Each name is loaded from its module on first use (PEP 562), so `from audit import api` costs
nothing and `api.scores(...)` imports only what scores need, not the analyses, scipy or
great-expectations.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# name -> the module (relative to this package) that defines it
_WHERE = {
    "Explanation": "..analysis.explain", "GamingAudit": "..analysis.gaming", "IngestResult": "..inputs.batches",
    "Step": "..progress", "quiet": "..progress", "Algorithm": "..records.algorithms", "Export": "..records.exports",
    "Publication": "..records.publications", "Run": "..records.runs", "Snapshot": "..records.snapshots",
    "Verification": "..records.verify", "Store": "._store",
    **dict.fromkeys(("compare", "explain", "verify"), ".analyses"),
    **dict.fromkeys(("DemoResult", "run_demo"), ".demo"),
    **dict.fromkeys(("gaming", "gaming_audits", "get_gaming"), ".gaming"),
    **dict.fromkeys(("export_snapshot", "get_snapshot", "ingest", "snapshot", "snapshots"), ".inputs"),
    **dict.fromkeys(("Change", "Lookup", "LookupRow", "ScoreCard", "ScoreSource", "StoreScores", "account_score",
                     "lookup_scores"), ".lookup"),
    **dict.fromkeys(("history", "publications", "publish"), ".publishing"),
    **dict.fromkeys(("AccountStatement", "StoreOverview", "TransparencyData", "account_statement",
                     "store_overview", "transparency"), ".reports"),
    **dict.fromkeys(("algorithms", "get_algorithm", "get_run", "register", "runs", "score", "scores"), ".runs"),
    **dict.fromkeys(("AccountTopics", "Engagers", "Influence", "account_topics", "engagers", "influence"),
                    ".topics"),
}
_SUBMODULES = ("analyses", "demo", "gaming", "inputs", "lookup", "publishing", "reports", "runs", "topics")


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE) | set(_SUBMODULES))


class _Facade(types.ModuleType):
    """Importing a submodule binds it on its package: `api.runs` and `api.gaming` would become the
    modules `runs` and `gaming` the first time anything imports them. They stay the functions."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _WHERE:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade


if TYPE_CHECKING:
    from ..analysis.explain import Explanation
    from ..analysis.gaming import GamingAudit
    from ..inputs.batches import IngestResult
    from ..progress import Step, quiet
    from ..records.algorithms import Algorithm
    from ..records.exports import Export
    from ..records.publications import Publication
    from ..records.runs import Run
    from ..records.snapshots import Snapshot
    from ..records.verify import Verification
    from ._store import Store
    from .analyses import compare, explain, verify
    from .demo import DemoResult, run_demo
    from .gaming import gaming, gaming_audits, get_gaming
    from .inputs import export_snapshot, get_snapshot, ingest, snapshot, snapshots
    from .lookup import (
        Change,
        Lookup,
        LookupRow,
        ScoreCard,
        ScoreSource,
        StoreScores,
        account_score,
        lookup_scores,
    )
    from .publishing import history, publications, publish
    from .reports import (
        AccountStatement,
        StoreOverview,
        TransparencyData,
        account_statement,
        store_overview,
        transparency,
    )
    from .runs import algorithms, get_algorithm, get_run, register, runs, score, scores
    from .topics import (
        AccountTopics,
        Engagers,
        Influence,
        account_topics,
        engagers,
        influence,
    )

__all__ = [
    "AccountStatement", "Change", "Lookup", "LookupRow", "ScoreCard", "ScoreSource", "StoreScores",
    "account_score", "lookup_scores", "StoreOverview", "store_overview", "Algorithm", "DemoResult", "Explanation", "Export", "GamingAudit", "IngestResult", "Publication", "Run", "Snapshot",
    "Step", "Store", "TransparencyData", "Verification", "account_statement", "algorithms", "compare", "explain", "export_snapshot",
    "gaming", "gaming_audits", "get_algorithm", "get_gaming", "get_run", "get_snapshot", "history", "ingest", "publications", "publish", "quiet",
    "register", "run_demo", "runs", "score", "scores", "snapshot", "snapshots", "transparency", "verify",
    "AccountTopics", "Engagers", "Influence", "account_topics", "engagers", "influence",
]
