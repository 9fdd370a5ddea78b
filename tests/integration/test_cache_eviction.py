"""Property 15: filling Redis past maxmemory evicts cache entries, fails no request, and drops no lease.

Runs against a Redis started with the eviction policy that deploy/redis/cache.conf ships.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import RECIPE_DETAIL
from potluck.cache.keys import SEARCH_GENERATION_KEY, lists_generation_key, recipe_key
from potluck.cache.metrics import CacheMetrics
from potluck.cache.redis_store import RedisStore, redis_client
from potluck.config import CacheSettings
from tests.harness import RedisServer

CACHE_CONF = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "cache.conf"


def shipped_policy() -> str:
    match = re.search(r"^maxmemory-policy\s+(\S+)", CACHE_CONF.read_text(), re.MULTILINE)
    assert match, "deploy/redis/cache.conf sets no maxmemory-policy"
    return match.group(1)


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    with RedisServer(maxmemory="3mb", policy=shipped_policy()) as server:
        yield server


async def test_eviction_takes_cache_entries_never_leases_or_generations(small_redis: RedisServer) -> None:
    store = RedisStore(redis_client(small_redis.url, 0.5))
    registry = CollectorRegistry()
    cache = Cache(store, CacheMetrics(registry), CacheSettings())
    try:
        held = recipe_key("held-by-a-slow-reader")
        assert await store.acquire_lease(held, b"0123456789abcdef", 60_000) is None
        await store.incr(SEARCH_GENERATION_KEY)
        newest, soup = lists_generation_key("all"), lists_generation_key("tag", "soup")
        await store.incr_many([newest, soup, newest])  # a write's list scopes, one round trip
        payload = b"x" * 10_000

        async def loader() -> Loaded:
            return Loaded(payload)

        for i in range(1500):  # ~15 MB into a 3 MB instance
            loaded = await cache.get_or_fill(RECIPE_DETAIL, recipe_key(f"r{i}"), loader)
            assert loaded.payload == payload
        with redis.Redis.from_url(small_redis.url) as r:
            evicted = int(r.info("stats")["evicted_keys"])
            lease = r.get(held)
            generation = r.get(SEARCH_GENERATION_KEY)
            list_generations = r.mget([newest, soup])
            survivors = sum(1 for i in range(1500) if r.exists(recipe_key(f"r{i}")))
        assert evicted > 0
        assert 0 < survivors < 1500
        assert lease is not None
        assert lease.startswith(b"L|0123456789abcdef|")
        assert generation == b"1"
        assert list_generations == [b"2", b"1"]
        errors = [s for m in registry.collect() for s in m.samples if s.name == "potluck_cache_errors_total"]
        assert errors == []  # no store error on any of the 1,500 fills
    finally:
        await store.aclose()
