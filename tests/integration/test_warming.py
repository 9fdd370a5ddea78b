"""The warm_cache job: what it fills, that it fills through the guarded path, and what it is for (a cold Redis)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from potluck.cache.entry import decode
from potluck.cache.keys import SEARCH_GENERATION_KEY, recipe_key, trending_key
from potluck.config import Settings, WorkerSettings
from potluck.recipe.models import Recipe
from potluck.search.query import normalise
from potluck.seed.loader import load
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.eventually import eventually

RECIPES = "/api/v1/recipes"


async def _set_views(client: httpx.AsyncClient, views: dict[str, int]) -> None:
    async with container_of(client).database.write_session() as session:
        for recipe_id, n in views.items():
            await session.execute(update(Recipe).where(Recipe.id == uuid.UUID(recipe_id)).values(view_count=n))
        await session.commit()


async def _cached(client: httpx.AsyncClient, key: str) -> bytes | None:
    """The shared tier's entry for `key` (None when absent or only a lease)."""
    raw = await container_of(client).cache.store.get(key)
    entry = decode(raw) if raw is not None else None
    return entry.payload if entry is not None else None


async def _forget(client: httpx.AsyncClient, ids: list[str], queries: tuple[str, ...] = ()) -> None:
    """A cold cache for these recipes and every search (what a Redis restart does to them), once the in-process
    relay (embedded default) has delivered the creations, whose handlers warm each new recipe."""
    container = container_of(client)
    if container.events.in_process:

        async def delivered() -> bool:
            await container.events.refresh_gauges()
            return container.registry.get_sample_value("potluck_outbox_backlog") == 0

        await eventually(delivered, 10)
    cache = container.cache
    await cache.invalidate([recipe_key(i) for i in ids] + [trending_key(p) for p in ("day", "week", "month")])
    await cache.bump_generation(SEARCH_GENERATION_KEY)
    # Exact matches are under their words' generations (search/scope.py): forget them all as a restart would.
    await cache.invalidate([key for q in queries if (key := await container.search.shared_key(normalise(q)))])


