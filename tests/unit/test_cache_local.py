"""Unit tests for the in-process L1 cache (potluck.cache.local), on an injected clock."""

from __future__ import annotations

import pytest

from potluck.cache.entry import Entry, decode, encode
from potluck.cache.local import LocalCache
from tests.unit.clock import FakeClock

NOW_MS = 1_700_000_000_000


def make_entry(payload: bytes | None = b"v", expires_at_ms: int = NOW_MS + 3_600_000) -> Entry:
    entry = decode(encode(payload, b"meta", expires_at_ms, 10))
    assert entry is not None
    return entry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def cache(clock: FakeClock) -> LocalCache:
    c = LocalCache(max_entries=3, ttl_seconds=5.0, clock=clock)
    c.enabled = True
    return c


def test_disabled_cache_returns_none_and_refuses_puts(clock: FakeClock) -> None:
    c = LocalCache(max_entries=10, ttl_seconds=5.0, clock=clock)
    assert not c.enabled
    assert not c.put("k", make_entry(), c.epoch, NOW_MS)
    assert c.get("k") is None
    assert len(c) == 0


def test_disabling_hides_entries(cache: LocalCache) -> None:
    entry = make_entry()
    assert cache.put("k", entry, cache.epoch, NOW_MS)
    cache.enabled = False
    assert cache.get("k") is None
    assert not cache.put("k2", entry, cache.epoch, NOW_MS)


def test_put_then_get(cache: LocalCache) -> None:
    entry = make_entry(b"hello")
    negative = make_entry(None)
    assert cache.put("a", entry, cache.epoch, NOW_MS)
    assert cache.put("n", negative, cache.epoch, NOW_MS)
    assert cache.get("a") is entry
    got = cache.get("n")
    assert got is negative
    assert got.payload is None
    assert cache.get("missing") is None
    assert len(cache) == 2


def test_put_overwrites(cache: LocalCache) -> None:
    first, second = make_entry(b"1"), make_entry(b"2")
    assert cache.put("a", first, cache.epoch, NOW_MS)
    assert cache.put("a", second, cache.epoch, NOW_MS)
    assert cache.get("a") is second
    assert len(cache) == 1


def test_hard_ttl_on_injected_clock(cache: LocalCache, clock: FakeClock) -> None:
    assert cache.put("a", make_entry(), cache.epoch, NOW_MS)
    clock.advance(4.99)
    assert cache.get("a") is not None
    clock.advance(0.01)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_ttl_capped_by_entrys_remaining_lifetime(cache: LocalCache, clock: FakeClock) -> None:
    # The entry itself expires 2 s after now_ms: the L1 must not keep it for its full 5 s.
    assert cache.put("a", make_entry(expires_at_ms=NOW_MS + 2000), cache.epoch, NOW_MS)
    clock.advance(1.99)
    assert cache.get("a") is not None
    clock.advance(0.01)
    assert cache.get("a") is None


def test_ttl_cap_uses_now_ms_argument_not_the_clock(cache: LocalCache, clock: FakeClock) -> None:
    # The same entry put with a later now_ms has less remaining lifetime.
    expires = NOW_MS + 4000
    assert cache.put("early", make_entry(expires_at_ms=expires), cache.epoch, NOW_MS)
    assert cache.put("late", make_entry(expires_at_ms=expires), cache.epoch, NOW_MS + 3000)
    clock.advance(1.0)
    assert cache.get("early") is not None
    assert cache.get("late") is None


@pytest.mark.parametrize("expires_at_ms", [NOW_MS, NOW_MS - 1, NOW_MS - 10_000])
def test_already_expired_entry_is_refused(cache: LocalCache, expires_at_ms: int) -> None:
    assert not cache.put("a", make_entry(expires_at_ms=expires_at_ms), cache.epoch, NOW_MS)
    assert cache.get("a") is None


def test_lru_bound_on_max_entries(cache: LocalCache) -> None:
    for key in ("a", "b", "c"):
        assert cache.put(key, make_entry(), cache.epoch, NOW_MS)
    assert cache.get("a") is not None  # a is now most recent; b is the oldest
    assert cache.put("d", make_entry(), cache.epoch, NOW_MS)
    assert len(cache) == 3
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert cache.get("d") is not None
    # Re-putting an existing key refreshes its recency too.
    assert cache.put("c", make_entry(), cache.epoch, NOW_MS)
    assert cache.put("e", make_entry(), cache.epoch, NOW_MS)
    assert len(cache) == 3
    assert cache.get("a") is None
    assert {k for k in "cde" if cache.get(k) is not None} == {"c", "d", "e"}


def test_lru_never_exceeds_bound(clock: FakeClock) -> None:
    c = LocalCache(max_entries=10, ttl_seconds=5.0, clock=clock)
    c.enabled = True
    for i in range(100):
        assert c.put(f"k{i}", make_entry(), c.epoch, NOW_MS)
        assert len(c) <= 10
    assert all(c.get(f"k{i}") is not None for i in range(90, 100))
    assert all(c.get(f"k{i}") is None for i in range(90))


def test_put_with_epoch_taken_before_invalidate_is_refused_even_for_other_key(cache: LocalCache) -> None:
    epoch = cache.epoch
    cache.invalidate(["unrelated"])
    assert cache.epoch != epoch
    assert not cache.put("other", make_entry(), epoch, NOW_MS)
    assert cache.get("other") is None
    assert cache.put("other", make_entry(), cache.epoch, NOW_MS)


def test_put_with_epoch_taken_before_flush_is_refused(cache: LocalCache) -> None:
    epoch = cache.epoch
    cache.flush()
    assert not cache.put("k", make_entry(), epoch, NOW_MS)
    assert cache.get("k") is None


def test_invalidate_with_no_keys_still_bumps_epoch(cache: LocalCache) -> None:
    epoch = cache.epoch
    cache.invalidate([])
    assert not cache.put("k", make_entry(), epoch, NOW_MS)


def test_invalidate_removes_only_named_keys(cache: LocalCache) -> None:
    for key in ("a", "b", "c"):
        assert cache.put(key, make_entry(), cache.epoch, NOW_MS)
    cache.invalidate(["a", "c", "not-there"])
    assert cache.get("a") is None
    assert cache.get("c") is None
    assert cache.get("b") is not None
    assert len(cache) == 1


def test_flush_clears_everything(cache: LocalCache) -> None:
    for key in ("a", "b"):
        assert cache.put(key, make_entry(), cache.epoch, NOW_MS)
    cache.flush()
    assert len(cache) == 0
    assert cache.get("a") is None
    assert cache.get("b") is None
