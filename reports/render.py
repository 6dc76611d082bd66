"""Render audit's results as self-contained HTML: one jinja2 Environment, its filters, one page each.

Invariant: the output is a pure function of the result given: no clock, no random ids, fixed
float formats, so the same records always render to the same bytes. Autoescape is on and no
template marks a value safe: every string from the store is escaped.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from jinja2 import Environment, PackageLoader, StrictUndefined

from .account_page import account_page
from .compare_page import compare_page
from .index_page import MessagePage, docs_page, index_page
from .transparency_page import transparency_page

if TYPE_CHECKING:
    from audit.analysis.compare import Comparison
    from audit.api.reports import AccountStatement, StoreOverview, TransparencyData


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _fixed(spec: str, doc: str) -> Callable[[Any], str]:
    """A filter formatting a finite number with SPEC (n/a when missing or NaN)."""
    def fmt(v: Any) -> str:
        f = _finite(v)
        return "n/a" if f is None else format(f, spec)
    fmt.__doc__ = doc
    return fmt


def fmt_count(v: Any) -> str:
    """A whole number with thousands separators: 304,691."""
    return "n/a" if _finite(v) is None else f"{int(round(float(v))):,}"


def fmt_tick(v: Any) -> str:
    """An axis value: at most two decimals, no trailing zeros (0, 2.5, 100)."""
    f = _finite(v)
    return "n/a" if f is None else (f"{f:,.2f}".rstrip("0").rstrip(".") or "0")


fmt_score = _fixed(".1f", "A score (1-100) with one decimal: 45.4.")


def fmt_points(v: Any) -> str:
    """A signed change in points with two decimals: +0.45, -55.22 (0.00 without a sign)."""
    f = _finite(v)
    if f is None:
        return "n/a"
    return "0.00" if round(f, 2) == 0 else f"{f:+.2f}"


fmt_pct = _fixed(".1%", "A share as a percentage with one decimal: 53.6%.")


fmt_corr = _fixed(".3f", "A correlation or overlap coefficient with three decimals: 0.995 (n/a when undefined).")


def fmt_num(v: Any) -> str:
    """Any measured quantity, readable at its own scale: 35,988 / 6.76 / 0.147 / 2.22e-05."""
    f = _finite(v)
    if f is None:
        return "n/a"
    a = abs(f)
    if a < 1e15 and abs(f - round(f)) <= 1e-9 * max(1.0, a):     # counts recovered from logs: 51.999999999
        return f"{int(round(f)):,}"
    if a >= 1000:
        return f"{f:,.0f}"
    if a >= 1:
        return f"{f:.2f}"
    return f"{f:.3g}"


def fmt_param(v: Any) -> str:
    """A parameter value as canonical JSON: 0.85, {"like": 0.25, ...}."""
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def fmt_ts(v: datetime | None) -> str:
    """An instant in UTC to the second: 2026-01-01 00:00:05 UTC."""
    if v is None:
        return "n/a"
    if v.tzinfo is not None:
        v = v.astimezone(timezone.utc)
    return v.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_coord(v: float) -> str:
    """An SVG coordinate: at most two decimals, no trailing zeros."""
    return f"{float(v):.2f}".rstrip("0").rstrip(".") or "0"


def fmt_text(v: Any) -> str:
    return "" if v is None else str(v)


def fmt_signed(v: Any) -> str:
    """A signed whole number, e.g. a rating: +10, -168."""
    f = _finite(v)
    return "n/a" if f is None else f"{f:+,.0f}"


FILTERS: dict[str, Callable[[Any], str]] = {
    "count": fmt_count, "tick": fmt_tick, "score": fmt_score, "points": fmt_points, "pct": fmt_pct,
    "corr": fmt_corr, "num": fmt_num, "signed": fmt_signed, "param": fmt_param, "ts": fmt_ts, "coord": fmt_coord,
    "text": fmt_text}


def show(value: Any, kind: str) -> str:
    """Format a value with the filter named by kind (chart texts carry their kind)."""
    return FILTERS[kind](value)


def tone(value: Any) -> str:
    """The CSS class of a signed number: neg, pos or zero."""
    f = _finite(value) or 0.0
    return "neg" if round(f, 2) < 0 else "pos" if round(f, 2) > 0 else "zero"


ENV = Environment(loader=PackageLoader("reports"), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
ENV.filters.update(FILTERS, show=show, tone=tone)


Nav = tuple[tuple[str, str], ...]
"""Links to the other pages, (label, href), shown above the title when a page is served (a
report file has none, so it stays what it was)."""


def render(template: str, page: Any, nav: Nav = ()) -> str:
    """Render one page context with its template."""
    return ENV.get_template(template).render(page=page, nav=nav)


def render_transparency(data: TransparencyData, nav: Nav = ()) -> str:
    """The transparency report of every published version in `data`."""
    return render("transparency.html", transparency_page(data), nav)


def render_compare(result: Comparison, nav: Nav = ()) -> str:
    """The comparison report of two runs."""
    return render("compare.html", compare_page(result), nav)


def render_account(statement: AccountStatement, nav: Nav = ()) -> str:
    """An account's score statement: history as published and restated, the latest change explained."""
    return render("account.html", account_page(statement), nav)


def render_index(overview: StoreOverview, nav: Nav = ()) -> str:
    """The store's index page (served only): releases, publications, runs, snapshots, links."""
    return render("index.html", index_page(overview), nav)


def render_docs(openapi: dict, nav: Nav = ()) -> str:
    """The service's endpoints as a page, from its OpenAPI document (no script, no CDN)."""
    return render("docs.html", docs_page(openapi), nav)


def render_message(title: str, message: str, status: int = 200, nav: Nav = ()) -> str:
    """A page that says one thing (an error and what to do next)."""
    return render("message.html", MessagePage(title, message, status), nav)
