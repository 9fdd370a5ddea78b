"""notification and stats_flush partitioned by month on PostgreSQL (migration 0006, db/time_partitions.py, the
`events.partitions` job): re-deliveries stay idempotent, plans prune to a month, expired months are dropped.
SQLite keeps plain tables."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from potluck.config import Settings
from potluck.db import time_partitions as tp
from potluck.db.migrate import alembic_config
from potluck.db.session import WriteSession
from potluck.kit.ids import new_id
from potluck.notification.repository import NotificationRepository
from potluck.schedule import PARTITIONS_TASK, job
from potluck.stats.repository import StatsRepository
from potluck.stats.views import flush_time
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.outbox import FAST_RETRIES, drain_until_settled

RETENTION = timedelta(days=90)


@pytest.fixture
async def http(settings: Settings) -> Any:
    async with running_app(settings.model_copy(update={"events": FAST_RETRIES})) as client:
        yield client


def _pg(client: httpx.AsyncClient) -> Any:
    database = container_of(client).database
    if database.primary.dialect.name != "postgresql":
        pytest.skip("SQLite keeps plain tables")
    return database


async def _where(client: httpx.AsyncClient, sql: str, **params: Any) -> list[str]:
    async with container_of(client).database.read_session(primary=True) as session:
        return [str(r) for r in (await session.execute(text(sql), params)).scalars()]


async def _follow_notification(client: httpx.AsyncClient, created_at: datetime) -> uuid.UUID:
    """A "follow" notification at `created_at` between two new users (no recipe: any month is allowed)."""
    api = Api(client)
    a, b = await api.register(), await api.register()
    nid = uuid.uuid4()
    async with container_of(client).database.write_session() as session:
        await session.execute(
            text(
                "INSERT INTO notification (id, user_id, kind, actor_id, created_at) VALUES (:i, :u, 'follow', :a, :t)"
            ),
            {"i": nid, "u": uuid.UUID(a["id"]), "a": uuid.UUID(b["id"]), "t": created_at},
        )
    return nid


async def _maintain(client: httpx.AsyncClient, table: str, now: datetime) -> tp.TimePartitionChanges:
    async with container_of(client).database.write_session() as session:
        if table == "notification":
            return await NotificationRepository(session).maintain_partitions(now, RETENTION)
        return await StatsRepository(session).maintain_partitions(now, RETENTION)


async def test_sqlite_keeps_plain_tables(http: httpx.AsyncClient) -> None:
    if container_of(http).database.primary.dialect.name != "sqlite":
        pytest.skip("PostgreSQL is partitioned: the tests below")
    far = datetime.now(UTC) + timedelta(days=400)
    assert await _maintain(http, "notification", far) == tp.TimePartitionChanges()
    assert await _maintain(http, "stats_flush", far) == tp.TimePartitionChanges()


async def test_the_migration_partitions_both_tables_by_month(http: httpx.AsyncClient) -> None:
    _pg(http)
    now = datetime.now(UTC)
    for table in ("notification", "stats_flush"):
        kind = await _where(http, "SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)", t=table)
        assert kind == ["p"]
        names = await _where(
            http,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)",
            t=table,
        )
        assert f"{table}_default" in names
        assert {p.name for p in tp.wanted(tp.MONTH, table, now, tp.MONTHS_AHEAD)} <= set(names)


async def test_a_redelivered_fan_out_notifies_each_follower_once(http: httpx.AsyncClient) -> None:
    _pg(http)
    api = Api(http)
    author, fans = await api.register(), [await api.register() for _ in range(3)]
    for fan in fans:
        assert (await http.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204
    recipe = await api.create_recipe(author)
    relay = container_of(http).events.relay
    await drain_until_settled(relay)
    # Delivered again as if the handler's record had been lost (the fan-out ran, its mark did not commit): only
    # the unique key (user_id, kind, recipe_id, created_at) stands between the follower and a second row.
    async with container_of(http).database.write_session() as session:
        await session.execute(text("DELETE FROM handled_event WHERE handler = 'notification.followers'"))
        await session.execute(text("UPDATE outbox_event SET status = 'pending', claimed_until = NULL"))
    await drain_until_settled(relay)
    rows = await _where(
        http,
        "SELECT tableoid::regclass::text FROM notification WHERE recipe_id = :r",
        r=uuid.UUID(recipe["id"]),
    )
    created = datetime.fromisoformat(recipe["created_at"])
    assert rows == [tp.partition(tp.MONTH, "notification", created.astimezone(UTC).date()).name] * len(fans)
    # And straight through the service, twice: the second run inserts nothing.
    notifications = container_of(http).notifications
    async with container_of(http).database.read_session(primary=True) as session:
        plan = await notifications.fan_out_plan(session, uuid.UUID(recipe["id"]))
    assert plan is not None
    for _ in range(2):
        async with container_of(http).database.write_session() as session:
            assert await notifications.notify_range(session, plan, None, None) == 0


async def test_a_retried_flush_is_refused_and_lands_in_its_month(http: httpx.AsyncClient) -> None:
    _pg(http)
    flush_id = str(new_id())
    results = []
    for _ in range(2):
        async with container_of(http).database.write_session() as session:
            results.append(await StatsRepository(session).record_flush(flush_id, 1, 5, flush_time(flush_id)))
    assert results == [True, False]
    rows = await _where(http, "SELECT tableoid::regclass::text FROM stats_flush WHERE flush_id = :f", f=flush_id)
    assert rows == [tp.partition(tp.MONTH, "stats_flush", flush_time(flush_id).date()).name]


async def test_plans_prune_to_the_month_asked_for(http: httpx.AsyncClient) -> None:
    _pg(http)
    month = tp.partition(tp.MONTH, "notification", datetime.now(UTC).date())
    bounded = await _where(
        http,
        "EXPLAIN SELECT * FROM notification WHERE user_id = :u AND created_at >= :s AND created_at < :e "
        "ORDER BY created_at DESC LIMIT 20",
        u=uuid.uuid4(),
        s=month.start,
        e=month.end,
    )
    assert set(re.findall(r"notification_p\d{6}", "\n".join(bounded))) == {month.name}
    assert "notification_default" not in "\n".join(bounded)
    flush_id = str(new_id())
    point = await _where(
        http,
        "EXPLAIN SELECT 1 FROM stats_flush WHERE flush_id = :f AND flushed_at = :t",
        f=flush_id,
        t=flush_time(flush_id),
    )
    assert set(re.findall(r"stats_flush_(?:p\d{6}|default)", "\n".join(point))) == {
        tp.partition(tp.MONTH, "stats_flush", flush_time(flush_id).date()).name
    }
    everything = await _where(http, "EXPLAIN SELECT count(*) FROM notification")
    assert len(set(re.findall(r"notification_p\d{6}", "\n".join(everything)))) > 1


async def test_expired_months_are_dropped_and_late_months_created(http: httpx.AsyncClient) -> None:
    _pg(http)
    now = datetime.now(UTC)
    this_month = tp.partition(tp.MONTH, "notification", now.date()).name
    current = await _follow_notification(http, now)
    ancient = await _follow_notification(http, now - timedelta(days=400))  # older than every month: the default
    later = now + timedelta(days=130)
    stray = await _follow_notification(http, later)  # no month created that far: the default
    where = "SELECT tableoid::regclass::text FROM notification WHERE id = :i"
    assert await _where(http, where, i=ancient) == ["notification_default"]
    assert await _where(http, where, i=stray) == ["notification_default"]

    # 130 days on: the stray's month is created (its row moves in), this month is past 90 days' retention.
    changes = await _maintain(http, "notification", later)
    assert tp.partition(tp.MONTH, "notification", later.date()).name in changes.created
    assert this_month in changes.dropped
    assert changes.moved == 1
    assert changes.deleted == 1  # the ancient row, past retention in the default partition
    assert await _where(http, where, i=current) == []
    assert await _where(http, where, i=ancient) == []
    assert await _where(http, where, i=stray) == [tp.partition(tp.MONTH, "notification", later.date()).name]
    tables = await _where(http, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'notification%'")
    assert this_month not in tables  # dropped, not detached
    again = await _maintain(http, "notification", later)
    assert again == tp.TimePartitionChanges()


async def test_the_scheduled_job_keeps_every_table_ahead(http: httpx.AsyncClient) -> None:
    _pg(http)
    now = datetime.now(UTC)
    ahead = [tp.wanted(tp.MONTH, table, now, tp.MONTHS_AHEAD)[-1].name for table in ("notification", "stats_flush")]
    async with container_of(http).database.write_session() as session:
        for name in ahead:
            await session.execute(text(f"DROP TABLE {name}"))
    # (the outbox drops the days the migration back-filled past its 7 days: counted too)
    assert await job(PARTITIONS_TASK).run(container_of(http)) >= 2
    tables = await _where(http, "SELECT tablename FROM pg_tables WHERE tablename = ANY(:n)", n=ahead)
    assert sorted(tables) == sorted(ahead)


async def test_two_runs_at_once_do_the_work_once(http: httpx.AsyncClient) -> None:
    _pg(http)
    future = datetime.now(UTC) + timedelta(days=400)
    first, second = await asyncio.gather(_maintain(http, "stats_flush", future), _maintain(http, "stats_flush", future))
    created = list(first.created) + list(second.created)
    assert len(created) == len(set(created)) == tp.MONTHS_AHEAD + 1


async def test_the_migration_downgrades_and_upgrades_keeping_the_rows(http: httpx.AsyncClient) -> None:
    database = _pg(http)
    kept = await _follow_notification(http, datetime.now(UTC))
    flush_id = str(new_id())
    async with database.write_session() as session:
        await StatsRepository(session).record_flush(flush_id, 1, 5, flush_time(flush_id))

    def migrate(connection: object, action: str) -> None:
        cfg = command_config(connection)
        if action == "down":
            command.downgrade(cfg, "0004")
        else:
            command.upgrade(cfg, "heads")

    for action, kind in (("down", "r"), ("up", "p")):
        async with database.primary.begin() as connection:
            await connection.run_sync(migrate, action)
        async with WriteSession(bind=database.primary) as session:
            relkinds = await session.execute(
                text(
                    "SELECT relkind::text FROM pg_class WHERE oid IN (to_regclass('notification'), "
                    "to_regclass('stats_flush'))"
                )
            )
            assert set(relkinds.scalars()) == {kind}
            if action == "down":  # a ledger row as the plain table wrote them: stamped when applied
                await session.execute(text("UPDATE stats_flush SET flushed_at = now() + interval '1 hour'"))
                await session.commit()
        assert len(await _where(http, "SELECT 1 FROM notification WHERE id = :i", i=kept)) == 1
        assert await _where(http, "SELECT flush_id FROM stats_flush") == [flush_id]
    # the upgrade re-stamped it with its id's time: a retry of that flush after the upgrade is still refused
    async with database.write_session() as session:
        assert not await StatsRepository(session).record_flush(flush_id, 1, 5, flush_time(flush_id))


def command_config(connection: object) -> Any:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    return cfg
