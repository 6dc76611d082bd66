"""The app factory and the one process that serves a store.

`create_app` opens the store once (a writer: it migrates it, and holds DuckDB's lock, so no
other process can write behind the service's back), keeps that connection for the life of the
app, and closes it on shutdown. Reads take their own cursors of it and see the last committed
state while a write job runs. `serve` runs the app on uvicorn and records the address beside the
store for as long as it listens (`audit.store.holder`).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from .. import present
from ..errors import AuditError
from ..store import holder
from ..store.db import configure, connect
from . import api_routes, pages
from .api_routes import HttpError
from .guards import BodyLimit, Cors, TooLarge
from .service import Service, Settings, status_of

log = logging.getLogger("audit.server")
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Not computed yet", 413: "Too large", 422: "Malformed request", 500: "Internal error",
          503: "Busy"}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return Response(present.dumps({"error": message}) + "\n", status_code=status, media_type="application/json",
                        headers=headers)
    from reports.render import render_message
    return HTMLResponse(render_message(TITLES.get(status, "Error"), message, status, pages.HOME),
                        status_code=status, headers=headers)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(AuditError)
    async def audit_error(request: Request, exc: AuditError) -> Response:
        return _error(request, status_of(exc), str(exc))

    @app.exception_handler(HttpError)
    async def http_error(request: Request, exc: HttpError) -> Response:
        return _error(request, exc.status, str(exc), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(request, 422, "malformed request: " + "; ".join(parts))

    @app.exception_handler(HTTPException)
    async def http_exception(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge) -> Response:
        return _error(request, 413, "request body over the limit; the service refuses it")

    @app.exception_handler(Exception)
    async def defect(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(request, 500, f"internal error ({type(exc).__name__}); this is a defect of audit")


def create_app(store: str | Path, settings: Settings | None = None) -> FastAPI:
    """The service of the store at STORE (created empty when missing)."""
    settings = settings or Settings()
    store_path = Path(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with connect(store_path, write=True, create=True) as con:
            configure(con)
            s = Service.start(store_path, con, settings)
            app.state.service = s
            try:
                s.cache.warm()
                yield
            finally:
                s.stop()

    options = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:     # FastAPI >= 0.160 traces by default
        options["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="audit", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, **options,
                  description="Score history: published scores, histories, explanations, runs and comparisons; "
                              "writes as jobs behind a bearer token.")
    app.include_router(api_routes.router)
    app.include_router(pages.router)
    _handlers(app)
    app.add_middleware(Cors)
    app.add_middleware(BodyLimit, limit=settings.body_limit, upload_limit=settings.upload_limit)
    return app


def serve(store: str | Path, *, host: str, port: int, settings: Settings) -> None:
    """Serve STORE on HOST:PORT until interrupted; the address is recorded beside the store meanwhile."""
    import uvicorn
    # Requests are answered on the event loop while a job computes in its thread: hand the
    # interpreter over every 1 ms instead of 5 so a job's pure-Python stretches delay reads less.
    sys.setswitchinterval(0.001)
    app = create_app(store, settings)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    @contextlib.asynccontextmanager
    async def recorded(app_: FastAPI) -> AsyncIterator[None]:
        async with inner(app_):
            holder.write(store, url)
            try:
                yield
            finally:
                holder.remove(store)
    inner = app.router.lifespan_context
    app.router.lifespan_context = recorded
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                timeout_graceful_shutdown=10)
