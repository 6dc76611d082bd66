"""`audit serve`: the HTTP service over one store. One process owns the store's one DuckDB
connection; routes are as thin as CLI commands (parse, call one facade function, answer with the
presentation of its result); writes are jobs run one at a time behind a bearer token; published
scores are answered from memory.

Modules: `app` (factory, error mapping, serve), `service` (the state a process holds),
`api_routes` (/api/v1), `pages` (HTML), `jobs` (the worker), `cache` (scores in memory),
`guards` (body size, CORS, token).
"""
from .app import create_app, serve
from .service import Settings

__all__ = ["Settings", "create_app", "serve"]
