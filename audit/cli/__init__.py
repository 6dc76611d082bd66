"""The command line: each command parses, calls one facade function (`audit.api`), and prints
what the presentation layer (`audit.present`) makes of the result. Commands live by area; the
group, printing and error handling are in `base`."""
from . import analyses, gaming, inputs, reports, scoring, serve, topics  # noqa: F401  (each registers its commands)
from .base import cli, main

__all__ = ["cli", "main"]
