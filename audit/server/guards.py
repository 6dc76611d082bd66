"""What the service checks before a route runs: the size of a request body, cross-origin
access, and the bearer token of a write. Plain ASGI, so a refused body is never read.

- Body: a declared Content-Length over the limit is answered 413 at once; a body sent without
  one is counted as it arrives and refused at the limit. Uploads to /api/v1/jobs have their own,
  larger limit.
- CORS: any origin may GET (and HEAD) and POST the bulk lookup (/api/v1/scores), which a browser
  plug-in calls from a page; every other cross-origin request (jobs above all) gets no CORS
  header, and its preflight is refused.
- Token: compared in constant time (on digests, so its length does not show either); it is
  never logged or echoed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BULK_PATH = "/api/v1/scores"
JOBS_PATH = "/api/v1/jobs"


async def _plain(send: Send, status: int, doc: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over `limit` bytes (`upload_limit` for job submissions)."""

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] == JOBS_PATH else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        refusal = {"error": f"request body over {limit:,} bytes; the service refuses it unread"}
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _plain(send, 400, {"error": "Content-Length is not a number"})
                return
            if size > limit:
                await _plain(send, 413, refusal, [(b"connection", b"close")])
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, counted, tracked)
        except TooLarge:
            if not started:
                await _plain(send, 413, refusal, [(b"connection", b"close")])


class Cors:
    """GET from any origin, and POST to the bulk lookup; nothing else (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def allowed(method: str, path: str) -> bool:
        return method in ("GET", "HEAD") or (method == "POST" and path == BULK_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"origin" not in headers:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        wanted = headers.get(b"access-control-request-method")
        if method == "OPTIONS" and wanted is not None:        # a preflight
            if not self.allowed(wanted.decode("latin-1"), path):
                await _plain(send, 403, {"error": "cross-origin requests may only GET, or POST " + BULK_PATH})
                return
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"GET, HEAD, POST"),
                (b"access-control-allow-headers", b"content-type"), (b"access-control-max-age", b"600"),
                (b"vary", b"origin")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not self.allowed(method, path):
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", b"*")]
            await send(message)
        await self.app(scope, receive, with_cors)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries the bearer token (constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    ok = hmac.compare_digest(_digest(given.strip()), _digest(token))
    return ok and scheme.lower() == "bearer"


def read_token(path: str) -> str:
    """The token of a token file: its first line, without surrounding spaces."""
    with open(path, encoding="utf-8") as fh:
        token = fh.readline().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the token must be at least 16 characters on the first line")
    return token
