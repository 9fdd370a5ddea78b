"""RFC 8288 Link headers for cursor pagination."""

from __future__ import annotations

from starlette.datastructures import URL


def next_link(url: URL, next_cursor: str | None) -> dict[str, str]:
    """The Link header pointing at the next page, or nothing on the last page."""
    if next_cursor is None:
        return {}
    return {"Link": f'<{url.include_query_params(cursor=next_cursor)}>; rel="next"'}
