"""Single flight in one process: waiters share the owner's load, but not its cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import RECIPE_DETAIL
from potluck.cache.memory_store import MemoryStore
from potluck.cache.metrics import CacheMetrics
from potluck.config import CacheSettings
from potluck.db.engine import LeaderUnavailableError


class GatedLoader:
    """A loader that counts its calls and answers once `release` is set (or raises `fails` then)."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.loads = 0
        self.release = asyncio.Event()
        self.fails = fails

    async def __call__(self) -> Loaded:
        self.loads += 1
        await self.release.wait()
        if self.fails is not None:
            raise self.fails
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


def leaderless_loader() -> GatedLoader:
    """A fill that finds no primary (between a leader's death and a promotion), every waiter sharing it."""
    return GatedLoader(fails=LeaderUnavailableError("no leader"))


async def test_without_a_leader_every_reader_gets_its_unstored_answer_and_nothing_is_stored() -> None:
    cache = _cache()
    loader = leaderless_loader()
    replica_reads = 0

    async def from_a_replica() -> Loaded:
        nonlocal replica_reads
        replica_reads += 1
        return Loaded(b"replica")

    readers = [
        asyncio.create_task(cache.get_or_fill(RECIPE_DETAIL, "recipe:1", loader, unstored=from_a_replica))
        for _ in range(4)
    ]
    await asyncio.sleep(0.01)
    loader.release.set()
    assert [r.payload for r in await asyncio.gather(*readers)] == [b"replica"] * 4
    assert (loader.loads, replica_reads) == (1, 4)  # one fill attempt shared; each reader read the replica
    assert await cache.store.get("recipe:1") is None  # nothing stored, and the failed fill's lease released

    filled = await cache.get_or_fill(RECIPE_DETAIL, "recipe:1", _answer(b"primary"), unstored=from_a_replica)
    assert filled.payload == b"primary"  # a leader again: filled and stored as usual, without waiting for a lease
    assert replica_reads == 4
    no_leader_again = leaderless_loader()
    no_leader_again.release.set()
    assert (await cache.get_or_fill(RECIPE_DETAIL, "recipe:1", no_leader_again)).payload == b"primary"  # stored


async def test_without_a_leader_and_no_unstored_answer_the_error_reaches_the_caller() -> None:
    cache = _cache()
    loader = leaderless_loader()
    loader.release.set()
    with pytest.raises(LeaderUnavailableError):
        await cache.get_or_fill(RECIPE_DETAIL, "recipe:1", loader)


def _answer(payload: bytes) -> Callable[[], Awaitable[Loaded]]:
    async def load() -> Loaded:
        return Loaded(payload)

    return load
