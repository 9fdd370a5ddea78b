"""Engines for the primary and the replicas, and the choice of which one serves a session."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from potluck.config import DatabaseSettings
from potluck.db.session import ReadSession, WriteSession


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the driver (it would defer BEGIN until the first write).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str, settings: DatabaseSettings, *, sqlite_writer: bool = True) -> AsyncEngine:
    """An engine configured for its dialect: pool sizes and statement timeout on PostgreSQL, pragmas on SQLite.

    On SQLite a writer engine opens every transaction with BEGIN IMMEDIATE, taking the write lock before its
    first read: SQLite's stand-in for PostgreSQL's SELECT ... FOR UPDATE.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=settings.echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if sqlite_writer else "BEGIN"
        event.listen(engine.sync_engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    return create_async_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={"server_settings": {"statement_timeout": str(settings.statement_timeout_ms)}},
    )


class Database:
    """The primary (writes, and reads that must see them) and the replicas (other reads, round-robin)."""

    def __init__(
        self,
        primary: AsyncEngine,
        replicas: Sequence[AsyncEngine] = (),
        primary_reader: AsyncEngine | None = None,
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        # Reads on the primary use their own engine where the dialect needs one (SQLite: no write lock for reads).
        self.primary_reader = primary_reader or primary
        self._write_sessions = async_sessionmaker(primary, class_=WriteSession, expire_on_commit=False)
        self._read_on_primary = async_sessionmaker(self.primary_reader, class_=ReadSession, expire_on_commit=False)
        self._read_on_replicas = [
            async_sessionmaker(engine, class_=ReadSession, expire_on_commit=False) for engine in self.replicas
        ]
        self._round_robin = itertools.cycle(range(len(self.replicas))) if self.replicas else None

    @classmethod
    def from_settings(cls, url: str, settings: DatabaseSettings) -> Database:
        primary = create_engine(url, settings)
        reader = create_engine(url, settings, sqlite_writer=False) if primary.dialect.name == "sqlite" else None
        return cls(primary, [create_engine(u, settings) for u in settings.replica_urls], reader)

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    def _pick_reader(self) -> async_sessionmaker[ReadSession]:
        if self._round_robin is None:
            return self._read_on_primary
        return self._read_on_replicas[next(self._round_robin)]

    @asynccontextmanager
    async def read_session(self, *, primary: bool = False) -> AsyncIterator[ReadSession]:
        """A session for reads; `primary=True` when the caller must see its own latest write."""
        factory = self._read_on_primary if primary else self._pick_reader()
        async with factory() as session:
            yield session

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[WriteSession]:
        """A session on the primary that commits when the block ends cleanly, then runs after-commit hooks."""
        async with self._write_sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                session.pop_after_commit()
                raise
            await session.commit()
            for callback in session.pop_after_commit():
                result = callback()
                if inspect.isawaitable(result):
                    await result

    async def dispose(self) -> None:
        for engine in {self.primary, self.primary_reader, *self.replicas}:
            await engine.dispose()
