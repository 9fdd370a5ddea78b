from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.trending.scoring import PERIODS, Candidate, Period, Signals, decay, rank, score

counts = st.integers(0, 10**7)
averages = st.floats(1, 5, allow_nan=False)
ages = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650))
periods = st.sampled_from(list(Period))


@st.composite
def signals(draw: st.DrawFn) -> Signals:
    ratings = draw(counts)
    return Signals(
        views=draw(counts),
        favorites=draw(counts),
        ratings=ratings,
        rating_avg=draw(averages) if ratings else None,
        age=draw(ages),
    )


def _with(s: Signals, **changes: object) -> Signals:
    values = {
        "views": s.views,
        "favorites": s.favorites,
        "ratings": s.ratings,
        "rating_avg": s.rating_avg,
        "age": s.age,
    }
    values.update(changes)
    return Signals(**values)  # type: ignore[arg-type]


@given(s=signals(), extra=st.integers(1, 10**6), period=periods)
def test_more_views_never_lower_the_score(s: Signals, extra: int, period: Period) -> None:
    assert score(_with(s, views=s.views + extra), period) >= score(s, period)


@given(s=signals(), extra=st.integers(1, 10**6), period=periods)
def test_more_favorites_raise_the_score(s: Signals, extra: int, period: Period) -> None:
    assert score(_with(s, favorites=s.favorites + extra), period) > score(s, period)


@given(s=signals(), extra=st.integers(1, 10**6), avg=st.floats(2.6, 5), period=periods)
def test_more_good_ratings_raise_the_score(s: Signals, extra: int, avg: float, period: Period) -> None:
    base = _with(s, ratings=max(1, s.ratings), rating_avg=avg)
    assert score(_with(base, ratings=base.ratings + extra), period) > score(base, period)


@given(s=signals(), extra=st.integers(1, 10**6), avg=st.floats(1, 2.4), period=periods)
def test_more_bad_ratings_lower_the_score(s: Signals, extra: int, avg: float, period: Period) -> None:
    base = _with(s, ratings=max(1, s.ratings), rating_avg=avg)
    assert score(_with(base, ratings=base.ratings + extra), period) < score(base, period)


@given(s=signals(), low=averages, high=averages, period=periods)
def test_a_higher_average_never_lowers_the_score(s: Signals, low: float, high: float, period: Period) -> None:
    low, high = sorted((low, high))
    base = _with(s, ratings=max(1, s.ratings))
    assert score(_with(base, rating_avg=high), period) >= score(_with(base, rating_avg=low), period)


@given(s=signals(), older=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=365)), period=periods)
def test_age_never_raises_the_score(s: Signals, older: timedelta, period: Period) -> None:
    assert score(_with(s, age=s.age + older), period) <= score(s, period)


@given(views=st.integers(1, 10**7), age=st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=60)))
def test_shorter_periods_forget_views_faster(views: int, age: timedelta) -> None:
    s = Signals(views=views, favorites=0, ratings=0, rating_avg=None, age=age)
    day, week, month = (score(s, p) for p in (Period.day, Period.week, Period.month))
    assert day < week < month or day == week == month == 0.0


def test_decay_halves_per_half_life() -> None:
    half_life = timedelta(days=2)
    assert decay(timedelta(0), half_life) == 1.0
    assert decay(half_life, half_life) == pytest.approx(0.5)
    assert decay(3 * half_life, half_life) == pytest.approx(0.125)
    assert decay(-half_life, half_life) == 1.0  # clock skew: a recipe from the future is not boosted
    with pytest.raises(ValueError, match="positive"):
        decay(timedelta(1), timedelta(0))


def test_periods_grow() -> None:
    specs = [PERIODS[p] for p in (Period.day, Period.week, Period.month)]
    assert [s.window for s in specs] == sorted(s.window for s in specs)
    assert [s.half_life for s in specs] == sorted(s.half_life for s in specs)
    assert all(s.half_life < s.window for s in specs)


def test_formula() -> None:
    s = Signals(views=99, favorites=3, ratings=2, rating_avg=4.5, age=timedelta(days=2))
    assert score(s, Period.week) == pytest.approx(math.log(100) * 0.5 + 2 * 3 + 2 * 2.0)


NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _candidate(
    age_days: float, views: int = 0, favorites: int = 0, ratings: int = 0, avg: float | None = None
) -> Candidate:
    return Candidate(uuid.uuid4(), NOW - timedelta(days=age_days), views, favorites, ratings, avg)


def test_rank_orders_drops_non_positive_and_limits() -> None:
    loved = _candidate(10, favorites=5)
    fresh = _candidate(0.1, views=500)
    stale = _candidate(400, views=100_000)
    panned = _candidate(1, ratings=4, avg=1.0)
    untouched = _candidate(0.5)
    ranked = rank([stale, panned, untouched, fresh, loved], Period.week, NOW, 10)
    assert [rid for rid, _ in ranked] == [loved.recipe_id, fresh.recipe_id, stale.recipe_id]
    assert [rid for rid, _ in rank([stale, fresh, loved], Period.week, NOW, 1)] == [loved.recipe_id]
    assert rank([], Period.day, NOW, 5) == []


def test_rank_takes_naive_timestamps_as_utc_and_breaks_ties_by_newer_id() -> None:
    a, b = sorted([uuid.uuid4(), uuid.uuid4()])
    naive = (NOW - timedelta(days=1)).replace(tzinfo=None)
    tied = [Candidate(a, naive, 0, 1, 0, None), Candidate(b, naive, 0, 1, 0, None)]
    assert [rid for rid, _ in rank(tied, Period.day, NOW, 5)] == [b, a]
