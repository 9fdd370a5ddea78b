"""Annotated dependency aliases: the session types, the caller, the page parameters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer

from potluck.bootstrap import Container
from potluck.db.consistency import MIN_LSN_KEY
from potluck.db.session import ReadSession, WriteSession
from potluck.errors import BadRequestError, UnauthorizedError
from potluck.kit.cursor import Cursor, InvalidCursorError, decode_cursor
from potluck.user.security import InvalidTokenError

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


async def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(_container)]


async def _write_session(container: ContainerDep, request: Request) -> AsyncIterator[WriteSession]:
    async with container.database.write_session() as session:
        yield session
    # Committed: hand the client the position it must be able to read back (read-your-writes).
    token = await container.database.wal_position()
    if token is not None:
        request.state.potluck_issued_lsn = token


async def _read_session(container: ContainerDep, request: Request) -> AsyncIterator[ReadSession]:
    min_lsn = getattr(request.state, MIN_LSN_KEY, None)
    async with container.database.read_session(min_lsn=min_lsn) as session:
        yield session


async def _primary_read_session(container: ContainerDep) -> AsyncIterator[ReadSession]:
    async with container.database.read_session(primary=True) as session:
        yield session


# scope="function": the transaction commits when the route returns, before the response is sent,
# so a client that has its response can always read its write.
WriteSessionDep = Annotated[WriteSession, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[ReadSession, Depends(_read_session, scope="function")]
PrimaryReadSessionDep = Annotated[ReadSession, Depends(_primary_read_session, scope="function")]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def _optional_user_id(
    container: ContainerDep, token: Annotated[str | None, Depends(_bearer)]
) -> uuid.UUID | None:
    if token is None:
        return None
    try:
        return container.tokens.verify(token, "access")
    except InvalidTokenError as exc:
        raise UnauthorizedError("the access token is invalid or expired") from exc


async def _required_user_id(user_id: Annotated[uuid.UUID | None, Depends(_optional_user_id)]) -> uuid.UUID:
    if user_id is None:
        raise UnauthorizedError("authentication required")
    return user_id


OptionalUserId = Annotated[uuid.UUID | None, Depends(_optional_user_id)]
CurrentUserId = Annotated[uuid.UUID, Depends(_required_user_id)]


@dataclass(frozen=True, slots=True)
class PageParams:
    cursor: Cursor | None
    limit: int


async def _page_params(
    cursor: Annotated[
        str | None, Query(max_length=200, description="Opaque cursor from a previous page's `next_cursor`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = DEFAULT_PAGE_SIZE,
) -> PageParams:
    try:
        return PageParams(cursor=decode_cursor(cursor) if cursor else None, limit=limit)
    except InvalidCursorError as exc:
        raise BadRequestError(f"invalid cursor: {exc}", extra={"param": "cursor"}) from exc


Page = Annotated[PageParams, Depends(_page_params)]
