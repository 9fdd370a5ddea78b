"""Read connections on PostgreSQL: a one-statement read is one round trip (no pre-ping, no BEGIN/ROLLBACK), and a
pooled connection its server closed is replaced at checkout instead of failing the read (issue 15)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from potluck.config import DatabaseSettings
from potluck.db.engine import Database
from tests.support.eventually import eventually


class _Calls:
    """What SQLAlchemy asked the driver for besides prepared statements: a transaction (BEGIN, the pre-ping's
    too) or a bare fetch (the pre-ping's `;`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[str] = []
        for name in ("transaction", "fetchrow", "execute"):
            original = getattr(asyncpg.Connection, name)
            monkeypatch.setattr(asyncpg.Connection, name, self._spy(name, original))

    def _spy(self, name: str, original: Any) -> Any:
        def spy(connection: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
            self.made.append(name)
            return original(connection, *args, **kwargs)

        return spy


async def _backend(database: Database) -> tuple[int, Any]:
    """The backend pid of the pooled connection a read used, and its driver connection."""
    async with database.read_session(primary=True) as session:
        pid: int = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        raw = await (await session.connection()).get_raw_connection()
        return pid, raw.driver_connection


async def test_a_read_makes_one_round_trip(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await _backend(database)  # the pool holds a connection now: its checkout is what is measured
    calls = _Calls(monkeypatch)
    async with database.read_session(primary=True) as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection is not None
        assert not raw.driver_connection.is_in_transaction()
    assert calls.made == []  # no ping, no BEGIN, no ROLLBACK: only the SELECT's prepared statement


async def test_a_read_that_asks_for_a_transaction_gets_one(database: Database) -> None:
    async with database.read_session(primary=True, transaction=True) as session:
        await session.execute(text("SELECT 1"))
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection is not None
        assert raw.driver_connection.is_in_transaction()


async def test_a_connection_its_server_closed_is_replaced_at_checkout(database: Database) -> None:
    pid, pooled = await _backend(database)
    url = make_url(database.primary.url)
    admin = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    await eventually(pooled.is_closed, 5, message="the driver never saw the server close the connection")
    assert (await _backend(database))[0] != pid  # a new connection, and the read did not fail


async def test_behind_pgbouncer_reads_keep_their_transaction(pg_database_url: str) -> None:
    """Transaction pooling: an unnamed statement's prepare and execute must not be two transactions."""
    settings = DatabaseSettings(url=pg_database_url, pool_size=1, pgbouncer_transaction_pooling=True)
    database = Database.from_settings(pg_database_url, settings)
    try:
        async with database.read_session(primary=True) as session:
            await session.execute(text("SELECT 1"))
            raw = await (await session.connection()).get_raw_connection()
            assert raw.driver_connection is not None
            assert raw.driver_connection.is_in_transaction()
    finally:
        await database.dispose()
