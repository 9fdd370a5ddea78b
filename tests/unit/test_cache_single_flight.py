"""Single flight in one process: waiters share the owner's load, but not its cancellation."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import RECIPE_DETAIL
from potluck.cache.memory_store import MemoryStore
from potluck.cache.metrics import CacheMetrics
from potluck.config import CacheSettings


class GatedLoader:
    """A loader that counts its calls and answers once `release` is set."""

    def __init__(self) -> None:
        self.loads = 0
        self.release = asyncio.Event()

    async def __call__(self) -> Loaded:
        self.loads += 1
        await self.release.wait()
        return Loaded(b"doc")


def _cache() -> Cache:
    return Cache(MemoryStore(100), CacheMetrics(CollectorRegistry()), CacheSettings())


async def test_waiters_share_one_load() -> None:
    cache = _cache()
    loader = GatedLoader()

    readers = [asyncio.create_task(cache.get_or_fill(RECIPE_DETAIL, "recipe:1", loader)) for _ in range(5)]
    await asyncio.sleep(0.01)
    loader.release.set()
    assert [r.payload for r in await asyncio.gather(*readers)] == [b"doc"] * 5
    assert loader.loads == 1


async def test_a_cancelled_owner_does_not_cancel_its_waiters() -> None:
    """The owner's task is cancelled mid-load (its client left, or its TaskGroup failed): the waiters load."""
    cache = _cache()
    loader = GatedLoader()

    owner = asyncio.create_task(cache.get_or_fill(RECIPE_DETAIL, "recipe:1", loader))
    await asyncio.sleep(0.01)
    waiters = [asyncio.create_task(cache.get_or_fill(RECIPE_DETAIL, "recipe:1", loader)) for _ in range(3)]
    await asyncio.sleep(0.01)
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    await asyncio.sleep(0.01)
    loader.release.set()
    assert [w.payload for w in await asyncio.gather(*waiters)] == [b"doc"] * 3
    assert loader.loads == 2  # the cancelled owner's, and one waiter's (the others shared it)


async def test_an_owner_failure_reaches_its_waiters() -> None:
    cache = _cache()
    release = asyncio.Event()

    async def loader() -> Loaded:
        await release.wait()
        raise RuntimeError("database down")

    tasks = [asyncio.create_task(cache.get_or_fill(RECIPE_DETAIL, "recipe:1", loader)) for _ in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
