"""Seeded draws the generator is built from: Zipf weights, weighted pools, instants in time and UUIDv7 ids.

Pure functions of their `random.Random`: the same stream gives the same draws, which is what makes a seed
reproducible.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
DAY_MS = 86_400_000


def zipf_weights(n: int, s: float) -> list[float]:
    """Weights proportional to 1/k**s for ranks k = 1..n, normalised to sum to 1."""
    if n < 0:
        raise ValueError("n must not be negative")
    raw = [k**-s for k in range(1, n + 1)]
    total = math.fsum(raw)
    return [w / total for w in raw]


def to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("naive datetime: seed timestamps are timezone-aware UTC")
    return (ts - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def uuid7_at(ts: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 (RFC 9562) whose 48-bit time field is `ts` in milliseconds and whose random bits come from `rng`."""
    ms = to_ms(ts)
    if not 0 <= ms < 1 << 48:
        raise ValueError("timestamp outside the UUIDv7 range")
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


class Pool:
    """Weighted draws with replacement: O(log n) each."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, items: list[int], weights: Iterable[float]) -> None:
        self.items = items
        self.cum = list(itertools.accumulate(weights))
        self.total = self.cum[-1] if self.cum else 0.0

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: random.Random) -> int:
        i = bisect_right(self.cum, rng.random() * self.total)
        return self.items[min(i, len(self.items) - 1)]


def weighted_sample(rng: random.Random, items: Sequence[T], weights: Sequence[float], k: int) -> list[T]:
    """k distinct items, drawn one by one with the given weights (small lists only)."""
    idx = list(range(len(items)))
    w = list(weights)
    out: list[T] = []
    for _ in range(min(k, len(items))):
        i = rng.choices(range(len(idx)), weights=w)[0]
        out.append(items[idx.pop(i)])
        w.pop(i)
    return out


def spread_ms(rng: random.Random, n: int, lo: int, hi: int, shape: float) -> list[int]:
    """n strictly increasing instants in [lo, hi], denser towards hi when shape < 1 (the site grows)."""
    times = sorted(lo + int((hi - lo) * rng.random() ** shape) for _ in range(n))
    for i in range(1, n):
        if times[i] <= times[i - 1]:
            times[i] = times[i - 1] + 1
    for i in range(n - 1, -1, -1):  # only if bumping ran past hi: pull back, still strictly increasing
        cap = hi if i == n - 1 else times[i + 1] - 1
        if times[i] > cap:
            times[i] = cap
    return times


def after(rng: random.Random, lo: int, hi: int, mean_days: float) -> int:
    """An instant in [lo, hi], usually soon after lo: activity clusters right after a recipe is published."""
    if hi <= lo:
        return lo
    t = lo + int(rng.expovariate(1.0 / (mean_days * DAY_MS)))
    return t if t <= hi else lo + int(rng.random() * (hi - lo))
