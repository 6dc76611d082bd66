"""The address of the service that holds a store, in a small file beside it (`STORE.serving`).

`audit serve` writes it once it listens and removes it when it stops; a command that finds the
store locked reads it to say where the service is and which API to use instead. A file left by
a process that no longer runs is ignored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def holder_file(store: str | Path) -> Path:
    store = Path(store)
    return store.with_name(store.name + ".serving")


def write(store: str | Path, url: str) -> Path:
    """Record that this process serves STORE at URL."""
    path = holder_file(store)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}, sort_keys=True) + "\n", encoding="utf-8")
    return path


def remove(store: str | Path) -> None:
    """Forget this process's record (another process's is left alone)."""
    found = read(store)
    if found is not None and found.get("pid") == os.getpid():
        holder_file(store).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(store: str | Path) -> dict | None:
    """{"url", "pid"} of the running service that holds STORE, or None."""
    try:
        found = json.loads(holder_file(store).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or not isinstance(found.get("pid"), int) or not _alive(found["pid"]):
        return None
    return found
