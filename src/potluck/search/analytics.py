"""Which searches people run, counted without a database write per query.

Two adapters behind one small protocol, chosen in bootstrap:

* `InMemorySearchAnalytics()`: per-hour `Counter`s in this process (the embedded default: one process).
* `RedisSearchAnalytics(client)`: per-hour sorted sets `search:queries:{yyyymmddhh}`, each expiring 8 days after
  its hour's last search; shared by every API process. A search is counted in this process's memory (no round trip
  on the search's path); `push`, every `events.views_push_seconds` (bootstrap, like the view counts), sends the
  counts in one pipeline (a `ZINCRBY` per distinct query), and `top`, `rollup` and `aclose` push first. Build the
  client with `potluck.cache.redis_store.redis_client(settings.coord_redis, settings.cache.timeout_ms / 1000)`:
  analytics must fail fast and never fail a search (a failed push keeps the counts for the next one, bounded: at
  least once, so a push that timed out after Redis applied it counts those searches twice, as the view counts do).

"The last 24 hours" is read as the current hour and the 23 before it. A scheduled task (`search.rollup`, every
minute) merges those hours into one set, `search:queries:rollup:24` (the top ROLLUP_SIZE queries, expiring after
ROLLUP_TTL_SECONDS), which `top` reads; without a fresh rollup, `top` merges the hours itself and reuses the result
for TOP_REUSE_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger("potluck.search")

KEY_PREFIX = "search:queries:"
RETENTION = timedelta(days=8)
# Distinct queries kept per hour: bounds memory when someone searches for random strings.
MAX_QUERIES_PER_HOUR = 10_000
# How long the merged "last N hours" set is reused before it is merged again.
TOP_REUSE_SECONDS = 60
# The rolled-up set: the most frequent queries kept, and how long it stands if the task stops running.
ROLLUP_SIZE = 1000
ROLLUP_TTL_SECONDS = 300


@dataclass(frozen=True, slots=True)
class QueryCount:
    query: str
    count: int


class SearchAnalytics(Protocol):
    async def record(self, query: str) -> None:
        """Count one search for `query` (already normalised). Never raises."""
        ...

    async def top(self, *, hours: int = 24, limit: int = 10) -> list[QueryCount]:
        """The most frequent queries of the last `hours` hours, most frequent first."""
        ...

    async def rollup(self, *, hours: int = 24) -> int:
        """Merge the last `hours` hours for `top` (the scheduled task); returns the distinct queries kept."""
        ...

    async def push(self) -> int:
        """Send what this process counted to where every process reads it; returns the distinct queries sent."""
        ...

    async def aclose(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def hour_bucket(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%d%H")


def recent_buckets(now: datetime, hours: int) -> list[str]:
    """The current hour's bucket and the `hours - 1` before it."""
    return [hour_bucket(now - timedelta(hours=h)) for h in range(max(1, hours))]


def hour_key(bucket: str) -> str:
    return f"{KEY_PREFIX}{bucket}"


def rollup_key(hours: int) -> str:
    return f"{KEY_PREFIX}rollup:{hours}"


def _counts(rows: list[Any]) -> Counter[str]:
    """ZREVRANGE … WITHSCORES rows as counts."""
    counts: Counter[str] = Counter()
    for member, score in rows:
        name = member.decode() if isinstance(member, bytes) else str(member)
        counts[name] = int(score)
    return counts


