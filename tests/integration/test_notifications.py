"""Notifications from the outbox: one per follower per new public recipe, fanned out in batches after the
author's write has returned; the inbox API (cursor list, read, read-all, unread count)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, insert, select

from potluck.config import Settings
from potluck.db.base import utcnow
from potluck.events.models import OutboxEvent
from potluck.notification.models import Notification
from potluck.user.models import Follow, User
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.outbox import FAST_RETRIES, drain_until_settled


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    small_batches = FAST_RETRIES.model_copy(update={"fanout_batch_size": 300})
    async with running_app(settings.model_copy(update={"events": small_batches})) as client:
        yield client


async def deliver(client: httpx.AsyncClient) -> None:
    await drain_until_settled(container_of(client).events.relay)


async def notification_counts(client: httpx.AsyncClient, recipe_id: str) -> list[int]:
    """Notifications per follower for the recipe (one entry per follower notified)."""
    async with container_of(client).database.read_session(primary=True) as session:
        stmt = select(func.count()).where(Notification.recipe_id == uuid.UUID(recipe_id)).group_by(Notification.user_id)
        return list((await session.execute(stmt)).scalars().all())


async def test_followers_are_notified_once_per_public_recipe(http: httpx.AsyncClient) -> None:
    api = Api(http)
    author, stranger = await api.register(), await api.register()
    fans = [await api.register() for _ in range(3)]
    for fan in fans:
        assert (await http.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204
    await deliver(http)  # the "followed you" notifications
    public = await api.create_recipe(author, title="Public soup")
    private = await api.create_recipe(author, title="Secret soup", is_public=False)
    await deliver(http)

    assert await notification_counts(http, public["id"]) == [1, 1, 1]
    assert await notification_counts(http, private["id"]) == []
    assert (await http.get("/api/v1/notifications/unread-count", headers=stranger["headers"])).json() == {"unread": 0}
    author_inbox = (await http.get("/api/v1/notifications", headers=author["headers"])).json()
    assert sorted(i["actor"]["id"] for i in author_inbox["items"]) == sorted(f["id"] for f in fans)
    assert {i["kind"] for i in author_inbox["items"]} == {"follow"}

    # Delivered again: nothing new (unique per user, kind and recipe; handled_event for follows).
    async with container_of(http).database.write_session() as session:
        await session.execute(OutboxEvent.__table__.update().values(status="pending", claimed_until=None))
    await deliver(http)
    assert await notification_counts(http, public["id"]) == [1, 1, 1]
    again = (await http.get("/api/v1/notifications", headers=author["headers"])).json()
    assert len(again["items"]) == 3


async def test_inbox_pages_newest_first_and_marks_read(http: httpx.AsyncClient) -> None:
    api = Api(http)
    author, fan, other = await api.register(), await api.register(), await api.register()
    await http.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])
    titles = [f"Dish {i}" for i in range(5)]
    for title in titles:
        await api.create_recipe(author, title=title)
    await deliver(http)

    headers = fan["headers"]
    assert (await http.get("/api/v1/notifications/unread-count", headers=headers)).json() == {"unread": 5}
    seen: list[dict[str, object]] = []
    url: str | None = "/api/v1/notifications?limit=2"
    while url:
        resp = await http.get(url, headers=headers)
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "private, no-store"
        body = resp.json()
        seen += body["items"]
        url = None
        if body["next_cursor"]:
            assert 'rel="next"' in resp.headers["link"]
            url = f"/api/v1/notifications?limit=2&cursor={body['next_cursor']}"
    assert [n["recipe"]["title"] for n in seen] == list(reversed(titles))  # type: ignore[index]
    assert all(n["actor"]["id"] == author["id"] and n["read_at"] is None for n in seen)  # type: ignore[index]

    first = seen[0]["id"]
    assert (await http.post(f"/api/v1/notifications/{first}/read", headers=headers)).status_code == 204
    assert (await http.post(f"/api/v1/notifications/{first}/read", headers=headers)).status_code == 204  # idempotent
    assert (await http.get("/api/v1/notifications/unread-count", headers=headers)).json() == {"unread": 4}
    # Someone else's notification, or none at all: 404, and nothing changes.
    assert (await http.post(f"/api/v1/notifications/{seen[1]['id']}/read", headers=other["headers"])).status_code == 404
    assert (await http.post(f"/api/v1/notifications/{uuid.uuid4()}/read", headers=headers)).status_code == 404
    assert (await http.post("/api/v1/notifications/read-all", headers=headers)).status_code == 204
    assert (await http.get("/api/v1/notifications/unread-count", headers=headers)).json() == {"unread": 0}
    assert (await http.get("/api/v1/notifications", headers=headers)).json()["items"][0]["read_at"] is not None
    assert (await http.get("/api/v1/notifications")).status_code == 401


async def _bulk_followers(client: httpx.AsyncClient, author_id: str, n: int) -> list[uuid.UUID]:
    """n users following the author, inserted directly (registering 1,000 users over HTTP tests nothing here)."""
    now = utcnow()
    ids = [uuid.uuid4() for _ in range(n)]
    users = [
        {
            "id": uid,
            "email": f"f{uid.hex}@example.com",
            "username": f"f{uid.hex[:24]}",
            "password_hash": "x",
            "display_name": "fan",
            "bio": "",
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for uid in ids
    ]
    follows = [{"follower_id": uid, "followee_id": uuid.UUID(author_id), "created_at": now} for uid in ids]
    async with container_of(client).database.write_session() as session:
        await session.execute(insert(User), users)
        await session.execute(insert(Follow), follows)
    return ids


async def test_a_thousand_followers_each_get_one_notification_without_slowing_the_write(
    http: httpx.AsyncClient,
) -> None:
    api = Api(http)
    author = await api.register()
    followers = await _bulk_followers(http, author["id"], 1000)
    await api.create_recipe(author, title="warm-up")  # first-request costs out of the measurement
    await deliver(http)

    started = time.perf_counter()
    recipe = await api.create_recipe(author, title="For a thousand fans")
    write_seconds = time.perf_counter() - started
    # The write returned and nothing has been fanned out: the relay had not run yet.
    assert await notification_counts(http, recipe["id"]) == []

    started = time.perf_counter()
    await deliver(http)
    fan_out_seconds = time.perf_counter() - started
    counts = await notification_counts(http, recipe["id"])
    assert len(counts) == len(followers)
    assert set(counts) == {1}
    # The write's cost does not include the fan-out (1,000 rows in 4 batches of 300, measured separately).
    assert write_seconds < 1.0, (write_seconds, fan_out_seconds)
    print(f"write {write_seconds * 1000:.1f} ms, fan-out of 1000 {fan_out_seconds * 1000:.1f} ms")
