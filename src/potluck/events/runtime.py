"""Background work inside a process: the in-process relay (embedded default), the backlog gauges, and the loops
others hand it (`every`: the schedule's jobs in the embedded default, the view push). Started and stopped by the
Container."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from potluck.config import Settings
from potluck.db.base import utcnow
from potluck.db.engine import Database
from potluck.events.metrics import EventsMetrics
from potluck.events.outbox import Outbox
from potluck.events.registry import HandlerRegistry
from potluck.events.relay import Relay
from potluck.events.repository import OutboxRepository

logger = logging.getLogger("potluck.events")


@dataclass
class EventsRuntime:
    settings: Settings
    database: Database
    outbox: Outbox
    handlers: HandlerRegistry
    relay: Relay
    metrics: EventsMetrics
    coord: aioredis.Redis | None
    in_process: bool
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _stopping: bool = False

    async def start(self) -> None:
        cfg = self.settings.events
        self._tasks.append(self._every(cfg.monitor_interval_seconds, "monitor", self.refresh_gauges, at_start=True))
        if self.in_process:
            self._wake = asyncio.Event()
            wake = self._wake
            self.outbox.on_commit(wake.set)
            self._tasks.append(asyncio.create_task(self._relay_loop(wake), name="potluck-relay"))

    def every(self, seconds: float, task: str, work: Callable[[], Awaitable[object]]) -> None:
        """Run `work` every `seconds` (first after one interval) until this runtime stops; failures are logged."""
        self._tasks.append(self._every(seconds, task, work))

    async def stop(self) -> None:
        """Stop every loop (what they were doing is cancelled); the connections stay open until `aclose`."""
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        # Cancelled again if need be: a driver that swallows a cancellation mid-query would otherwise leave its
        # loop running (and this wait hanging) until the next sleep ends.
        for _ in range(5):
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: it was logged where it happened

    async def aclose(self) -> None:
        await self.stop()
        if self.coord is not None:
            await self.coord.aclose()
        await self.database.dispose()

    async def timed(self, task: str, work: Callable[[], Awaitable[object]]) -> object:
        started = time.perf_counter()
        try:
            return await work()
        finally:
            self.metrics.task_duration.labels(task).observe(time.perf_counter() - started)

    def _every(
        self, seconds: float, task: str, work: Callable[[], Awaitable[object]], *, at_start: bool = False
    ) -> asyncio.Task[None]:
        async def loop() -> None:
            if not at_start:
                await asyncio.sleep(seconds)
            while not self._stopping:
                try:
                    await self.timed(task, work)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("events.background_failed", extra={"task": task})
                await asyncio.sleep(seconds)

        return asyncio.create_task(loop(), name=f"potluck-{task}")

    async def _relay_loop(self, wake: asyncio.Event) -> None:
        poll = self.settings.events.poll_interval_seconds
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll)
            wake.clear()
            try:
                await self.timed("events.relay", self.relay.drain)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("events.relay_failed")

    async def refresh_gauges(self) -> None:
        """Backlog, oldest age and dead letters from the database; queue depth from the broker's list."""
        now = utcnow()
        async with self.database.read_session(primary=True) as session:
            backlog = await OutboxRepository(session).backlog()
        self.metrics.backlog.set(backlog.pending)
        oldest = backlog.oldest_created_at
        self.metrics.oldest_age.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        self.metrics.dead_letters.set(backlog.dead)
        if self.coord is not None:
            queue = self.settings.worker.queue
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                self.metrics.queue_depth.labels(queue).set(int(await self.coord.llen(queue)))
