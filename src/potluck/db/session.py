"""Session types that name their database: a ReadSession may go to a replica, a WriteSession goes to the primary.

The type checker then checks the routing: a repository method that writes takes a WriteSession.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    sync_session_class = _ReadOnlySyncSession


class WriteSession(AsyncSession):
    def after_commit(self, callback: Callable[[], Any]) -> None:
        """Run `callback` once this session's transaction has committed (never after a rollback)."""
        self.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)

    def pop_after_commit(self) -> list[Callable[[], Any]]:
        callbacks: list[Callable[[], Any]] = self.info.pop(AFTER_COMMIT_KEY, [])
        return callbacks
