"""The web pages: the report templates, served. `/` (the store), `/transparency`,
`/accounts/{ref}` (the statement) and `/compare/{baseline}/{candidate}`, linked to each other;
each is one self-contained page that needs no script.

The transparency page is rendered from stored records only, without re-executing the runs
(`audit report transparency` does that), and kept until the next write job.
"""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import api
from .service import service, text

router = APIRouter()

HOME = (("Store", "/"), ("Transparency", "/transparency"))


def page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status)


@router.get("/", response_class=HTMLResponse, summary="The store: releases, publications, runs, snapshots")
def index(request: Request) -> HTMLResponse:
    from reports.render import render_index
    return page(render_index(api.store_overview(service(request).con), HOME))


@router.get("/transparency", response_class=HTMLResponse, summary="The transparency report")
def transparency(request: Request) -> HTMLResponse:
    from reports.render import render_transparency
    s = service(request)
    return page(s.remembered(("transparency",),
                             lambda: render_transparency(api.transparency(s.con, rerun_runs=False), HOME)))


@router.get("/accounts", summary="The statement of the account named in the form (?ref=)")
def account_form(ref: str = "") -> Response:
    return RedirectResponse("/accounts/" + quote(text(ref.strip(), "account"), safe="@"), status_code=303)


@router.get("/accounts/{ref}", response_class=HTMLResponse, summary="An account's score statement")
def account(request: Request, ref: str) -> HTMLResponse:
    from reports.render import render_account
    s = service(request)
    st = api.account_statement(s.con, text(ref, "account"), now=s.settings.clock(), compute=False, source=s.cache)
    nav = HOME
    if st.explanation is not None:
        e = st.explanation
        nav += (("This change compared", f"/compare/{quote(e.baseline.run_id)}/{quote(e.candidate.run_id)}"),)
    nav += (("JSON", f"/api/v1/accounts/{quote(st.account_id, safe='')}/history"),)
    return page(render_account(st, nav))


@router.get("/compare/{baseline}/{candidate}", response_class=HTMLResponse, summary="The comparison of two runs")
def compare(request: Request, baseline: str, candidate: str) -> HTMLResponse:
    from reports.render import render_compare
    result = api.compare(service(request).con, text(baseline, "baseline"), text(candidate, "candidate"))
    return page(render_compare(result, HOME + (
        ("JSON", f"/api/v1/compare?baseline={quote(result.baseline.run_id)}&candidate={quote(result.candidate.run_id)}"),)))


@router.get("/docs", response_class=HTMLResponse, summary="The API's endpoints (from /openapi.json)")
def docs(request: Request) -> HTMLResponse:
    from reports.render import render_docs
    return page(render_docs(request.app.openapi(), HOME))
