"""The few statements whose spelling differs between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, FromClause, Result
from sqlalchemy.dialects import postgresql, sqlite

from potluck.db.session import ReadSession


def dialect_insert(session: ReadSession, table: FromClause) -> Any:
    """An INSERT that knows ON CONFLICT: PostgreSQL's and SQLite's constructs share one API."""
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an INSERT/UPDATE/DELETE (execute() types its result as a plain Result)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
