"""Unit tests for the cache circuit breaker (potluck.cache.breaker), on an injected clock."""

from __future__ import annotations

import pytest

from potluck.cache.breaker import CircuitBreaker
from tests.unit.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_closed_breaker_allows(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after=1.0, clock=clock)
    assert breaker.allow()
    assert not breaker.is_open
    assert not breaker.probe_due()
    clock.advance(1000)
    assert breaker.allow()
    assert not breaker.probe_due()


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_opens_after_threshold_consecutive_failures_not_before(clock: FakeClock, threshold: int) -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_after=1.0, clock=clock)
    for _ in range(threshold - 1):
        breaker.record_failure()
        assert breaker.allow()
        assert not breaker.is_open
    breaker.record_failure()
    assert breaker.is_open
    assert not breaker.allow()


def test_success_resets_the_failure_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after=1.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow(), "failures before a success must not count towards the threshold"
    breaker.record_failure()
    assert not breaker.allow()


def test_while_open_probe_due_only_after_reset_after(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_after=2.5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert not breaker.allow()
    assert not breaker.probe_due()
    clock.advance(2.0)
    assert not breaker.probe_due()
    assert not breaker.allow()
    clock.advance(0.49)
    assert not breaker.probe_due()
    clock.advance(0.01)
    assert breaker.probe_due()
    # Requests still never probe: allow() stays False until a success closes the breaker.
    assert not breaker.allow()
    clock.advance(100)
    assert breaker.probe_due()
    assert not breaker.allow()


def test_failure_while_open_rearms_the_timer(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after=1.0, clock=clock)
    breaker.record_failure()
    clock.advance(1.5)
    assert breaker.probe_due()
    breaker.record_failure()  # the probe failed
    assert breaker.is_open
    assert not breaker.probe_due()
    clock.advance(0.9)
    assert not breaker.probe_due()
    clock.advance(0.1)
    assert breaker.probe_due()


def test_failure_while_open_rearms_even_before_probe_due(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after=1.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(0.8)
    breaker.record_failure()
    clock.advance(0.8)
    assert not breaker.probe_due()
    clock.advance(0.2)
    assert breaker.probe_due()


def test_success_closes_and_a_new_threshold_is_needed_to_reopen(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after=1.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(1.0)
    assert breaker.probe_due()
    breaker.record_success()
    assert breaker.allow()
    assert not breaker.is_open
    assert not breaker.probe_due()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert not breaker.allow()
    assert not breaker.probe_due()


def test_every_transition_is_reported_once_whoever_causes_it(clock: FakeClock) -> None:
    """The breaker_open gauge follows the breaker even when a request's success closes it (no stale 1)."""
    changes: list[bool] = []
    breaker = CircuitBreaker(failure_threshold=2, reset_after=1.0, clock=clock, on_change=changes.append)
    breaker.record_success()
    breaker.record_failure()
    assert changes == []
    breaker.record_failure()
    breaker.record_failure()  # already open: no second report
    assert changes == [True]
    breaker.record_success()
    breaker.record_success()
    assert changes == [True, False]
