"""A small loopback HTTP/1.1 load client: C clients, each one keep-alive connection, sending a
fixed list of requests in turn, for a bounded number of requests and a bounded time.

Plain asyncio streams (no client library), so the client costs little CPU beside the server
it measures. Only 127.0.0.1 is allowed.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    kind: str                   # what the request asks (single, bulk, history, explain ...)
    method: str
    path: str
    body: bytes = b""

    def raw(self, port: int) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        if self.body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        return (head + "\r\n").encode() + self.body


def get(kind: str, path: str) -> Request:
    return Request(kind, "GET", path)


def post_json(kind: str, path: str, doc: object) -> Request:
    return Request(kind, "POST", path, json.dumps(doc).encode())


@dataclass
class Outcome:
    """Per kind: latencies of the successful requests (seconds); errors by status or exception."""
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())

    def summary(self) -> dict:
        out = {"seconds": round(self.seconds, 3), "requests": self.count(),
               "throughput": round(self.count() / self.seconds, 1) if self.seconds else 0.0,
               "errors": sum(self.errors.values()), "error_kinds": dict(sorted(self.errors.items())), "kinds": {}}
        for kind, values in sorted(self.latencies.items()):
            a = np.asarray(values) * 1000
            out["kinds"][kind] = {"n": len(values), "per_second": round(len(values) / self.seconds, 1),
                                  **{f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)},
                                  "max": round(float(a.max()), 2)}
        return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


async def _client(port: int, plan: list[Request], start: int, budget: list[int], deadline: float,
                  out: Outcome, check: bool, stop: threading.Event | None) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    i = start
    try:
        while budget[0] > 0 and time.perf_counter() < deadline and not (stop is not None and stop.is_set()):
            budget[0] -= 1
            req = plan[i % len(plan)]
            i += 1
            t = time.perf_counter()
            try:
                writer.write(req.raw(port))
                await writer.drain()
                status, body = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                out.errors[f"{req.kind}: {type(exc).__name__}"] = out.errors.get(f"{req.kind}: {type(exc).__name__}", 0) + 1
                writer.close()
                reader, writer = await asyncio.open_connection(LOOPBACK, port)
                continue
            took = time.perf_counter() - t
            if status != 200 or (check and not body):
                key = f"{req.kind}: {status}"
                out.errors[key] = out.errors.get(key, 0) + 1
            else:
                out.latencies.setdefault(req.kind, []).append(took)
    finally:
        writer.close()


async def _run(port: int, plan: list[Request], clients: int, requests: int, seconds: float, check: bool,
               stop: threading.Event | None) -> Outcome:
    out = Outcome()
    budget = [requests]
    t0 = time.perf_counter()
    deadline = t0 + seconds
    step = max(1, len(plan) // clients)
    await asyncio.gather(*(_client(port, plan, k * step, budget, deadline, out, check, stop) for k in range(clients)))
    out.seconds = time.perf_counter() - t0
    return out


def run(port: int, plan: list[Request], *, clients: int, requests: int, seconds: float, check: bool = True,
        stop: threading.Event | None = None) -> Outcome:
    """Send at most REQUESTS requests from CLIENTS connections for at most SECONDS (or until STOP is set)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(port, plan, clients, requests, seconds, check, stop))
    return uvloop.run(_run(port, plan, clients, requests, seconds, check, stop))
