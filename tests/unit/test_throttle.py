"""The throttle rule (pure) and the in-memory window store, on a hand-moved clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.config import ThrottleSettings
from potluck.kit.throttle import Limiter, MemoryWindowStore, Policy, Throttles, Window, decide
from tests.unit.clock import FakeClock

PLAIN = Policy("register", limit=3, window=60)
BACKOFF = Policy("login", limit=3, window=900, backoff_base=1.0, backoff_max=60)


def test_under_the_limit_is_allowed_with_what_remains() -> None:
    d = decide(PLAIN, Window(2, 10.0, 20.0), now=30.0)
    assert (d.allowed, d.remaining, d.retry_after) == (True, 1, 0.0)
    assert d.reset == pytest.approx(50.0)


def test_a_plain_window_waits_for_its_oldest_event_to_leave() -> None:
    d = decide(PLAIN, Window(3, 10.0, 20.0), now=30.0)
    assert not d.allowed
    assert d.retry_after == pytest.approx(40.0)  # 10 + 60 - 30
    assert d.headers(PLAIN)["Retry-After"] == "40"
    assert d.headers(PLAIN)["RateLimit-Policy"] == '"register";q=3;w=60'
    assert d.headers(PLAIN)["RateLimit"] == '"register";r=0;t=50'


@pytest.mark.parametrize(("count", "wait"), [(3, 1.0), (4, 2.0), (5, 4.0), (8, 32.0), (9, 60.0), (50, 60.0)])
def test_back_off_doubles_per_failure_past_the_limit_up_to_the_cap(count: int, wait: float) -> None:
    d = decide(BACKOFF, Window(count, 0.0, 100.0), now=100.0)
    assert not d.allowed
    assert d.retry_after == pytest.approx(wait)
    assert decide(BACKOFF, Window(count, 0.0, 100.0), now=100.0 + wait).allowed


@given(
    count=st.integers(0, 2000),
    gap=st.floats(0, 10_000, allow_nan=False),
    span=st.floats(0, 900, allow_nan=False),
)
def test_a_refusal_always_names_a_positive_wait_and_never_longer_than_the_policy_allows(
    count: int, gap: float, span: float
) -> None:
    newest = 1000.0
    for policy in (PLAIN, BACKOFF):
        d = decide(policy, Window(count, newest - min(span, policy.window), newest), now=newest + gap)
        if d.allowed:
            assert d.retry_after == 0
        else:
            assert 0 < d.retry_after <= max(policy.window, policy.backoff_max)
            assert int(d.headers(policy)["Retry-After"]) >= 1


async def test_the_memory_store_slides_its_window() -> None:
    clock = FakeClock(0.0)
    limiter = Limiter(MemoryWindowStore(), clock=clock)
    for _ in range(3):
        assert (await limiter.acquire(PLAIN, "1.2.3.4")).allowed
        clock.advance(10)
    refused = await limiter.acquire(PLAIN, "1.2.3.4")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(30.0)
    assert (await limiter.check(PLAIN, "5.6.7.8")).allowed  # keys are independent
    clock.advance(30.5)  # the first event left the window
    assert (await limiter.acquire(PLAIN, "1.2.3.4")).allowed
    assert not (await limiter.acquire(PLAIN, "1.2.3.4")).allowed


async def test_a_reset_forgets_a_key() -> None:
    limiter = Limiter(MemoryWindowStore(), clock=FakeClock())
    for _ in range(5):
        await limiter.hit(BACKOFF, "ann")
    assert not (await limiter.check(BACKOFF, "ann")).allowed
    await limiter.reset(BACKOFF, "ann")
    assert (await limiter.check(BACKOFF, "ann")).allowed


async def test_the_memory_store_stays_bounded() -> None:
    store = MemoryWindowStore(max_keys=10)
    for i in range(100):
        await store.add(f"k{i}", 60, 1.0)
    assert len(store._events) == 10


async def test_throttles_report_refusals_and_can_be_switched_off() -> None:
    refused: list[str] = []
    settings = ThrottleSettings(register_per_address=1)
    throttles = Throttles(Limiter(MemoryWindowStore()), settings, on_refused=lambda p: refused.append(p.name))
    assert await throttles.acquire(throttles.register, "a") is None
    refusal = await throttles.acquire(throttles.register, "a")
    assert refusal is not None
    assert refusal.error("slow down").status_code == 429
    assert refused == ["register"]
    off = Throttles(Limiter(MemoryWindowStore()), ThrottleSettings(enabled=False, register_per_address=1))
    assert [await off.acquire(off.register, "a") for _ in range(3)] == [None, None, None]
