"""The session types as FastAPI dependencies: a route asks for the kind of session it needs, the type picks the
database (a ReadSession may go to a replica, a WriteSession goes to the primary)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from potluck.db.consistency import ISSUED_KEY, MIN_LSN_KEY, ConsistencyToken
from potluck.db.engine import Database
from potluck.db.session import ReadSession, WriteSession
from potluck.kit.wiring import provided

DatabaseDep = Annotated[Database, Depends(provided(Database))]


async def min_lsn(request: Request) -> ConsistencyToken | None:
    """The timeline and WAL position the caller asked to read back (X-Potluck-Consistency), if any. (async: FastAPI
    runs a plain function in its thread pool, a hop per request for an attribute read.)"""
    position: ConsistencyToken | None = getattr(request.state, MIN_LSN_KEY, None)
    return position


MinLsn = Annotated[ConsistencyToken | None, Depends(min_lsn)]


async def _write_session(database: DatabaseDep, request: Request) -> AsyncIterator[WriteSession]:
    async with database.write_session() as session:
        yield session
    # Committed: hand the client the position it must be able to read back (read-your-writes).
    token = await database.wal_position()
    if token is not None:
        setattr(request.state, ISSUED_KEY, token)


async def _read_session(database: DatabaseDep, position: MinLsn) -> AsyncIterator[ReadSession]:
    async with database.read_session(min_lsn=position) as session:
        yield session


async def _primary_read_session(database: DatabaseDep) -> AsyncIterator[ReadSession]:
    async with database.read_session(primary=True) as session:
        yield session


# scope="function": the transaction commits when the route returns, before the response is sent,
# so a client that has its response can always read its write.
WriteSessionDep = Annotated[WriteSession, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[ReadSession, Depends(_read_session, scope="function")]
PrimaryReadSessionDep = Annotated[ReadSession, Depends(_primary_read_session, scope="function")]
