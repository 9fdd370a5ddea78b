"""Cache.fill_many over the memory store: the misses of a multi-get leased, loaded once and filled together, each
fill still guarded by its own lease."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from potluck.cache.cache import Cache, Loaded, Loader
from potluck.cache.entry import decode
from potluck.cache.families import RECIPE_DETAIL
from potluck.cache.local import LocalCache
from potluck.cache.memory_store import MemoryStore
from potluck.cache.metrics import CacheMetrics
from potluck.config import CacheSettings
from potluck.db.engine import LeaderUnavailableError

KEYS = ["recipe:1", "recipe:2", "recipe:3"]


class ManyLoader:
    """Loads every key it is asked for but those in `absent`, recording each call's keys."""

    def __init__(self, absent: Sequence[str] = (), fails: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.absent = set(absent)
        self.fails = fails
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, keys: Sequence[str]) -> dict[str, Loaded]:
        self.calls.append(list(keys))
        await self.release.wait()
        if self.fails is not None:
            raise self.fails
        return {key: Loaded(f"doc {key}".encode()) for key in keys if key not in self.absent}


def _cache(store: MemoryStore | None = None) -> Cache:
    return Cache(store or MemoryStore(100), CacheMetrics(CollectorRegistry()), CacheSettings())


async def _stored(store: MemoryStore, key: str) -> bytes | None:
    raw = await store.get(key)
    entry = decode(raw) if raw is not None else None
    return None if entry is None else entry.payload


async def test_the_misses_are_loaded_in_one_call_and_stored() -> None:
    store = MemoryStore(100)
    cache, load = _cache(store), ManyLoader(absent=["recipe:3"])
    found = await cache.fill_many(RECIPE_DETAIL, KEYS, load)
    assert load.calls == [KEYS]
    assert [found[k].payload for k in KEYS] == [b"doc recipe:1", b"doc recipe:2", None]
    assert await _stored(store, "recipe:1") == b"doc recipe:1"
    assert (await cache.get_many(RECIPE_DETAIL, KEYS)).keys() == set(KEYS)  # the absent one cached as missing
    assert (await cache.get_many(RECIPE_DETAIL, KEYS))["recipe:3"].payload is None


async def test_a_key_filled_meanwhile_is_a_hit_and_not_loaded() -> None:
    store = MemoryStore(100)
    cache = _cache(store)
    await cache.get_or_fill(RECIPE_DETAIL, "recipe:2", _fixed(b"filled by another reader"))
    load = ManyLoader()
    found = await cache.fill_many(RECIPE_DETAIL, KEYS, load)
    assert load.calls == [["recipe:1", "recipe:3"]]
    assert found["recipe:2"].payload == b"filled by another reader"


async def test_a_writer_delete_between_load_and_fill_refuses_that_fill_only() -> None:
    store = MemoryStore(100)
    cache, load = _cache(store), ManyLoader()
    load.release.clear()
    reader = asyncio.create_task(cache.fill_many(RECIPE_DETAIL, KEYS, load))
    await asyncio.sleep(0.01)  # leases taken, the load waits
    await store.delete(["recipe:2"])  # a writer's invalidation: the lease goes with it
    load.release.set()
    found = await reader
    assert found["recipe:2"].payload == b"doc recipe:2"  # fine to return, not to store
    assert await _stored(store, "recipe:2") is None
    assert await _stored(store, "recipe:1") == b"doc recipe:1"


async def test_another_readers_lease_is_waited_for_not_loaded_twice() -> None:
    store = MemoryStore(100)
    cache = _cache(store)
    load = ManyLoader()
    load.release.clear()
    first = asyncio.create_task(cache.fill_many(RECIPE_DETAIL, KEYS, load))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.fill_many(RECIPE_DETAIL, KEYS, load))
    await asyncio.sleep(0.05)
    load.release.set()
    a, b = await asyncio.gather(first, second)
    assert load.calls == [KEYS]  # the second reader found the first one's leases and waited for its fills
    assert {k: v.payload for k, v in a.items()} == {k: v.payload for k, v in b.items()}


async def test_a_failed_load_releases_every_lease() -> None:
    store = MemoryStore(100)
    cache = _cache(store)
    with pytest.raises(RuntimeError):
        await cache.fill_many(RECIPE_DETAIL, KEYS, ManyLoader(fails=RuntimeError("database down")))
    assert [await store.get(k) for k in KEYS] == [None, None, None]  # no lease left for the next reader to wait on
    again = ManyLoader()
    await cache.fill_many(RECIPE_DETAIL, KEYS, again)
    assert again.calls == [KEYS]


async def test_without_a_leader_the_replica_answers_and_nothing_is_stored() -> None:
    store = MemoryStore(100)
    cache = _cache(store)
    replica = ManyLoader()
    found = await cache.fill_many(
        RECIPE_DETAIL, KEYS, ManyLoader(fails=LeaderUnavailableError("no leader")), unstored=replica
    )
    assert replica.calls == [KEYS]
    assert found["recipe:1"].payload == b"doc recipe:1"
    assert [await store.get(k) for k in KEYS] == [None, None, None]


def _fixed(payload: bytes) -> Loader:
    async def load() -> Loaded:
        return Loaded(payload)

    return load


async def test_a_page_read_counts_each_lookup_once_so_the_hit_rate_stays_a_rate() -> None:
    registry = CollectorRegistry()
    local = LocalCache(max_entries=100, ttl_seconds=5.0)
    local.enabled = True  # no bus here: the first tier answers while enabled
    cache = Cache(MemoryStore(100), CacheMetrics(registry), CacheSettings(), local=local)
    for _ in range(3):  # cold, then from the first tier; the page's three keys each time
        found = await cache.get_many(RECIPE_DETAIL, KEYS)
        await cache.fill_many(RECIPE_DETAIL, [k for k in KEYS if k not in found], ManyLoader())

    def sample(name: str, tier: str) -> float:
        return registry.get_sample_value(name, {"family": "recipe_detail", "tier": tier}) or 0.0

    l1_hits, l1_misses = sample("potluck_cache_hits_total", "l1"), sample("potluck_cache_misses_total", "l1")
    assert (l1_hits, l1_misses) == (6, 3)  # nine lookups
    assert sample("potluck_cache_misses_total", "l2") == 3
    assert (l1_hits + sample("potluck_cache_hits_total", "l2")) / (l1_hits + l1_misses) <= 1
