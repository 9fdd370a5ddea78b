"""Pages that hydrate cold recipe documents (list first pages, search, trending) fill recipe:{id} together
(`Cache.fill_many`): against real Redis and PostgreSQL, two apps standing for two API processes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from potluck.cache.entry import decode
from potluck.cache.keys import recipe_key
from potluck.config import Settings
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.outbox import drain_until_settled
from tests.support.statements import StatementCounter, raw_cache_value, reads_recipe_documents

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

LIST = "/api/v1/recipes"


def _patient(settings: Settings) -> Settings:
    """Both apps and every reader share one event loop: on a loaded 2-core box a waiter could read through after
    lease_wait_ms, or a Redis call pass timeout_ms (the property is one load, not speed)."""
    cache = settings.cache.model_copy(update={"lease_wait_ms": 10_000, "timeout_ms": 5_000})
    return settings.model_copy(update={"cache": cache})


async def _cold_page(a: httpx.AsyncClient, count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`count` recipes on the first page of the newest list, the page's ids cached, every document cold."""
    api = Api(a)
    author = await api.register()
    recipes = [await api.create_recipe(author, title=f"Dish {i}") for i in range(count)]
    await drain_until_settled(container_of(a).relay)
    assert (await a.get(LIST, params={"limit": count})).status_code == 200
    await container_of(a).cache.invalidate_strict([recipe_key(r["id"]) for r in recipes])
    return author, recipes


async def test_concurrent_cold_pages_across_processes_read_the_documents_once(settings: Settings) -> None:
    async with running_app(_patient(settings)) as a, running_app(_patient(settings)) as b:
        _, recipes = await _cold_page(a, 6)
        with StatementCounter(a, b, counts=reads_recipe_documents) as reads:
            pages = await asyncio.gather(*((a if i % 2 else b).get(LIST, params={"limit": 6}) for i in range(16)))
        assert {p.status_code for p in pages} == {200}
        assert len({p.content for p in pages}) == 1
        assert reads.count == 1  # one reader took every lease and read the six at once; the others waited
        assert {item["id"] for item in pages[0].json()["items"]} == {r["id"] for r in recipes}


async def test_a_write_between_a_pages_load_and_its_fills_refuses_that_fill_only(settings: Settings) -> None:
    async with running_app(settings) as a, running_app(settings) as b:
        author, recipes = await _cold_page(a, 3)
        edited, kept = recipes[0], recipes[1]
        key = recipe_key(edited["id"])
        # Under lease_ms (3 s), long enough for B's write to commit inside it on a loaded machine.
        container_of(a).faults.pause_before_fill[key] = 2.5
        slow_page = asyncio.create_task(a.get(LIST, params={"limit": 3}))
        await container_of(a).faults.wait_paused(key)  # A read the three documents and holds their leases
        raw = raw_cache_value(settings, key)
        assert raw is not None
        assert raw.startswith(b"L|")
        url = f"/api/v1/recipes/{edited['id']}"
        assert (await b.patch(url, json={"title": "Renamed"}, headers=author["headers"])).status_code == 200
        assert (await slow_page).status_code == 200  # it read before the write committed: fine to return
        stale = raw_cache_value(settings, key)
        entry = decode(stale) if stale else None
        assert entry is None or b"Renamed" in (entry.payload or b"")  # ... never to store
        kept_raw = raw_cache_value(settings, recipe_key(kept["id"]))
        assert kept_raw is not None
        assert decode(kept_raw) is not None  # the other fills of the same round trip went in
        refused = container_of(a).registry.get_sample_value(
            "potluck_cache_fills_total", {"family": "recipe_detail", "outcome": "refused"}
        )
        assert refused == 1
        for c in (a, b):
            titles = [r["title"] for r in (await c.get(LIST, params={"limit": 3})).json()["items"]]
            assert "Renamed" in titles
            assert (await c.get(url)).json()["title"] == "Renamed"
