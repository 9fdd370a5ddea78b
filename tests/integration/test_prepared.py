"""Prepared column selects on PostgreSQL's driver (db/prepared.py): the rows SQLAlchemy would give, counted and
traced like any statement, and every failure raised and handled as SQLAlchemy raises it. (Recipe documents read
this way are compared byte for byte with the ORM's in test_recipe_documents.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Select, bindparam, cast, event, func, literal, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import Integer, Numeric, String

from potluck.config import DatabaseSettings
from potluck.db.engine import Database
from potluck.db.prepared import Prepared
from tests.support.statements import DriverFetches


def _typed() -> Select[Any]:
    """A select of the types whose values SQLAlchemy processes on asyncpg (a numeric as float) or passes through."""
    return select(
        cast(bindparam("number"), Numeric(asdecimal=False)).label("number"),
        cast(bindparam("word"), String).label("word"),
        literal(uuid.UUID(int=7)).label("ident"),
        func.now().label("moment"),
        func.array_agg(cast(bindparam("number"), Integer)).label("numbers"),
    )


async def test_rows_are_what_sqlalchemy_gives_and_come_from_the_driver(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = Prepared(_typed())
    params = {"number": "2.5", "word": "thyme"}
    async with database.read_session(primary=True) as session:
        expected = (await session.execute(prepared.statement, params)).one()
    fetches = DriverFetches(monkeypatch)
    async with database.read_rows(primary=True) as read:
        assert read.driver
        (row,) = await read.rows(prepared, params)
        (again,) = await read.rows(prepared, params)  # the compiled plan is reused
    assert fetches.count == 2
    assert row.number == expected.number == 2.5
    assert isinstance(row.number, float)  # SQLAlchemy's result processor ran (asyncpg gives a Decimal)
    assert (row.word, row.ident, row.numbers) == (expected.word, expected.ident, expected.numbers)
    assert row.moment.tzinfo is not None
    assert again.word == "thyme"


async def test_driver_fetches_are_counted_timed_and_seen_by_statement_listeners(pg_database_url: str) -> None:
    registry = CollectorRegistry()
    database = Database.from_settings(pg_database_url, DatabaseSettings(url=pg_database_url), registry)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(database.primary.sync_engine, "before_cursor_execute", record)
    try:
        async with database.read_rows(primary=True) as read:
            assert read.driver
            await read.rows(Prepared(select(literal(1).label("one"))))
    finally:
        event.remove(database.primary.sync_engine, "before_cursor_execute", record)
        await database.dispose()
    assert len(seen) == 1
    assert seen[0].startswith("SELECT")
    labels = {"role": "primary", "node": "primary"}
    assert registry.get_sample_value("potluck_db_queries_total", labels) == 1
    assert registry.get_sample_value("potluck_db_query_duration_seconds_count", {"role": "primary"}) == 1


async def test_a_failing_statement_raises_as_sqlalchemy_raises_it_and_is_sent_once(database: Database) -> None:
    prepared = Prepared(select(cast(bindparam("word", type_=String), Integer).label("number")))
    sent: list[str] = []
    ended: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        ended.append(statement)

    event.listen(database.primary.sync_engine, "before_cursor_execute", before)
    event.listen(database.primary.sync_engine, "after_cursor_execute", after)
    try:
        async with database.read_rows(primary=True) as read:
            with pytest.raises(DBAPIError, match="invalid input syntax"):
                await read.rows(prepared, {"word": "not a number"})
            assert len(sent) == 1  # not run a second time through SQLAlchemy
            assert len(ended) == 1  # the statement's timing and span end with it
            assert (await read.rows(prepared, {"word": "12"}))[0].number == 12  # the connection is fine after it
    finally:
        event.remove(database.primary.sync_engine, "before_cursor_execute", before)
        event.remove(database.primary.sync_engine, "after_cursor_execute", after)


async def test_a_missing_value_is_refused_not_sent_as_null(database: Database) -> None:
    prepared = Prepared(select(cast(bindparam("word", type_=String), Integer).label("number")))
    async with database.read_rows(primary=True) as read:
        with pytest.raises(ValueError, match="'word'"):
            await read.rows(prepared, {})


async def test_a_primary_gone_silent_under_the_driver_retires_its_other_connections(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = Prepared(select(func.pg_backend_pid().label("pid")))
    async with database.read_rows(primary=True) as read:
        pid = (await read.rows(prepared))[0].pid

    async def silent(*_: Any, **__: Any) -> Any:
        raise TimeoutError  # what asyncpg raises when the command timeout passes

    generation = database._generation
    with monkeypatch.context() as patch:
        patch.setattr(asyncpg.Connection, "fetch", silent)
        with pytest.raises(TimeoutError):
            async with database.read_rows(primary=True) as read:
                await read.rows(prepared)
    assert database._generation == generation + 1  # every older pooled connection is replaced at checkout
    async with database.read_rows(primary=True) as read:
        assert (await read.rows(prepared))[0].pid != pid


async def test_a_connection_lost_mid_read_is_not_pooled_again(database: Database) -> None:
    async with database.read_rows(primary=True) as read:
        pid = (await read.rows(Prepared(select(func.pg_backend_pid().label("pid")))))[0].pid
    url = make_url(database.primary.url)
    admin = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        async with database.read_rows(primary=True) as read:
            assert (await read.rows(Prepared(select(func.pg_backend_pid().label("pid")))))[0].pid == pid
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises((DBAPIError, OSError)):
                await read.rows(Prepared(select(text("pg_sleep(0)"), literal(1).label("one"))))
    finally:
        await admin.close()
    async with database.read_rows(primary=True) as read:
        assert (await read.rows(Prepared(select(func.pg_backend_pid().label("pid")))))[0].pid != pid


async def test_behind_pgbouncer_prepared_statements_take_sqlalchemy_s_path(
    pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In transaction pooling a read keeps its transaction (its prepare and execute must share a server)."""
    settings = DatabaseSettings(url=pg_database_url, pool_size=1, pgbouncer_transaction_pooling=True)
    database = Database.from_settings(pg_database_url, settings)
    fetches = DriverFetches(monkeypatch)
    try:
        async with database.read_rows(primary=True) as read:
            assert not read.driver
            assert (await read.rows(Prepared(select(literal(3).label("three")))))[0].three == 3
    finally:
        await database.dispose()
    assert fetches.count == 0
