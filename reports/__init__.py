"""HTML reports of audit's results: transparency, comparison, account statement.

Rendering only: the functions take audit's result dataclasses and return one self-contained
HTML page; nothing here runs SQL or reads the store.
"""
from .render import render_account, render_compare, render_transparency

__all__ = ["render_account", "render_compare", "render_transparency"]
