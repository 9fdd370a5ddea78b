"""Engines configured for their dialect: pool sizes, timeouts and how a dead pooled connection is noticed on
PostgreSQL, pragmas and transaction control on SQLite."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from potluck.config import DatabaseSettings


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the driver (it would defer BEGIN until the first write).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(
    url: str, settings: DatabaseSettings, *, sqlite_writer: bool = True, read_timeout: float | None = None
) -> AsyncEngine:
    """An engine configured for its dialect: pool sizes and statement timeout on PostgreSQL, pragmas on SQLite.

    `read_timeout` (replicas): the client's bound on a connect and on each statement, shorter than the primary's,
    because a read given up on one replica can run again on another one.

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
    connect_args: dict[str, Any] = {
        "server_settings": {"statement_timeout": str(settings.statement_timeout_ms)},
        "timeout": settings.connect_timeout_seconds,
    }
    if settings.statement_timeout_ms:
        # statement_timeout is enforced by the server: a server that stops answering (frozen, or its host gone
        # without a reset) would hold the request until TCP gives up. The client gives up a second later.
        connect_args["command_timeout"] = settings.statement_timeout_ms / 1000 + 1
    if read_timeout is not None:
        connect_args["timeout"] = min(settings.connect_timeout_seconds, read_timeout)
        connect_args["command_timeout"] = read_timeout
    if settings.pgbouncer_transaction_pooling:
        # PgBouncer in transaction mode hands each transaction to any server connection: named prepared
        # statements would not be there next time (see deploy/pgbouncer/README.md).
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid.uuid4()}__"
    engine = create_async_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        # No pre-ping (a BEGIN, a ping and a ROLLBACK per checkout: three round trips before every statement):
        # a connection its server closed is refused at checkout for free (_refuse_closed); one that dies silently
        # fails its statement, which invalidates the pool's older connections, and a read runs again elsewhere
        # (ReplicaFailoverMiddleware).
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    if read_timeout is None:
        event.listen(engine.sync_engine, "handle_error", _timeout_is_disconnect)
    # A replica's timed-out connection is not invalidated on the spot: SQLAlchemy would first try a graceful close
    # (up to 2 s) on the silent server, inside the failing statement. read_session leaves its cleanup to the
    # background instead (the pool drops it when its reset fails).
    return engine


def _refuse_closed(_dbapi_connection: Any, _record: Any, proxy: Any) -> None:
    """A pooled connection whose server has closed it (a restart, a switchover's shutdown, an idle timeout) is
    replaced at checkout: the driver saw the socket close, so no round trip is needed to know."""
    if proxy.driver_connection.is_closed():
        raise DisconnectionError("closed by the server while in the pool")


def _timeout_is_disconnect(context: Any) -> None:
    """The driver's command timeout fired: the server stopped answering mid-statement, so the connection's state
    is unknown. Close it (never return it to the pool); the pool's older connections are checked on checkout."""
    if isinstance(context.original_exception, TimeoutError):
        context.is_disconnect = True
