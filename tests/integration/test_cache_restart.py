"""A Redis restart (empty, same address) costs no errors: the pooled connections it killed reconnect at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Api
from tests.support.app import container_of

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def test_a_restarted_redis_does_not_open_the_breaker(
    client: httpx.AsyncClient, api: Api, redis_server: Any
) -> None:
    container = container_of(client)
    author = await api.register()
    recipes = [await api.create_recipe(author, title=f"Dish {i}") for i in range(8)]

    async def read_all() -> None:
        responses = await asyncio.gather(*(client.get(f"/api/v1/recipes/{r['id']}") for r in recipes))
        assert [r.status_code for r in responses] == [200] * len(recipes)

    await read_all()  # several pooled connections in use at once
    errors = container.registry.get_sample_value
    before = sum(
        errors("potluck_cache_errors_total", {"family": "recipe_detail", "operation": op}) or 0
        for op in ("get", "lease", "fill")
    )
    redis_server.restart()  # every pooled connection is now dead
    container.cache.local.flush()  # make the reads reach Redis
    await read_all()
    after = sum(
        errors("potluck_cache_errors_total", {"family": "recipe_detail", "operation": op}) or 0
        for op in ("get", "lease", "fill")
    )
    assert after == before
    assert container.cache.breaker.allow()
    assert container.registry.get_sample_value("potluck_cache_breaker_open") in (None, 0)
