"""The retry schedule of the outbox relay: exponential, capped, jitter within [delay/2, delay)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.events.backoff import backoff_seconds, next_delay, retry_schedule


def test_doubles_from_the_base_until_the_cap() -> None:
    assert retry_schedule(10, base=1.0, cap=60.0) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_one_attempt_means_no_retry() -> None:
    assert retry_schedule(1, base=1.0, cap=60.0) == []


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert backoff_seconds(10_000, base=0.5, cap=300.0) == 300.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_seconds(attempt, 1.0, 10.0)


def test_jitter_outside_the_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff_seconds(1, 1.0, 10.0, jitter=1.0)


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.001, max_value=10.0),
    cap=st.floats(min_value=0.01, max_value=3600.0),
    jitter=st.floats(min_value=0.0, max_value=0.999999),
)
def test_jittered_delay_lies_in_the_upper_half_of_the_exact_one(
    attempt: int, base: float, cap: float, jitter: float
) -> None:
    exact = backoff_seconds(attempt, base, cap)
    assert exact <= cap
    jittered = backoff_seconds(attempt, base, cap, jitter=jitter)
    assert exact / 2 <= jittered <= exact


@given(base=st.floats(min_value=0.001, max_value=10.0), cap=st.floats(min_value=0.01, max_value=3600.0))
def test_the_schedule_never_shrinks(base: float, cap: float) -> None:
    schedule = retry_schedule(30, base, cap)
    assert schedule == sorted(schedule)


def test_next_delay_is_reproducible_with_a_seeded_rng() -> None:
    a = [next_delay(n, 1.0, 100.0, random.Random(7)) for n in range(1, 6)]
    b = [next_delay(n, 1.0, 100.0, random.Random(7)) for n in range(1, 6)]
    assert a == b
