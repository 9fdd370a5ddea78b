"""No invalidation is lost while Redis is unreachable: the relay's strict invalidation fails, the event is retried
with backoff, and once Redis answers again the stale entry goes, even if the API process that wrote has since died.

Redis is made unreachable for the app only (its store's calls fail as on a network partition): a paused server
would run the timed-out DELs still buffered in its sockets when it resumes, and a killed one forgets every entry,
so either would hide the stale value this test is about.
"""

from __future__ import annotations

import pytest
import redis

from potluck.cache.keys import recipe_key
from potluck.cache.store import CacheStoreError
from potluck.config import Settings
from tests.harness import RedisServer
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.eventually import eventually
from tests.support.outbox import FAST_RETRIES, outbox_rows

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def test_an_invalidation_lost_with_its_process_is_delivered_by_the_outbox(
    settings: Settings, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    manual = settings.model_copy(update={"events": FAST_RETRIES.model_copy(update={"max_attempts": 50})})
    async with running_app(manual) as http:
        api = Api(http)
        author = await api.register()
        recipe = await api.create_recipe(author, title="v1")
        url = f"/api/v1/recipes/{recipe['id']}"
        container = container_of(http)
        await container.events.relay.drain()  # recipe.created: invalidated, then warmed with v1
        with redis.Redis.from_url(redis_server.url) as r:
            assert r.exists(recipe_key(recipe["id"]))

        async def unreachable(_keys: object) -> None:
            raise CacheStoreError("ConnectionError: partitioned")

        with monkeypatch.context() as partition:
            partition.setattr(container.cache.store, "delete", unreachable)
            resp = await http.patch(url, json={"title": "v2"}, headers=author["headers"])
            assert resp.status_code == 200  # the write does not depend on Redis
            assert container.cache.pending  # its immediate invalidation waits in this process...
            container.cache.pending.clear()  # ...which dies now, taking the pending set with it
            await container.events.relay.drain()
            updated = next(r for r in await outbox_rows(http) if r.topic == "recipe.updated")
            assert updated.status == "pending"
            assert updated.attempts >= 1
            assert "CacheStoreError" in (updated.last_error or "")

        with redis.Redis.from_url(redis_server.url) as r:
            assert r.exists(recipe_key(recipe["id"]))  # the stale v1 is still in Redis

        async def all_delivered() -> bool:
            await container.events.relay.drain()
            return {r.status for r in await outbox_rows(http)} == {"delivered"}

        await eventually(all_delivered, 5)
        with redis.Redis.from_url(redis_server.url) as r:
            assert not r.exists(recipe_key(recipe["id"]))
        retried = container.registry.get_sample_value(
            "potluck_outbox_deliveries_total", {"topic": "recipe.updated", "outcome": "retried"}
        )
        assert retried is not None
        assert retried >= 1
    async with running_app(manual) as fresh:
        assert (await fresh.get(url)).json()["title"] == "v2"
