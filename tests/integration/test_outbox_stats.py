"""Views: counted in memory on the read path (no database write per view), pushed to Redis, flushed to the
database exactly once, including flushes that die halfway and run again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import event, func, select

from potluck.config import Settings
from potluck.stats.models import StatsFlush
from potluck.stats.service import INFLIGHT_KEY, VIEWS_KEY, flush_key
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.outbox import FAST_RETRIES, view_count


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two API processes' worth of apps (on SQLite one is enough: the embedded default is one process)."""
    manual = settings.model_copy(update={"events": FAST_RETRIES})
    async with running_app(manual) as a:
        if settings.redis.url is None:
            yield a, a
            return
        async with running_app(manual) as b:
            yield a, b


def _writes(client: httpx.AsyncClient) -> list[str]:
    statements: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            statements.append(statement)

    database = container_of(client).database
    for engine in {database.primary, database.primary_reader}:
        event.listen(engine.sync_engine, "before_cursor_execute", spy)
    return statements


async def test_concurrent_views_reach_the_database_exactly_after_a_flush(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = pair
    api = Api(a)
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    writes = _writes(a)
    responses = await asyncio.gather(*((a if i % 2 else b).get(url) for i in range(300)))
    assert {r.status_code for r in responses} == {200}
    missing = await a.get(f"/api/v1/recipes/{uuid.uuid4()}")
    assert missing.status_code == 404  # not a view
    assert writes == []  # no database write on the read path
    assert await view_count(a, recipe["id"]) == 0

    for client in {a, b}:
        await container_of(client).stats.push()  # what each process does every second
    applied = await container_of(a).stats.flush()
    assert applied == 300
    assert await view_count(a, recipe["id"]) == 300
    assert await container_of(a).stats.flush() == 0  # nothing new: nothing applied twice
    assert await view_count(a, recipe["id"]) == 300
    # A view does not change the recipe's version (its ETag), so cached copies stay valid.
    assert (await a.get(url)).json()["version"] == recipe["version"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_flush_that_died_is_finished_once_by_the_next(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], settings: Settings
) -> None:
    a, _ = pair
    api = Api(a)
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    stats = container_of(a).stats
    assert settings.redis.url is not None

    # Died after moving the hash aside, before its transaction: the next flush applies it.
    for _ in range(5):
        await a.get(url)
    await stats.push()
    first = await stats._begin(keys=[VIEWS_KEY, INFLIGHT_KEY], args=["died-early", "potluck:views:flush:"])
    assert first == b"died-early"
    for _ in range(2):
        await a.get(url)
    await stats.push()  # new views land in a fresh hash meanwhile
    assert await stats.flush() == 5
    assert await view_count(a, recipe["id"]) == 5
    assert await stats.flush() == 2
    assert await view_count(a, recipe["id"]) == 7

    # Died after its commit, before deleting the hash: the next flush finds the id recorded and only cleans up.
    for _ in range(3):
        await a.get(url)
    await stats.push()
    flush_id = (await stats._begin(keys=[VIEWS_KEY, INFLIGHT_KEY], args=["died-late", "potluck:views:flush:"])).decode()
    with redis.Redis.from_url(settings.redis.url) as r:
        counts = {uuid.UUID(k.decode()): int(v) for k, v in r.hgetall(flush_key(flush_id)).items()}
    assert await stats._apply(flush_id, counts)
    assert await view_count(a, recipe["id"]) == 10
    assert await stats.flush() == 0
    assert await view_count(a, recipe["id"]) == 10
    with redis.Redis.from_url(settings.redis.url) as r:
        assert r.exists(flush_key(flush_id), INFLIGHT_KEY) == 0
    async with container_of(a).database.read_session(primary=True) as session:
        ids = (await session.execute(select(StatsFlush.flush_id))).scalars().all()
        assert {"died-early", "died-late"} <= set(ids)
        total = (await session.execute(select(func.sum(StatsFlush.views)))).scalar_one()
        assert total == 10


async def test_views_of_a_process_that_stops_are_not_lost(settings: Settings) -> None:
    manual = settings.model_copy(update={"events": FAST_RETRIES})
    async with running_app(manual) as a:
        author = await Api(a).register()
        recipe = await Api(a).create_recipe(author)
        for _ in range(4):
            await a.get(f"/api/v1/recipes/{recipe['id']}")
    # Shut down: its counts were pushed (Redis) or, embedded, flushed; a flush now moves them to the database.
    async with running_app(manual) as c:
        await container_of(c).stats.flush()
        assert await view_count(c, recipe["id"]) == 4
