"""The URLs the API writes (Location, RFC 8288 Link): never built from the request's Host header.

A Host header is whatever the client says it is; reflected into a Location or a Link it poisons any shared cache
that keys on the path alone. So these URLs are built on the configured public base URL (api.public_base_url) or,
without one, are relative (a relative reference is valid in both headers: RFC 9110 §10.2.2, RFC 8288 §3.1).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request

_STATE_KEY = "public_base_url"


def set_public_base_url(app: Starlette, base_url: str | None) -> None:
    setattr(app.state, _STATE_KEY, (base_url or "").rstrip("/"))


def public_url(request: Request, path_and_query: str) -> str:
    """`path_and_query` (starting with /) on the configured public base URL, or relative without one."""
    base: str = getattr(request.app.state, _STATE_KEY, "")
    return base + path_and_query


def next_link(request: Request, next_cursor: str | None) -> dict[str, str]:
    """The Link header pointing at the next page, or nothing on the last page."""
    if next_cursor is None:
        return {}
    url = request.url.include_query_params(cursor=next_cursor)
    return {"Link": f'<{public_url(request, f"{url.path}?{url.query}")}>; rel="next"'}
