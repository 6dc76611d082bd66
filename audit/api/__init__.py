"""The facade: every question a user can ask, as library functions that take the store (a path,
or the open connection of the process that owns it) and return result dataclasses and polars
frames. The CLI, the HTTP service and the report files all go through here; nothing below this
package imports it.

Writing functions take `now` (the caller's clock; the library never reads one) and run in one
transaction: a failure stores nothing.
"""
from __future__ import annotations

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
from .lookup import Change, Lookup, LookupRow, ScoreCard, ScoreSource, StoreScores, account_score, lookup_scores
from .publishing import history, publications, publish
from .reports import (AccountStatement, StoreOverview, TransparencyData, account_statement, store_overview,
                      transparency)
from .runs import algorithms, get_algorithm, get_run, register, runs, score, scores
from .topics import AccountTopics, Engagers, Influence, account_topics, engagers, influence

__all__ = [
    "AccountStatement", "Change", "Lookup", "LookupRow", "ScoreCard", "ScoreSource", "StoreScores",
    "account_score", "lookup_scores", "StoreOverview", "store_overview", "Algorithm", "DemoResult", "Explanation", "Export", "GamingAudit", "IngestResult", "Publication", "Run", "Snapshot",
    "Step", "Store", "TransparencyData", "Verification", "account_statement", "algorithms", "compare", "explain", "export_snapshot",
    "gaming", "gaming_audits", "get_algorithm", "get_gaming", "get_run", "get_snapshot", "history", "ingest", "publications", "publish", "quiet",
    "register", "run_demo", "runs", "score", "scores", "snapshot", "snapshots", "transparency", "verify",
    "AccountTopics", "Engagers", "Influence", "account_topics", "engagers", "influence",
]
