"""Facade: the gaming audit. Finds score earned inside closed rings and from puppet accounts with a
stored detector version, and measures it in points against a stored counterfactual run (the same
version on the same snapshot with the groups' interactions left out). Scores are never edited."""
from __future__ import annotations

from datetime import datetime

from ..analysis.gaming import GamingAudit
from ..progress import Step, quiet
from ..records import detectors
from ..records import gaming as gaming_
from ..records import runs as runs_
from ._store import Store, reading, writing


def gaming(store: Store, run: str, *, now: datetime, detector: str = detectors.DEFAULT,
           step: Step = quiet) -> GamingAudit:
    """Audit RUN for gaming with DETECTOR (name@version): detect the groups, store a derived snapshot
    without their interactions and the counterfactual run of the same version on it, and store the
    findings; an audit already stored is returned as it is. One transaction: a failure stores nothing."""
    with writing(store) as con:
        r = runs_.resolve(con, run)
        gaming_.refuse_without_path(con, r)          # before anything is computed or registered
        d = detectors.resolve(con, detector, now)
        step(f"detecting with {d.label} on {r.run_id}, then the counterfactual run")
        record, new = gaming_.audit(con, r, d, now)
        return gaming_.load(con, record, new)


def get_gaming(store: Store, ref: str) -> GamingAudit:
    """One stored gaming audit by id or unique prefix."""
    with reading(store) as con:
        return gaming_.load(con, gaming_.resolve(con, ref))


def gaming_audits(store: Store, run: str | None = None) -> list[GamingAudit]:
    """The stored gaming audits (of one run, when given), oldest first."""
    with reading(store) as con:
        records = gaming_.for_runs(con, [runs_.resolve(con, run).run_id]) if run else gaming_.list_all(con)
        return [gaming_.load(con, r) for r in records]
