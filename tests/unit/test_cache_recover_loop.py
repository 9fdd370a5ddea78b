"""The cache's recover loop: asleep while nothing is owed, awake as soon as something is, until it is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from potluck.cache.cache import Cache
from potluck.cache.memory_store import MemoryStore
from potluck.cache.metrics import CacheMetrics
from potluck.cache.store import CacheStoreError
from potluck.config import CacheSettings

INTERVAL_MS = 5


class SwitchableStore(MemoryStore):
    """A memory store that fails every call while `down`."""

    def __init__(self) -> None:
        super().__init__(100)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise CacheStoreError("down")

    async def delete(self, keys: Sequence[str]) -> None:
        self._check()
        await super().delete(keys)

    async def incr_many(self, keys: Sequence[str]) -> None:
        self._check()
        await super().incr_many(keys)

    async def incr_once(self, keys: Sequence[str], marker: str, marker_ttl_ms: int) -> bool:
        self._check()
        return await super().incr_once(keys, marker, marker_ttl_ms)

    async def ping(self) -> None:
        self._check()


def _cache(store: SwitchableStore) -> Cache:
    settings = CacheSettings(recover_interval_ms=INTERVAL_MS, breaker_reset_seconds=0.01)
    return Cache(store, CacheMetrics(CollectorRegistry()), settings)


class _Checks:
    """Counts the recover loop's looks at the breaker (`probe_due`): one per iteration that found nothing owed."""

    def __init__(self, probe_due: Callable[[], bool]) -> None:
        self.count = 0
        self._probe_due = probe_due

    def __call__(self) -> bool:
        self.count += 1
        return self._probe_due()


def _count_checks(cache: Cache) -> _Checks:
    checks = _Checks(cache.breaker.probe_due)
    cache.breaker.probe_due = checks  # type: ignore[method-assign]
    return checks


async def _until(condition: object, seconds: float = 2.0) -> bool:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.001)
    return True


async def test_nothing_owed_the_loop_does_not_wake() -> None:
    cache = _cache(SwitchableStore())
    checks = _count_checks(cache)
    cache.start()
    try:
        await asyncio.sleep(40 * INTERVAL_MS / 1000)
        assert checks.count == 0  # a loop polling every interval would have checked ~40 times
    finally:
        await cache.aclose()


async def test_a_deferred_invalidation_wakes_it_and_is_delivered() -> None:
    store = SwitchableStore()
    cache = _cache(store)
    store._set("recipe:1", b"old", 60_000)
    cache.start()
    try:
        await asyncio.sleep(0.02)  # the loop is asleep by now
        store.down = True
        await cache.invalidate(["recipe:1"])
        assert cache.pending == {"recipe:1"}
        store.down = False
        assert await _until(lambda: not cache.pending)
        assert await store.get("recipe:1") is None
    finally:
        await cache.aclose()


async def test_a_deferred_generation_bump_wakes_it() -> None:
    store = SwitchableStore()
    cache = _cache(store)
    cache.start()
    try:
        await asyncio.sleep(0.02)
        store.down = True
        assert not await cache._bump(["gen:search"], None)
        assert cache.pending_generations == {"gen:search"}
        store.down = False
        assert await _until(lambda: not cache.pending_generations)
        assert await store.get_int("gen:search") == 1
    finally:
        await cache.aclose()


async def test_an_open_breaker_wakes_it_and_the_probe_closes_it() -> None:
    store = SwitchableStore()
    cache = _cache(store)
    cache.start()
    try:
        await asyncio.sleep(0.02)
        for _ in range(cache.settings.breaker_failures):
            cache.breaker.record_failure()
        assert cache.breaker.is_open
        assert await _until(lambda: not cache.breaker.is_open)
    finally:
        await cache.aclose()


async def test_once_delivered_it_sleeps_again() -> None:
    store = SwitchableStore()
    cache = _cache(store)
    checks = _count_checks(cache)
    cache.start()
    try:
        store.down = True
        await cache.invalidate(["recipe:1"])
        store.down = False
        assert await _until(lambda: not cache.pending)
        await asyncio.sleep(2 * INTERVAL_MS / 1000)  # the iteration that delivered it has ended
        after_delivery = checks.count
        await asyncio.sleep(40 * INTERVAL_MS / 1000)
        assert checks.count == after_delivery
    finally:
        await cache.aclose()
