"""Unit tests for the in-memory cache store (potluck.cache.memory_store): leases, fills, CAS, locks, eviction."""

from __future__ import annotations

import pytest

from potluck.cache.entry import decode, encode, is_lease, lease_prefix
from potluck.cache.memory_store import MemoryStore
from tests.unit.clock import FakeClock

LEASE_MS = 2000
TTL_MS = 60_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(max_entries=100, clock=clock)


def value(payload: bytes = b"v") -> bytes:
    return encode(payload, b"", 10**13, 5)


async def test_acquire_lease_when_empty(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.acquire_lease("k", b"tok1", LEASE_MS) is None
    raw = await store.get("k")
    assert raw is not None
    assert is_lease(raw)
    assert raw.startswith(lease_prefix(b"tok1"))
    assert int(raw.rsplit(b"|", 1)[1]) == int(clock.now * 1000) + LEASE_MS


async def test_second_acquire_returns_the_lease_bytes(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"tok1", LEASE_MS) is None
    lease = await store.get("k")
    second = await store.acquire_lease("k", b"tok2", LEASE_MS)
    assert second == lease
    assert second is not None
    assert second.startswith(lease_prefix(b"tok1"))
    # The second caller did not take the lease over.
    assert await store.get("k") == lease


async def test_acquire_on_a_value_returns_the_value(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"tok1", LEASE_MS) is None
    raw = value(b"hello")
    assert await store.fill("k", b"tok1", raw, TTL_MS)
    assert await store.acquire_lease("k", b"tok2", LEASE_MS) == raw
    assert await store.get("k") == raw


async def test_fill_succeeds_only_with_the_holders_token(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"tok1", LEASE_MS) is None
    assert not await store.fill("k", b"tok2", value(b"intruder"), TTL_MS)
    assert not await store.fill("k", b"tok", value(b"prefix of token"), TTL_MS)
    assert is_lease(await store.get("k") or b"")
    raw = value(b"mine")
    assert await store.fill("k", b"tok1", raw, TTL_MS)
    assert await store.get("k") == raw
    # The lease is consumed: a second fill with the same token is refused.
    assert not await store.fill("k", b"tok1", value(b"again"), TTL_MS)
    assert await store.get("k") == raw


async def test_fill_without_lease_fails(store: MemoryStore) -> None:
    assert not await store.fill("k", b"tok1", value(), TTL_MS)
    assert await store.get("k") is None


async def test_delete_between_acquire_and_fill_refuses_the_fill(store: MemoryStore) -> None:
    # The stale-set race: reader leases and reads v1; writer commits v2 and deletes; the late fill must fail.
    assert await store.acquire_lease("k", b"reader", LEASE_MS) is None
    await store.delete(["k"])
    assert not await store.fill("k", b"reader", value(b"v1-stale"), TTL_MS)
    assert await store.get("k") is None


async def test_delete_then_new_lease_refuses_old_fill(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"old", LEASE_MS) is None
    await store.delete(["k"])
    assert await store.acquire_lease("k", b"new", LEASE_MS) is None
    assert not await store.fill("k", b"old", value(b"stale"), TTL_MS)
    fresh = value(b"fresh")
    assert await store.fill("k", b"new", fresh, TTL_MS)
    assert await store.get("k") == fresh


async def test_expired_lease_can_be_taken_over(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.acquire_lease("k", b"dead", LEASE_MS) is None
    clock.advance(LEASE_MS / 1000 - 0.001)
    assert await store.acquire_lease("k", b"other", LEASE_MS) is not None  # still held
    clock.advance(0.001)
    assert await store.acquire_lease("k", b"other", LEASE_MS) is None  # deadline reached: taken over
    raw = await store.get("k")
    assert raw is not None
    assert raw.startswith(lease_prefix(b"other"))
    assert not await store.fill("k", b"dead", value(b"late"), TTL_MS)
    good = value(b"good")
    assert await store.fill("k", b"other", good, TTL_MS)
    assert await store.get("k") == good


async def test_value_expires_with_ttl(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.acquire_lease("k", b"t", LEASE_MS) is None
    assert await store.fill("k", b"t", value(), 1500)
    clock.advance(1.499)
    assert await store.get("k") is not None
    clock.advance(0.001)
    assert await store.get("k") is None
    assert await store.acquire_lease("k", b"t2", LEASE_MS) is None


async def test_replace_only_with_identity_of_current_entry(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"t", LEASE_MS) is None
    first = value(b"first")
    assert await store.fill("k", b"t", first, TTL_MS)
    first_entry = decode(first)
    assert first_entry is not None

    # An identity of some other fill of the same payload does not match.
    other = decode(value(b"first"))
    assert other is not None
    assert not await store.replace("k", other.identity, value(b"x"), TTL_MS)
    assert await store.get("k") == first

    second = value(b"second")
    assert await store.replace("k", first_entry.identity, second, TTL_MS)
    assert await store.get("k") == second
    # The old identity no longer matches after the replacement.
    assert not await store.replace("k", first_entry.identity, value(b"third"), TTL_MS)
    assert await store.get("k") == second


async def test_replace_fails_on_missing_or_leased_key(store: MemoryStore) -> None:
    entry = decode(value())
    assert entry is not None
    assert not await store.replace("k", entry.identity, value(), TTL_MS)
    assert await store.get("k") is None
    assert await store.acquire_lease("k", b"t", LEASE_MS) is None
    assert not await store.replace("k", entry.identity, value(), TTL_MS)
    assert is_lease(await store.get("k") or b"")


async def test_replace_fails_after_delete(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"t", LEASE_MS) is None
    raw = value()
    assert await store.fill("k", b"t", raw, TTL_MS)
    entry = decode(raw)
    assert entry is not None
    await store.delete(["k"])
    assert not await store.replace("k", entry.identity, value(b"refreshed"), TTL_MS)
    assert await store.get("k") is None


async def test_try_lock_nx_with_expiry(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.try_lock("lock", 1000)
    assert not await store.try_lock("lock", 1000)
    clock.advance(0.999)
    assert not await store.try_lock("lock", 1000)
    clock.advance(0.001)
    assert await store.try_lock("lock", 1000)
    assert not await store.try_lock("lock", 1000)
    await store.delete(["lock"])
    assert await store.try_lock("lock", 1000)


async def test_try_lock_fails_on_existing_key(store: MemoryStore) -> None:
    assert await store.acquire_lease("k", b"t", LEASE_MS) is None
    assert not await store.try_lock("k", 1000)


async def test_incr_and_get_int(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.get_int("gen") == 0
    assert await store.incr("gen") == 1
    assert await store.incr("gen") == 2
    assert await store.get_int("gen") == 2
    assert await store.get_int("other") == 0
    clock.advance(10**6)  # counters have no TTL
    assert await store.get_int("gen") == 2
    assert await store.incr("gen") == 3


async def test_incr_many_bumps_each_key_once_per_mention(store: MemoryStore) -> None:
    await store.incr_many(["a", "b", "a"])
    assert [await store.get_int(k) for k in ("a", "b", "c")] == [2, 1, 0]


async def test_delete_many(store: MemoryStore) -> None:
    for key in ("a", "b", "c"):
        assert await store.try_lock(key, TTL_MS)
    await store.delete(["a", "c", "missing"])
    assert await store.get("a") is None
    assert await store.get("b") == b"1"
    assert await store.get("c") is None


async def test_eviction_drops_lru_ttl_entries_never_leases_or_counters(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=5, clock=clock)
    assert await store.acquire_lease("lease", b"t", LEASE_MS) is None
    assert await store.incr("counter") == 1
    for i in range(3):
        assert await store.try_lock(f"v{i}", TTL_MS)
    # Touch v0 so that v1 is the least recently used TTL'd entry.
    assert await store.get("v0") == b"1"
    assert await store.try_lock("v3", TTL_MS)
    assert await store.get("v1") is None
    assert await store.get("v0") is not None
    assert await store.get("v2") is not None
    assert await store.get("v3") is not None
    # Keep inserting: leases and counters survive even though they are the oldest keys.
    for i in range(4, 50):
        assert await store.try_lock(f"v{i}", TTL_MS)
    raw = await store.get("lease")
    assert raw is not None
    assert is_lease(raw)
    assert await store.get_int("counter") == 1
    assert await store.get("v49") is not None
    assert await store.get("v48") is not None
    assert await store.get("v0") is None
    assert len(store._data) == 5


async def test_eviction_does_not_drop_a_lease_or_the_fill_it_guards(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=3, clock=clock)
    assert await store.acquire_lease("k", b"t", LEASE_MS) is None
    for i in range(10):
        assert await store.try_lock(f"x{i}", TTL_MS)
    assert await store.fill("k", b"t", value(b"filled"), TTL_MS)
    assert await store.get("k") is not None


async def test_many_leases_are_never_evicted(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=3, clock=clock)
    for i in range(6):
        assert await store.acquire_lease(f"k{i}", b"t", LEASE_MS) is None
    for i in range(6):
        raw = await store.get(f"k{i}")
        assert raw is not None
        assert is_lease(raw)


async def test_incr_once_bumps_once_per_marker() -> None:
    store = MemoryStore(100)
    assert await store.incr_once(["gen:x"], "gen:x:done:1", 60_000)
    assert not await store.incr_once(["gen:x"], "gen:x:done:1", 60_000)
    assert await store.incr_once(["gen:x", "gen:y"], "gen:x:done:2", 60_000)
    assert not await store.incr_once(["gen:x", "gen:y"], "gen:x:done:2", 60_000)
    assert [await store.get_int("gen:x"), await store.get_int("gen:y")] == [2, 1]
