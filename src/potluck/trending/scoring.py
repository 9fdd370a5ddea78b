"""Trending scores: pure functions, no I/O (the formula and its reasons are in docs/search.md).

    score = w_f * F + w_r * R * (S - 2.5) + w_v * log(1 + V) * 2^(-age / half_life)

F and R are the favorites and ratings given within the period's window, S the average stars of those ratings,
V the recipe's views of all time and `age` the time since it was published. Favorites and ratings carry a
timestamp, so the window counts them exactly; views are counted without one (potluck.stats), so the recipe's
age stands in for their recency: a new recipe's views are recent views. A rating below 2.5 stars pulls a recipe
down. Views enter on a log scale because they follow a Zipf law and are cheap to give; a favorite or a rating is
a deliberate act.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class Period(enum.StrEnum):
    day = "day"
    week = "week"
    month = "month"


@dataclass(frozen=True, slots=True)
class PeriodSpec:
    # Favorites and ratings given since now - window count.
    window: timedelta
    # Views lose half their weight per half-life of the recipe's age.
    half_life: timedelta


# Half-lives of about a third of the window: a recipe published as the window opened keeps 1/8 to 1/20 of its
# views' weight, so what was published within the period leads, without one day's upload drowning a month.
PERIODS: dict[Period, PeriodSpec] = {
    Period.day: PeriodSpec(window=timedelta(days=1), half_life=timedelta(hours=8)),
    Period.week: PeriodSpec(window=timedelta(days=7), half_life=timedelta(days=2)),
    Period.month: PeriodSpec(window=timedelta(days=30), half_life=timedelta(days=7)),
}

NEUTRAL_STARS = 2.5


@dataclass(frozen=True, slots=True)
class Weights:
    views: float = 1.0
    favorites: float = 2.0
    # Per rating, per star above (or below) NEUTRAL_STARS: a five-star rating weighs 2.5, a favorite 2.
    ratings: float = 1.0


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True, slots=True)
class Signals:
    views: int
    favorites: int
    ratings: int
    rating_avg: float | None
    age: timedelta


@dataclass(frozen=True, slots=True)
class Candidate:
    """A public recipe and its counts, as the repository reads them."""

    recipe_id: uuid.UUID
    created_at: datetime
    views: int
    favorites: int
    ratings: int
    rating_avg: float | None


def decay(age: timedelta, half_life: timedelta) -> float:
    """2^(-age / half_life), 1 for a recipe from the future (clock skew), never negative."""
    if half_life <= timedelta(0):
        raise ValueError("half_life must be positive")
    ratio: float = max(age, timedelta(0)) / half_life
    return math.pow(0.5, ratio)


def score(signals: Signals, period: Period, weights: Weights = DEFAULT_WEIGHTS) -> float:
    spec = PERIODS[period]
    views = weights.views * math.log1p(max(0, signals.views)) * decay(signals.age, spec.half_life)
    favorites = weights.favorites * max(0, signals.favorites)
    ratings = 0.0
    if signals.ratings > 0 and signals.rating_avg is not None:
        ratings = weights.ratings * signals.ratings * (signals.rating_avg - NEUTRAL_STARS)
    return views + favorites + ratings


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def rank(
    candidates: Iterable[Candidate],
    period: Period,
    now: datetime,
    limit: int,
    weights: Weights = DEFAULT_WEIGHTS,
) -> list[tuple[uuid.UUID, float]]:
    """The `limit` best-scoring recipes, best first; ties go to the newer id. Scores of 0 or less never trend."""
    scored = []
    for c in candidates:
        signals = Signals(c.views, c.favorites, c.ratings, c.rating_avg, _aware(now) - _aware(c.created_at))
        value = score(signals, period, weights)
        if value > 0:
            scored.append((value, c.recipe_id))
    scored.sort(key=lambda item: (-item[0], -item[1].int))
    return [(recipe_id, value) for value, recipe_id in scored[:limit]]
