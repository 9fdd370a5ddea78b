"""The page parameters every list takes: an opaque keyset cursor and a bounded page size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from potluck.errors import BadRequestError
from potluck.kit.cursor import Cursor, InvalidCursorError, decode_cursor
from potluck.kit.inputs import SafeStr

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class PageParams:
    cursor: Cursor | None
    limit: int


async def _page_params(
    cursor: Annotated[
        SafeStr | None, Query(max_length=200, description="Opaque cursor from a previous page's `next_cursor`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = DEFAULT_PAGE_SIZE,
) -> PageParams:
    try:
        return PageParams(cursor=decode_cursor(cursor) if cursor else None, limit=limit)
    except InvalidCursorError as exc:
        raise BadRequestError(f"invalid cursor: {exc}", extra={"param": "cursor"}) from exc


Page = Annotated[PageParams, Depends(_page_params)]