def _capped(counts: Counter[str], cap: int) -> Counter[str]:
    """`counts`, or past `cap` distinct queries its frequent half: the rare tail is what an attacker's random
    queries look like."""
    return counts if len(counts) <= cap else Counter(dict(counts.most_common(cap // 2)))


def _ranked(counts: Counter[str], limit: int) -> list[QueryCount]:
    # Ties in a stable order, so every process and every call agrees.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [QueryCount(q, n) for q, n in ordered[:limit]]


class InMemorySearchAnalytics:
    """Per-hour counters in this process."""

    def __init__(
        self,
        *,
        retention: timedelta = RETENTION,
        max_queries_per_hour: int = MAX_QUERIES_PER_HOUR,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.retention_hours = int(retention / timedelta(hours=1))
        self.max_queries_per_hour = max_queries_per_hour
        self._clock = clock
        self._hours: dict[str, Counter[str]] = {}

    async def record(self, query: str) -> None:
        now = self._clock()
        bucket = hour_bucket(now)
        counts = self._hours.get(bucket)
        if counts is None:
            counts = self._hours[bucket] = Counter()
            keep = set(recent_buckets(now, self.retention_hours))
            for old in [b for b in self._hours if b not in keep]:
                del self._hours[old]
        counts[query] += 1
        self._hours[bucket] = _capped(counts, self.max_queries_per_hour)

    async def top(self, *, hours: int = 24, limit: int = 10) -> list[QueryCount]:
        merged: Counter[str] = Counter()
        for bucket in recent_buckets(self._clock(), hours):
            merged.update(self._hours.get(bucket, {}))
        return _ranked(merged, limit)

    async def rollup(self, *, hours: int = 24) -> int:
        # In one process's memory merging on read is cheap: nothing to precompute.
        distinct: set[str] = set()
        for bucket in recent_buckets(self._clock(), hours):
            distinct.update(self._hours.get(bucket, {}))
        return len(distinct)

    async def push(self) -> int:
        return 0  # counted where it is read

    async def aclose(self) -> None:
        self._hours.clear()


class RedisSearchAnalytics:
    """Per-hour sorted sets in Redis, shared by every API process.

    `client` should be a fail-fast client (see the module docstring); it is closed by `aclose()`.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        retention: timedelta = RETENTION,
        max_queries_per_hour: int = MAX_QUERIES_PER_HOUR,
        failure_pause_seconds: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.client = client
        self.retention_seconds = int(retention.total_seconds())
        self.max_queries_per_hour = max_queries_per_hour
        self.failure_pause_seconds = failure_pause_seconds
        self._clock = clock
        self._paused_until = 0.0
        # Counted here, not yet pushed: per hour's key, per query.
        self._pending: dict[str, Counter[str]] = {}

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._paused_until = time.monotonic() + self.failure_pause_seconds
        logger.warning("search.analytics_failed", extra={"operation": operation, "error": repr(exc)})

    async def record(self, query: str) -> None:
        key = hour_key(hour_bucket(self._clock()))
        counts = self._pending.setdefault(key, Counter())
        counts[query] += 1
        self._pending[key] = _capped(counts, self.max_queries_per_hour)

    async def push(self, *, now: bool = False) -> int:
        """One pipeline: each hour's counts added to its set, its expiry renewed, the set trimmed to its cap. On a
        failure (or a cancellation) the counts stay for the next push, and pushing pauses for a second unless
        `now` (the last push, at shutdown)."""
        if not self._pending or (time.monotonic() < self._paused_until and not now):
            return 0
        pending, self._pending = self._pending, {}
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, counts in pending.items():
                    for query, n in counts.items():
                        pipe.zincrby(key, n, query)
                    pipe.expire(key, self.retention_seconds)
                    pipe.zremrangebyrank(key, 0, -(self.max_queries_per_hour + 1))
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._keep(pending)
            self._failed("push", exc)
            return 0
        except BaseException:
            self._keep(pending)
            raise
        return sum(len(counts) for counts in pending.values())

    def _keep(self, pending: dict[str, Counter[str]]) -> None:
        for key, counts in pending.items():
            kept = self._pending.setdefault(key, Counter())
            kept.update(counts)
            self._pending[key] = _capped(kept, self.max_queries_per_hour)

    async def rollup(self, *, hours: int = 24) -> int:
        """ZUNIONSTORE of the hourly sets into `rollup_key(hours)`, trimmed to ROLLUP_SIZE; raises on Redis errors
        (the task is retried by its schedule)."""
        await self.push()
        key = rollup_key(hours)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zunionstore(key, [hour_key(b) for b in recent_buckets(self._clock(), hours)])
            pipe.zremrangebyrank(key, 0, -(ROLLUP_SIZE + 1))
            pipe.expire(key, ROLLUP_TTL_SECONDS)
            pipe.zcard(key)
            results = await pipe.execute()
        return int(results[-1])

    async def top(self, *, hours: int = 24, limit: int = 10) -> list[QueryCount]:
        await self.push()
        buckets = recent_buckets(self._clock(), hours)
        merged = f"{KEY_PREFIX}top:{hours}:{buckets[0]}"
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(rollup_key(hours))
                pipe.zrevrange(rollup_key(hours), 0, max(0, limit - 1), withscores=True)
                rolled, rows = await pipe.execute()
            if rolled:
                return _ranked(_counts(rows), limit)
            if not await self.client.exists(merged):
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.zunionstore(merged, [hour_key(b) for b in buckets])
                    pipe.expire(merged, TOP_REUSE_SECONDS)
                    await pipe.execute()
            rows = await self.client.zrevrange(merged, 0, max(0, limit - 1), withscores=True)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("top", exc)
            return []
        return _ranked(_counts(rows), limit)

    async def aclose(self) -> None:
        """Pushes what is left (a process's counts are not lost with it), then closes the client."""
        await self.push(now=True)
        await self.client.aclose()