async def test_warm_fills_popular_recipes_searches_and_trending(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    soup = await api.create_recipe(author, title="Tomato soup")
    others = {"ingredients": [{"name": "rice", "quantity": 1, "unit": "cup"}], "steps": ["Cook."], "tags": ["main"]}
    curry = await api.create_recipe(author, title="Green curry", description="Coconut and basil.", **others)
    stew = await api.create_recipe(author, title="Lentil stew", description="Earthy.", **others)
    secret = await api.create_recipe(author, title="Secret soup", is_public=False)
    ids = [r["id"] for r in (soup, curry, stew, secret)]
    await _set_views(client, {soup["id"]: 50, curry["id"]: 40, stew["id"]: 30, secret["id"]: 100})
    for q in ("soup", "soup", "soup", "stew"):
        assert (await client.get("/api/v1/search", params={"q": q})).status_code == 200
    await _forget(client, ids, ("soup", "stew"))
    assert await _cached(client, recipe_key(soup["id"])) is None

    container = container_of(client)
    report = await container.background.warmer.run(recipes=1, searches=1, trending_items=0)

    # The most read public recipe (the private one has more views but is nobody else's to read)...
    assert await _cached(client, recipe_key(soup["id"])) is not None
    assert await _cached(client, recipe_key(curry["id"])) is None
    # ...and the top search ("soup", whose only public result is the tomato soup), with the recipe on it.
    soup_key, stew_key = [await container.search.shared_key(normalise(q)) for q in ("soup", "stew")]
    assert soup_key is not None
    assert stew_key is not None
    page = await _cached(client, soup_key)
    assert page is not None
    assert soup["id"].replace("-", "") in page.decode()
    assert secret["id"].replace("-", "") not in page.decode()
    assert await _cached(client, recipe_key(soup["id"])) is not None
    # "stew" was the second search: not warmed with searches=1; the stew itself is neither popular enough.
    assert await _cached(client, stew_key) is None
    assert await _cached(client, recipe_key(stew["id"])) is None
    assert await _cached(client, recipe_key(secret["id"])) is None
    for period in ("day", "week", "month"):
        assert await _cached(client, trending_key(period)) is not None
    assert report.searches == 1
    assert report.trending_lists == 3
    assert report.recipes == 1  # the soup: top of the popular list and the only public result of "soup"


async def test_warm_covers_the_popular_recipes_in_view_order(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    made = [await api.create_recipe(author, title=f"Dish {i}") for i in range(6)]
    ids = [r["id"] for r in made]
    await _set_views(client, {recipe_id: 10 * (i + 1) for i, recipe_id in enumerate(ids)})  # the last is most read
    await _forget(client, ids)
    report = await container_of(client).background.warmer.run(recipes=3, searches=0, trending_items=0)
    assert report.recipes == 3
    cached = [await _cached(client, recipe_key(i)) is not None for i in ids]
    assert cached == [False, False, False, True, True, True]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_embedded_default_runs_the_scheduled_jobs_itself(settings: Settings) -> None:
    """No beat without Redis: the API process warms its own cache and recomputes the trending lists."""
    fast = settings.model_copy(
        update={"worker": WorkerSettings(warm_interval_seconds=0.2, trending_interval_seconds=0.2)}
    )
    async with running_app(fast) as client:
        api = Api(client)
        author = await api.register()
        recipe = await api.create_recipe(author)
        await _set_views(client, {recipe["id"]: 5})
        await _forget(client, [recipe["id"]])

        async def warmed() -> bool:
            return bool(await _cached(client, recipe_key(recipe["id"])) and await _cached(client, trending_key("week")))

        await eventually(warmed, 5, message="the in-process schedule did not warm the recipe")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_warm_fill_racing_a_write_is_refused(client: httpx.AsyncClient, api: Api) -> None:
    """Property 2 for the warm job: it loads version 1, a PATCH commits, its fill must not store version 1."""
    author = await api.register()
    recipe = await api.create_recipe(author, title="Before")
    await _forget(client, [recipe["id"]])
    container = container_of(client)
    key = recipe_key(recipe["id"])
    container.faults.pause_before_fill[key] = 1.0
    warming = asyncio.create_task(container.background.warmer.run(recipes=1, searches=0, trending_items=0))
    await container.faults.wait_paused(key)  # the warm job has loaded version 1 and sits on its lease
    resp = await client.patch(f"{RECIPES}/{recipe['id']}", json={"title": "After"}, headers=author["headers"])
    assert resp.status_code == 200
    await warming
    payload = await _cached(client, key)
    assert payload is None or b'"title":"After"' in payload
    assert (await client.get(f"{RECIPES}/{recipe['id']}")).json()["title"] == "After"
    refused = container.registry.get_sample_value(
        "potluck_cache_fills_total", {"family": "recipe_detail", "outcome": "refused"}
    )
    assert refused == 1


async def test_scheduled_rollup_feeds_trending_queries(client: httpx.AsyncClient) -> None:
    for q in ("pasta", "pasta", "ramen"):
        assert (await client.get("/api/v1/search", params={"q": q})).status_code == 200
    container = container_of(client)
    assert await container.search_analytics.rollup(hours=24) == 2
    body = (await client.get("/api/v1/search/trending")).json()
    assert [(i["query"], i["count"]) for i in body["items"]] == [("pasta", 2), ("ramen", 1)]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_cold_redis_restart_then_warm_brings_hit_rate_above_90_percent(
    client: httpx.AsyncClient, redis_server: Any
) -> None:
    """200 seeded recipes read with Zipf popularity (the seed's view counts): after a cold restart of Redis, a warm
    run and 1,000 reads give a recipe_detail hit rate above 90%; the same reads without the warm run do not."""
    container = container_of(client)
    from potluck.user.security import PasswordHasher

    await load(
        container.database.primary,
        users=20,
        recipes=200,
        seed=7,
        password_hash=PasswordHasher.from_settings(container.settings.auth).hash("x" * 12),
    )
    async with container.database.read_session(primary=True) as session:
        rows = await session.execute(
            select(Recipe.id).where(Recipe.is_public.is_(True)).order_by(Recipe.view_count.desc(), Recipe.id)
        )
        by_popularity = [str(r) for r in rows.scalars()]
    assert len(by_popularity) > 150
    reads = random.Random(3).choices(
        by_popularity, weights=[1 / (rank + 1) for rank in range(len(by_popularity))], k=1000
    )

    async def cold_restart() -> None:
        redis_server.restart()  # an empty dataset on the same port
        await asyncio.sleep(1.5)  # the bus notices the lost subscription (pings every 0.5 s) and reconnects
        cache = container.cache

        async def back() -> bool:
            return bool(
                cache.bus.connected.is_set() and cache.local.enabled and await cache.generation("gen:probe") is not None
            )

        await eventually(back, 10, message="the cache did not come back after the restart")

    def counts() -> tuple[float, float]:
        sample = container.registry.get_sample_value
        hits = sum(
            sample("potluck_cache_hits_total", {"family": "recipe_detail", "tier": t}) or 0 for t in ("l1", "l2")
        )
        misses = sample("potluck_cache_misses_total", {"family": "recipe_detail", "tier": "l2"}) or 0
        return hits, misses

    async def hit_rate() -> float:
        hits0, misses0 = counts()
        semaphore = asyncio.Semaphore(8)

        async def read(recipe_id: str) -> None:
            async with semaphore:
                assert (await client.get(f"{RECIPES}/{recipe_id}")).status_code == 200

        async with asyncio.TaskGroup() as group:
            for recipe_id in reads:
                group.create_task(read(recipe_id))
        hits1, misses1 = counts()
        return (hits1 - hits0) / ((hits1 - hits0) + (misses1 - misses0))

    await cold_restart()
    report = await container.background.warmer.run()
    assert report.recipes >= 100  # the 100 most read, and the tops of the trending lists
    warmed = await hit_rate()

    await cold_restart()
    cold = await hit_rate()

    assert warmed > 0.90, (warmed, cold)
    assert warmed > cold + 0.04, (warmed, cold)


async def test_the_trending_refresh_replaces_a_cached_list(client: httpx.AsyncClient, api: Api) -> None:
    """trending.refresh recomputes a list that is still cached (readers would keep the old one for 600 s)."""
    author, fan = await api.register(), await api.register()
    old = await api.create_recipe(author, title="Old favourite")
    assert (await client.put(f"{RECIPES}/{old['id']}/favorite", headers=fan["headers"])).status_code == 204
    container = container_of(client)
    trending = container.background.trending
    from potluck.trending.scoring import Period

    first = await trending.ids(Period.day)  # computed and cached
    new = await api.create_recipe(author, title="New sensation")
    for user in (fan, await api.register(), await api.register()):
        assert (await client.put(f"{RECIPES}/{new['id']}/favorite", headers=user["headers"])).status_code == 204
    assert await trending.ids(Period.day) == first  # still the cached list
    sizes = await trending.refresh()
    assert sizes[Period.day] >= 2
    ranked = [i.hex for i in await trending.ids(Period.day)]
    assert ranked[0] == new["id"].replace("-", "")  # three fresh favorites beat one


async def test_an_empty_trending_list_is_cached_briefly(client: httpx.AsyncClient) -> None:
    """Nothing trends in an empty database: that answer lives 30 s (negative TTL), not the list's 600 s."""
    from potluck.trending.scoring import Period

    container = container_of(client)
    assert await container.background.trending.ids(Period.day) == []
    raw = await container.cache.store.get(trending_key("day"))
    assert raw is not None
    entry = decode(raw)
    assert entry is not None
    assert entry.payload is None  # a negative entry: the family's negative TTL applies
    import time

    assert entry.expires_at_ms - time.time() * 1000 <= 30_000
