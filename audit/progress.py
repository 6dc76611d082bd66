"""Progress callbacks: a long step reports what it is doing; the CLI shows it, the library does not."""
from __future__ import annotations

from collections.abc import Callable

Step = Callable[[str], None]


def quiet(_: str) -> None:
    """A progress callback that shows nothing."""
