"""Session types that name their database: a ReadSession may go to a replica, a WriteSession goes to the primary.

A WriteSession is a kind of ReadSession (polar's `AsyncSession` is a kind of `AsyncReadSession`): whatever reads
can be handed a write session, inside a write transaction; nothing that writes accepts a read session, so the type
checker checks the routing. At run time a read session also refuses to flush changes, in case a cast hides one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from potluck.db.prepared import Prepared, fetch_prepared

AFTER_COMMIT_KEY = "potluck.after_commit"


class ReadOnlySessionError(RuntimeError):
    """Something tried to flush changes through a read session."""


class _ReadOnlySyncSession(Session):
    def flush(self, objects: Any = None) -> None:
        if self.new or self.dirty or self.deleted:
            raise ReadOnlySessionError("a ReadSession refuses to write; ask for a WriteSession")
        super().flush(objects)


class Rows(Protocol):
    """What a column select needs: its rows, and the dialect it is written for. A ReadSession is one (inside an ORM
    session, a write's among them); a ReadRows is one without the session (Database.read_rows)."""

    @property
    def dialect_name(self) -> str: ...

    async def rows(self, statement: Executable | Prepared, params: dict[str, Any] | None = None) -> Sequence[Any]: ...


class ReadRows:
    """Statements on one read connection, without an ORM session: Database.read_rows hands it out and returns the
    connection. Constructing and closing an AsyncSession cost about as much client CPU as a one-statement read's
    own execution; a read that only runs column selects has no use for one."""

    def __init__(self, connection: AsyncConnection, *, driver: bool = False) -> None:
        """`driver`: `Prepared` statements may run on the driver itself (an autocommit PostgreSQL connection)."""
        self.connection = connection
        self.driver = driver

    @property
    def dialect_name(self) -> str:
        return self.connection.dialect.name

    async def rows(self, statement: Executable | Prepared, params: dict[str, Any] | None = None) -> Sequence[Any]:
        if isinstance(statement, Prepared):
            if self.driver:
                return await fetch_prepared(self.connection, statement, params)
            statement = statement.statement
        return (await self.connection.execute(statement, params)).all()

    async def close(self) -> None:
        """Nothing of its own to release (Database.read_rows returns the connection)."""


class ReadSession(AsyncSession):
    """May be bound to a replica; refuses to flush changes."""

    sync_session_class: type[Session] = _ReadOnlySyncSession

    @property
    def dialect_name(self) -> str:
        return self.get_bind().dialect.name

    async def rows(self, statement: Executable | Prepared, params: dict[str, Any] | None = None) -> Sequence[Any]:
        """The rows of a column select, executed as Core on this session's connection: none of the ORM's execution
        and loading machinery (a third of an uncached read's CPU; ~2% of the mix's, list ids and searches).
        Pending changes are flushed first, as the session's own execute would (autoflush)."""
        if self.new or self.dirty or self.deleted:
            await self.flush()
        connection = await self.connection()
        if isinstance(statement, Prepared):
            statement = statement.statement
        return (await connection.execute(statement, params)).all()


class WriteSession(ReadSession):
    """Bound to the primary; usable wherever a ReadSession is asked for."""

    sync_session_class = Session

    def after_commit(self, callback: Callable[[], Any]) -> None:
        """Run `callback` once this session's transaction has committed (never after a rollback)."""
        self.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)

    def pop_after_commit(self) -> list[Callable[[], Any]]:
        callbacks: list[Callable[[], Any]] = self.info.pop(AFTER_COMMIT_KEY, [])
        return callbacks


# A repository's session type: `Repository[ReadSession]` reads, `Repository[WriteSession]` may also write (its write
# methods take `self: Repository[WriteSession]`, so the checker refuses them on a read session).
AnySession = TypeVar("AnySession", bound=ReadSession)
