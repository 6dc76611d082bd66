"""The presentation layer: for each result type, one function to JSON-ready data (the `--json`
contract: `*_json`, printed with `dumps`) and one to text (`*_text`). The CLI and the HTTP
service print exactly these, so the three doors give the same answer."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module (relative to this package) that defines it; loaded on first use (PEP 562),
# so a command imports only the presentation it prints
_WHERE = {
    **dict.fromkeys(("dumps", "plain", "plural"), ".common"),
    **dict.fromkeys(("comparison_json", "comparison_text"), ".compare"),
    **dict.fromkeys(("explanation_json", "explanation_text"), ".explain"),
    **dict.fromkeys(("gaming_json", "gaming_text"), ".gaming"),
    **dict.fromkeys(("lookup_json", "lookup_text", "score_card_json", "score_card_text"), ".lookup"),
    **dict.fromkeys((
        "algorithm_json", "algorithms_json", "algorithms_text", "engine_text", "export_json", "export_text",
        "history_json", "history_text", "ingest_json", "ingest_text", "ingest_warnings", "missing_warnings",
        "publication_json", "publications_json", "publications_text", "published_json", "published_text",
        "registered_json", "registered_text", "run_json", "runs_json", "runs_text", "scored_json", "scored_text",
        "scores_json", "scores_text", "snapshot_created_json", "snapshot_json", "snapshot_text", "snapshots_json",
        "snapshots_text"), ".records"),
    **dict.fromkeys(("account_topics_json", "account_topics_text", "engagers_json", "engagers_text",
                     "influence_json", "influence_text"), ".topics"),
    **dict.fromkeys(("verification_json", "verification_text"), ".verify"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:
    from .common import dumps, plain, plural
    from .compare import comparison_json, comparison_text
    from .explain import explanation_json, explanation_text
    from .gaming import gaming_json, gaming_text
    from .lookup import lookup_json, lookup_text, score_card_json, score_card_text
    from .records import (
        algorithm_json,
        algorithms_json,
        algorithms_text,
        engine_text,
        export_json,
        export_text,
        history_json,
        history_text,
        ingest_json,
        ingest_text,
        ingest_warnings,
        missing_warnings,
        publication_json,
        publications_json,
        publications_text,
        published_json,
        published_text,
        registered_json,
        registered_text,
        run_json,
        runs_json,
        runs_text,
        scored_json,
        scored_text,
        scores_json,
        scores_text,
        snapshot_created_json,
        snapshot_json,
        snapshot_text,
        snapshots_json,
        snapshots_text,
    )
    from .topics import (
        account_topics_json,
        account_topics_text,
        engagers_json,
        engagers_text,
        influence_json,
        influence_text,
    )
    from .verify import verification_json, verification_text


def written_json(path: str, size: int) -> dict[str, Any]:
    """A report file written: where, and how many bytes."""
    return {"path": path, "bytes": size}


def written_text(path: str, size: int) -> str:
    return f"wrote {path} ({size:,} bytes)"


__all__ = [
    "algorithm_json", "algorithms_json", "algorithms_text", "comparison_json", "comparison_text", "dumps", "engine_text", "explanation_json", "explanation_text", "export_json", "export_text", "gaming_json", "gaming_text",
    "history_json", "history_text", "lookup_json", "lookup_text", "score_card_json", "score_card_text", "ingest_json", "ingest_text", "ingest_warnings", "missing_warnings", "plain",
    "plural", "publication_json", "publications_json", "publications_text", "published_json", "published_text",
    "registered_json", "registered_text", "run_json", "runs_json", "runs_text", "scored_json", "scored_text",
    "scores_json", "scores_text", "snapshot_created_json", "snapshot_json", "snapshot_text", "snapshots_json",
    "snapshots_text", "verification_json", "verification_text", "written_json", "written_text",
    "account_topics_json", "account_topics_text", "engagers_json", "engagers_text", "influence_json", "influence_text",
]
