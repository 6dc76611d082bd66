"""HTML reports of audit's results: transparency, comparison, account statement.

Rendering only: `render` takes audit's result dataclasses and returns one self-contained HTML
page. Each page has its context builder (`*_page`: everything shown, computed from the result),
`widgets` holds what pages share, `svg` the chart geometry, `templates/` the jinja2 layout.
Nothing here runs SQL or reads the store.
"""
from .render import render_account, render_compare, render_index, render_message, render_transparency

__all__ = ["render_account", "render_compare", "render_index", "render_message", "render_transparency"]
