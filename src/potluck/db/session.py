"""Session types that name their database: a ReadSession may go to a replica, a WriteSession goes to the primary.

A WriteSession is a kind of ReadSession (polar's `AsyncSession` is a kind of `AsyncReadSession`): whatever reads
can be handed a write session, inside a write transaction; nothing that writes accepts a read session, so the type
checker checks the routing. At run time a read session also refuses to flush changes, in case a cast hides one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Executable, Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

AFTER_COMMIT_KEY = "potluck.after_commit"


class ReadOnlySessionError(RuntimeError):
    """Something tried to flush changes through a read session."""


class _ReadOnlySyncSession(Session):
    def flush(self, objects: Any = None) -> None:
        if self.new or self.dirty or self.deleted:
            raise ReadOnlySessionError("a ReadSession refuses to write; ask for a WriteSession")
        super().flush(objects)


class ReadSession(AsyncSession):
    """May be bound to a replica; refuses to flush changes."""

    sync_session_class: type[Session] = _ReadOnlySyncSession

    async def rows(self, statement: Executable, params: dict[str, Any] | None = None) -> Sequence[Row[Any]]:
        """The rows of a column select, executed as Core on this session's connection: none of the ORM's execution
        and loading machinery (a third of an uncached read's CPU; ~2% of the mix's, list ids and searches).
        Pending changes are flushed first, as the session's own execute would (autoflush)."""
        if self.new or self.dirty or self.deleted:
            await self.flush()
        connection = await self.connection()
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
