"""The outbox partitioned by day on PostgreSQL (migration 0004, OutboxRepository.maintain_partitions, the
`events.partitions` job); SQLite keeps its plain table and the DELETE purge."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from potluck.config import DatabaseSettings
from potluck.db import time_partitions as tp
from potluck.db.engine import create_engine
from potluck.db.migrate import alembic_config
from potluck.db.session import WriteSession
from potluck.events import partitions
from potluck.events.repository import OutboxRepository, PartitionChanges
from potluck.schedule import PARTITIONS_TASK, PURGE_TASK, SCHEDULE

RETENTION = timedelta(days=7)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, DatabaseSettings())
    yield engine
    await engine.dispose()


async def _add(engine: AsyncEngine, created_at: datetime, *, status: str = "pending", handled: bool = False) -> int:
    async with WriteSession(bind=engine) as session:
        event_id = await OutboxRepository(session).add("recipe.created", "recipe", uuid.uuid4(), {}, created_at)
        if status != "pending":
            await session.execute(
                text("UPDATE outbox_event SET status = :s WHERE id = :i"), {"s": status, "i": event_id}
            )
        if handled:
            await OutboxRepository(session).mark_handled(event_id, "search.index", created_at)
        await session.commit()
    return event_id


async def _maintain(engine: AsyncEngine, now: datetime) -> PartitionChanges:
    async with WriteSession(bind=engine) as session:
        changes = await OutboxRepository(session).maintain_partitions(now, RETENTION)
        await session.commit()
    return changes


async def _where(engine: AsyncEngine, event_id: int) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            text("SELECT tableoid::regclass::text FROM outbox_event WHERE id = :i"), {"i": event_id}
        )


def test_the_job_is_scheduled_before_the_purge() -> None:
    names = [job.name for job in SCHEDULE]
    assert names.index(PARTITIONS_TASK) < names.index(PURGE_TASK)


async def test_sqlite_keeps_a_plain_table(engine: AsyncEngine, database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL is partitioned: the tests below")
    now = datetime.now(UTC)
    old = await _add(engine, now - timedelta(days=9), status="delivered")
    assert await _maintain(engine, now) == PartitionChanges()  # nothing to do
    async with WriteSession(bind=engine) as session:
        assert not await OutboxRepository(session).partitioned()
        assert await OutboxRepository(session).purge_delivered(now - RETENTION) == 1
        await session.commit()
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox_event WHERE id = :i"), {"i": old}) == 0


@pytest.fixture
async def pg(engine: AsyncEngine, database_url: str) -> AsyncEngine:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps a plain outbox")
    return engine


async def test_the_migration_partitions_the_outbox_by_day(pg: AsyncEngine) -> None:
    now = datetime.now(UTC)
    async with WriteSession(bind=pg) as session:
        repo = OutboxRepository(session)
        assert await repo.partitioned()
        names = await repo.partition_names()
    assert "outbox_event_default" in names
    for part in tp.wanted(tp.DAY, "outbox_event", now, partitions.DAYS_AHEAD):
        assert part.name in names
    event_id = await _add(pg, now)
    assert await _where(pg, event_id) == tp.partition(tp.DAY, "outbox_event", now.date()).name


async def test_expired_days_are_dropped_and_undelivered_rows_kept(pg: AsyncEngine) -> None:
    now = datetime.now(UTC)
    # ids across the first handler-record block's end (1,000,000): the dead and the delivered event in it
    async with pg.begin() as conn:
        await conn.execute(text("ALTER SEQUENCE outbox_event_id_seq RESTART WITH 999998"))
    dead = await _add(pg, now, status="dead", handled=True)
    delivered = await _add(pg, now, status="delivered", handled=True)
    pending = await _add(pg, now)
    # A day nobody created a partition for yet (the job "did not run"): its rows land in the default partition.
    later = now + timedelta(days=5)
    stray = await _add(pg, later, status="delivered")
    assert await _where(pg, stray) == "outbox_event_default"

    # Nine days on: today's partition has expired, the coming days are created (moving the stray row in).
    future = now + timedelta(days=9)
    changes = await _maintain(pg, future)
    today = tp.partition(tp.DAY, "outbox_event", now.date()).name
    assert today in changes.dropped
    assert changes.kept == 2  # the pending and the dead event
    assert changes.moved == 0  # the stray day (now + 5) is not among the days created (now + 9 on)
    assert await _where(pg, delivered) is None
    assert await _where(pg, pending) == "outbox_event_default"
    assert await _where(pg, dead) == "outbox_event_default"
    assert changes.blocks_dropped == ("handled_event_b0",)
    async with pg.connect() as conn:
        handled = dict((await conn.execute(text("SELECT event_id, tableoid::regclass::text FROM handled_event"))).all())
        tables = set(await conn.scalars(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'outbox_event%'")))
    assert delivered not in handled  # its handler record went with its block
    # a dead event's records stay (a replay must not run a handler twice), moved out of the dropped block
    assert handled[dead] == "handled_event_default"
    assert today not in tables  # dropped, not just detached
    for part in tp.wanted(tp.DAY, "outbox_event", future, partitions.DAYS_AHEAD):
        assert part.name in tables
    # running again changes nothing
    again = await _maintain(pg, future)
    assert (again.created, again.dropped) == ((), ())


async def test_a_late_partition_takes_its_rows_from_the_default_partition(pg: AsyncEngine) -> None:
    now = datetime.now(UTC)
    far = now + timedelta(days=partitions.DAYS_AHEAD + 2)
    early = await _add(pg, far)
    assert await _where(pg, early) == "outbox_event_default"
    changes = await _maintain(pg, far)
    assert changes.moved == 1
    assert await _where(pg, early) == tp.partition(tp.DAY, "outbox_event", far.date()).name


async def test_two_runs_at_once_do_the_work_once(pg: AsyncEngine) -> None:
    future = datetime.now(UTC) + timedelta(days=20)
    first, second = await asyncio.gather(_maintain(pg, future), _maintain(pg, future))
    created = list(first.created) + list(second.created)
    assert len(created) == len(set(created)) == partitions.DAYS_AHEAD + 1


async def test_plans_prune_to_the_days_asked_for(pg: AsyncEngine) -> None:
    now = datetime.now(UTC)
    day = tp.partition(tp.DAY, "outbox_event", now.date())
    async with pg.connect() as conn:
        plan = "\n".join(
            await conn.scalars(
                text("EXPLAIN SELECT count(*) FROM outbox_event WHERE created_at >= :s AND created_at < :e"),
                {"s": day.start, "e": day.end},
            )
        )
        everything = "\n".join(await conn.scalars(text("EXPLAIN SELECT count(*) FROM outbox_event")))
    assert set(re.findall(r"outbox_event_p\d{8}", plan)) == {day.name}
    assert "outbox_event_default" not in plan
    assert len(set(re.findall(r"outbox_event_p\d{8}", everything))) > 1


async def test_the_migration_downgrades_and_upgrades_keeping_the_rows(pg: AsyncEngine) -> None:
    now = datetime.now(UTC)
    kept = [await _add(pg, now), await _add(pg, now - timedelta(days=30), status="dead")]

    def migrate(connection: object, action: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        if action == "down":
            command.downgrade(cfg, "0003")
        else:
            command.upgrade(cfg, "heads")

    for action in ("down", "up"):
        async with pg.begin() as connection:
            await connection.run_sync(migrate, action)
        async with WriteSession(bind=pg) as session:
            assert await OutboxRepository(session).partitioned() is (action == "up")
        for event_id in kept:
            assert await _where(pg, event_id) is not None
    # the sequence still hands out fresh ids
    assert await _add(pg, now) > max(kept)
