"""The transactional outbox on both backends: recorded with the change, delivered after commit, at least once,
in order per aggregate, retried with backoff, dead-lettered and replayed; handlers' effects happen once.

The relay is driven by the test here (`relay.drain()`, what the worker's task does), so every step is visible.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from potluck.config import Settings
from potluck.db.session import WriteSession
from potluck.events.models import OutboxEvent
from potluck.events.registry import HandlerRegistry
from potluck.events.relay import Relay
from potluck.events.repository import Event
from potluck.events.service import EventAdmin
from potluck.events.topics import RATING_CREATED, RECIPE_CREATED, RECIPE_DELETED, RECIPE_UPDATED, USER_REGISTERED
from potluck.recipe.models import Recipe
from potluck.recipe.schemas import RecipeCreate
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.eventually import eventually
from tests.support.outbox import FAST_RETRIES, drain_until_settled, outbox_rows, view_count


@pytest.fixture
def manual_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"events": FAST_RETRIES})


@pytest.fixture
async def http(manual_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(manual_settings) as client:
        yield client


async def test_writes_record_their_events_in_the_same_transaction(http: httpx.AsyncClient) -> None:
    api = Api(http)
    author, fan = await api.register(), await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    assert (await http.patch(url, json={"title": "New"}, headers=author["headers"])).status_code == 200
    assert (await http.put(f"{url}/rating", json={"stars": 4}, headers=fan["headers"])).status_code == 200
    assert (await http.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204
    assert (await http.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204
    assert (await http.delete(url, headers=author["headers"])).status_code == 204

    # Each registration also recorded user.registered (its verification email): not what this test is about.
    rows = [r for r in await outbox_rows(http) if r.topic != USER_REGISTERED]
    assert [r.topic for r in rows] == [
        RECIPE_CREATED,
        RECIPE_UPDATED,
        RATING_CREATED,
        "user.followed",  # once: the second follow changed nothing
        RECIPE_DELETED,
    ]
    assert {r.status for r in rows} == {"pending"}
    scopes = rows[0].payload.pop("search_scopes")  # its lexemes' search generations (none on SQLite)
    assert bool(scopes) == (container_of(http).database.dialect == "postgresql")
    assert all(key.startswith("gen:search:lex:") for key in scopes)
    assert rows[0].payload == {"author_id": author["id"], "is_public": True}
    assert rows[3].aggregate_id == uuid.UUID(author["id"])
    assert rows[3].payload == {"follower_id": fan["id"]}

    await drain_until_settled(container_of(http).events.relay)
    assert {r.status for r in await outbox_rows(http)} == {"delivered"}


async def test_a_rolled_back_change_records_nothing(http: httpx.AsyncClient) -> None:
    api = Api(http)
    author, fan = await api.register(), await api.register()
    await http.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])
    container = container_of(http)
    before = len(await outbox_rows(http))

    async def create_then_fail() -> None:
        async with container.database.write_session() as session:
            await container.recipes.create(session, uuid.UUID(author["id"]), RecipeCreate(title="Never"))
            raise RuntimeError("something failed after the insert")

    with pytest.raises(RuntimeError, match="after the insert"):
        await create_then_fail()
    assert len(await outbox_rows(http)) == before
    await drain_until_settled(container.events.relay)
    assert (await http.get("/api/v1/notifications/unread-count", headers=fan["headers"])).json() == {"unread": 0}


def _relay(client: httpx.AsyncClient, registry: HandlerRegistry, **overrides: Any) -> Relay:
    container = container_of(client)
    settings = FAST_RETRIES.model_copy(update=overrides)
    return Relay(container.events.database, registry, container.events.metrics, settings)


async def test_a_handler_failing_twice_is_retried_and_its_effect_happens_once(http: httpx.AsyncClient) -> None:
    api = Api(http)
    author = await api.register()
    recipe = await api.create_recipe(author)
    calls = 0

    async def flaky(session: WriteSession, event: Event) -> None:
        nonlocal calls
        calls += 1
        await session.execute(
            update(Recipe).where(Recipe.id == event.aggregate_id).values(view_count=Recipe.view_count + 1)
        )
        if calls <= 2:
            raise ConnectionError(f"attempt {calls} fails after its effect")

    registry = HandlerRegistry()
    registry.register_transactional(RECIPE_CREATED, "test.flaky", flaky)
    relay = _relay(http, registry)
    await drain_until_settled(relay)
    assert calls == 3
    assert await view_count(http, recipe["id"]) == 1  # the failed attempts rolled back their effect
    row = next(r for r in await outbox_rows(http) if r.topic == RECIPE_CREATED)
    assert (row.status, row.attempts) == ("delivered", 2)
    retried = {"topic": RECIPE_CREATED, "outcome": "retried"}
    assert container_of(http).registry.get_sample_value("potluck_outbox_deliveries_total", retried) == 2

    # Delivered again (a relay whose lease ran out, a replay): the handler is skipped, the effect stays single.
    async with container_of(http).database.write_session() as session:
        await session.execute(update(OutboxEvent).values(status="pending", claimed_until=None))
    await drain_until_settled(relay)
    assert calls == 3
    assert await view_count(http, recipe["id"]) == 1


async def test_an_event_out_of_attempts_is_dead_lettered_and_replayed(http: httpx.AsyncClient) -> None:
    api = Api(http)
    author = await api.register()
    recipe = await api.create_recipe(author)
    healthy = False
    delivered: list[str] = []

    async def fragile(event: Event) -> None:
        if not healthy:
            raise TimeoutError("downstream is down")
        delivered.append(event.topic)

    registry = HandlerRegistry()
    registry.register(RECIPE_CREATED, "test.fragile", fragile)
    registry.register(RECIPE_UPDATED, "test.fragile", fragile)
    relay = _relay(http, registry, max_attempts=3)
    await drain_until_settled(relay)
    # The aggregate moves on once its head is dead: a later event is delivered.
    healthy = True
    await http.patch(f"/api/v1/recipes/{recipe['id']}", json={"title": "later"}, headers=author["headers"])
    await drain_until_settled(relay)
    assert delivered == [RECIPE_UPDATED]

    admin = EventAdmin()
    async with container_of(http).database.read_session(primary=True) as session:
        dead = await admin.dead(session, 10)
    assert [(e.topic, e.attempts) for e in dead] == [(RECIPE_CREATED, 3)]
    assert "downstream is down" in (dead[0].last_error or "")
    async with container_of(http).database.write_session() as session:
        assert await admin.replay(session, dead[0].id)
    async with container_of(http).database.write_session() as session:
        assert not await admin.replay(session, dead[0].id)  # no longer dead
    await drain_until_settled(relay)
    assert delivered == [RECIPE_UPDATED, RECIPE_CREATED]
    async with container_of(http).database.read_session(primary=True) as session:
        assert await admin.dead(session, 10) == []


async def test_events_of_one_recipe_arrive_in_order_with_several_relays_and_a_failure(
    http: httpx.AsyncClient,
) -> None:
    api = Api(http)
    author = await api.register()
    recipes = [await api.create_recipe(author, title=f"R{i}") for i in range(4)]
    for round_ in range(5):
        for r in recipes:
            resp = await http.patch(
                f"/api/v1/recipes/{r['id']}", json={"title": f"{r['title']}-{round_}"}, headers=author["headers"]
            )
            assert resp.status_code == 200
    expected: dict[uuid.UUID, list[int]] = {}
    for row in await outbox_rows(http):
        if row.topic != USER_REGISTERED:  # the author's verification email is not what this test is about
            expected.setdefault(row.aggregate_id, []).append(row.id)

    seen: dict[uuid.UUID, list[int]] = {}
    failed: set[int] = set()

    async def record(event: Event) -> None:
        # The third event of every recipe fails once: its successors must wait for it.
        if expected[event.aggregate_id].index(event.id) == 2 and event.id not in failed:
            failed.add(event.id)
            raise RuntimeError("transient")
        await asyncio.sleep(0.001)
        seen.setdefault(event.aggregate_id, []).append(event.id)

    registry = HandlerRegistry()
    for topic in (RECIPE_CREATED, RECIPE_UPDATED):
        registry.register(topic, "test.record", record)
    relays = [_relay(http, registry, relay_batch_size=3) for _ in range(3)]

    async def all_seen() -> bool:
        await asyncio.gather(*(r.drain(budget_seconds=2) for r in relays))
        return sum(len(v) for v in seen.values()) == sum(len(v) for v in expected.values())

    await eventually(all_seen, 10, interval=0.02, message=lambda: f"seen {seen}, expected {expected}")
    assert seen == expected
    assert len(failed) == len(recipes)
