"""The relay: claims committed events and delivers each to its handlers, at least once, in order per aggregate.

A claim is a lease (`claimed_until`): a relay that dies mid-delivery frees its events when the lease runs out,
and another relay delivers them again; handlers are idempotent, so that is harmless. A failed delivery is
retried with exponential backoff and stays pending meanwhile, which holds back the later events of its
aggregate; after `max_attempts` it is dead-lettered (`potluck events dead`, `replay`), and its aggregate moves on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime, timedelta

from potluck.config import EventsSettings
from potluck.db.base import utcnow
from potluck.db.engine import Database
from potluck.db.session import WriteSession
from potluck.events.backoff import next_delay
from potluck.events.metrics import EventsMetrics
from potluck.events.registry import HandlerRegistry, Registered
from potluck.events.repository import Event, OutboxRepository

logger = logging.getLogger("potluck.events")


def relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


class Relay:
    def __init__(
        self, database: Database, registry: HandlerRegistry, metrics: EventsMetrics, settings: EventsSettings
    ) -> None:
        self.database = database
        self.registry = registry
        self.metrics = metrics
        self.settings = settings
        self.name = relay_name()
        # SQLite has one writer: delivering side by side would only queue on its lock.
        self.concurrency = 1 if database.dialect == "sqlite" else settings.relay_concurrency

    async def drain(self, *, budget_seconds: float | None = None) -> int:
        """Deliver due events until none is left (or the budget is spent); returns how many were settled."""
        deadline = time.monotonic() + (budget_seconds or self.settings.drain_budget_seconds)
        settled = 0
        while time.monotonic() < deadline:
            batch = await self.claim()
            if not batch:
                break
            settled += await self.deliver_batch(batch)
        return settled

    async def claim(self) -> list[Event]:
        lease = timedelta(seconds=self.settings.claim_seconds)
        async with self.database.write_session() as session:
            return await OutboxRepository(session).claim(self.name, utcnow(), lease, self.settings.relay_batch_size)

    async def deliver_batch(self, batch: list[Event]) -> int:
        """Deliver claimed events (at most one per aggregate, so their order does not matter), then settle them."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(event: Event) -> tuple[Event, BaseException | None]:
            async with gate:
                try:
                    await self.deliver(event)
                except Exception as exc:
                    return event, exc
                return event, None

        results = await asyncio.gather(*(one(e) for e in batch))
        delivered = [e.id for e, error in results if error is None]
        now = utcnow()
        async with self.database.write_session() as session:
            repo = OutboxRepository(session)
            if delivered:
                await repo.mark_delivered(delivered, now)
            for event, error in results:
                if error is not None:
                    await self._failed(repo, event, error, now)
        for event, error in results:
            if error is None:
                self.metrics.deliveries.labels(event.topic, "delivered").inc()
        return len(results)

    async def _failed(
        self, repo: OutboxRepository[WriteSession], event: Event, error: BaseException, now: datetime
    ) -> None:
        attempts = event.attempts + 1
        dead = attempts >= self.settings.max_attempts
        delay = next_delay(attempts, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds)
        message = f"{type(error).__name__}: {error}"
        await repo.mark_failed(
            event.id, attempts=attempts, retry_at=now + timedelta(seconds=delay), error=message, dead=dead
        )
        self.metrics.deliveries.labels(event.topic, "dead" if dead else "retried").inc()
        log = logger.error if dead else logger.warning
        log(
            "events.dead_lettered" if dead else "events.retry_scheduled",
            extra={"event_id": event.id, "topic": event.topic, "attempts": attempts, "error": message},
        )

    async def deliver(self, event: Event) -> None:
        """Run every handler of the event's topic; raises if one fails (the event is then retried whole)."""
        for entry in self.registry.handlers(event.topic):
            started = time.perf_counter()
            await self._run(entry, event)
            self.metrics.task_duration.labels(f"handler:{entry.name}").observe(time.perf_counter() - started)

    async def _run(self, entry: Registered, event: Event) -> None:
        if entry.transactional is not None:
            async with self.database.write_session() as session:
                if await OutboxRepository(session).mark_handled(event.id, entry.name, utcnow()):
                    await entry.transactional(session, event)
            return
        assert entry.handler is not None
        await entry.handler(event)
