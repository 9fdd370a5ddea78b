"""Counting the SQL statements apps send, on every engine they have (primary, primary reader, replicas)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import event

from potluck.config import Settings
from tests.support.app import container_of


class StatementCounter:
    """Counts the statements for which `counts(statement)` is true, on every engine of the given apps."""

    def __init__(self, *clients: httpx.AsyncClient, counts: Callable[[str], bool]) -> None:
        self.engines = set()
        for c in clients:
            db = container_of(c).database
            self.engines |= {db.primary, db.primary_reader, *db.replicas}
        self.counts = counts
        self.count = 0

    def _on(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.counts(statement):
            self.count += 1

    def __enter__(self) -> StatementCounter:
        for engine in self.engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *_: object) -> None:
        for engine in self.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", self._on)


class DriverFetches:
    """Counts asyncpg's own fetches (db/prepared.py's reads on the driver; SQLAlchemy runs its statements as
    prepared statements instead, so none of its are counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = asyncpg.Connection.fetch

        async def fetch(connection: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(connection, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, "fetch", fetch)


def loads_one_recipe(statement: str) -> bool:
    """A statement that reads one recipe by id (a cache fill of recipe:{id})."""
    return statement.lstrip().upper().startswith("SELECT") and "FROM recipe" in statement and "recipe.id =" in statement


def reads_recipe_documents(statement: str) -> bool:
    """A statement that reads recipe documents, one by id or many at once."""
    return "FROM recipe JOIN" in statement and ("recipe.id IN" in statement or "recipe.id =" in statement)


def raw_cache_value(settings: Settings, key: str) -> bytes | None:
    """What the test's Redis holds under `key`, read with a client of its own."""
    assert settings.redis.url
    with redis.Redis.from_url(settings.redis.url) as r:
        value: bytes | None = r.get(key)
        return value
