"""Redis health and memory as metrics (potluck_redis_*), from INFO polled in the background.

A scrape never waits for Redis: `RedisInfoPoller` refreshes a snapshot every few seconds in an asyncio task,
and its collector only reads that snapshot. A snapshot older than `stale_after` reports Redis as down.

In multiprocess mode (observability/multiprocess.py) the process that answers the scrape serves its own
snapshot: INFO is the same whichever process asked, so nothing is merged or labelled by process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

logger = logging.getLogger("potluck.observability.redis")


class InfoClient(Protocol):
    """What the poller needs of a client: redis.asyncio.Redis has it."""

    def info(self) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class RedisInfoSnapshot:
    up: bool
    taken_at: float  # on the poller's clock (monotonic)
    used_memory_bytes: float | None = None
    maxmemory_bytes: float | None = None
    evicted_keys: float | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any], taken_at: float) -> RedisInfoSnapshot:
        return cls(
            up=True,
            taken_at=taken_at,
            used_memory_bytes=_number(info.get("used_memory")),
            maxmemory_bytes=_number(info.get("maxmemory")),
            evicted_keys=_number(info.get("evicted_keys")),
        )


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RedisInfoPoller(Collector):
    """Polls INFO every `interval` seconds (`start()`/`stop()`), and is the collector of its metrics."""

    def __init__(
        self,
        client: InfoClient,
        registry: CollectorRegistry | None = None,
        *,
        interval: float = 5.0,
        timeout: float = 1.0,
        stale_after: float | None = None,
        owns_client: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.owns_client = owns_client  # aclose() closes it too
        self.interval = interval
        self.timeout = timeout
        # A poller that stopped polling (or hangs) must not keep reporting the last good state.
        self.stale_after = stale_after if stale_after is not None else 3 * interval + timeout
        self.clock = clock
        self.snapshot: RedisInfoSnapshot | None = None
        self._task: asyncio.Task[None] | None = None
        if registry is not None:
            registry.register(self)

    # --- polling --------------------------------------------------------------------------------------------

    async def poll(self) -> RedisInfoSnapshot:
        """Read INFO once and keep the result as the snapshot (Redis down on any error or timeout)."""
        try:
            async with asyncio.timeout(self.timeout):
                info = await self.client.info()
            snapshot = RedisInfoSnapshot.from_info(info, self.clock())
        except (RedisError, OSError, TimeoutError) as exc:
            snapshot = RedisInfoSnapshot(up=False, taken_at=self.clock())
            if self.snapshot is None or self.snapshot.up:
                logger.warning("redis.down", extra={"error": repr(exc)})
        else:
            if self.snapshot is not None and not self.snapshot.up:
                logger.info("redis.up")
        self.snapshot = snapshot
        return snapshot

    def start(self) -> None:
        """Poll now and then every `interval` seconds, in a task on the running loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="potluck-redis-info")

    async def stop(self) -> None:
        """Cancel the polling task and wait for it, at most `timeout` + 1 s: shutdown must never hang here."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.timeout + 1.0)
        if task not in done:
            logger.warning("redis.poller_stuck")
        elif not task.cancelled():
            task.exception()  # retrieved: _run only ends by cancellation

    async def aclose(self) -> None:
        """Stop polling; close the client too if this poller owns it."""
        await self.stop()
        close = getattr(self.client, "aclose", None)
        if self.owns_client and close is not None:
            await close()

    async def _run(self) -> None:
        task = asyncio.current_task()
        while True:
            try:
                await self.poll()
            except Exception:  # a reply that could not be read: report down, keep polling
                logger.exception("redis.info_failed")
                self.snapshot = RedisInfoSnapshot(up=False, taken_at=self.clock())
            if task is not None and task.cancelling():
                # A client library swallowed our cancellation (Python 3.11's wait_for can): stop anyway.
                raise asyncio.CancelledError
            await asyncio.sleep(self.interval)

    # --- the collector --------------------------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        # Lets the registry refuse a second collector of the same names, without touching the snapshot.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        up, used, maxmemory, evicted = self._families()
        snapshot = self.snapshot
        if snapshot is None:  # not polled yet: nothing known, nothing claimed
            return
        fresh = self.clock() - snapshot.taken_at <= self.stale_after
        up.add_metric([], 1.0 if snapshot.up and fresh else 0.0)
        yield up
        if not (snapshot.up and fresh):
            return
        for family, value in ((used, snapshot.used_memory_bytes), (maxmemory, snapshot.maxmemory_bytes)):
            if value is not None:
                family.add_metric([], value)
                yield family
        if snapshot.evicted_keys is not None:
            evicted.add_metric([], snapshot.evicted_keys)
            yield evicted

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily("potluck_redis_up", "1 while Redis answered the last INFO (polled in the background)."),
            GaugeMetricFamily("potluck_redis_used_memory_bytes", "Memory Redis has allocated (INFO used_memory)."),
            GaugeMetricFamily(
                "potluck_redis_maxmemory_bytes", "Redis's memory limit (INFO maxmemory; 0 means no limit)."
            ),
            # Exposed as potluck_redis_evicted_keys_total: a counter, reset only by a restart or CONFIG RESETSTAT.
            CounterMetricFamily(
                "potluck_redis_evicted_keys", "Keys Redis evicted to stay under maxmemory (INFO evicted_keys)."
            ),
        )
