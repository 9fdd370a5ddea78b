"""All SQL about the outbox: recording, claiming, settling, and what an operator lists and replays."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.session import AnySession, WriteSession
from potluck.events.models import EventStatus, HandledEvent, OutboxEvent

PENDING = EventStatus.pending.value
DELIVERED = EventStatus.delivered.value
DEAD = EventStatus.dead.value


@dataclass(frozen=True, slots=True)
class Event:
    """A committed event as handlers see it."""

    id: int
    topic: str
    aggregate_id: uuid.UUID
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_created_at: datetime | None
    dead: int


def _event(row: OutboxEvent) -> Event:
    return Event(row.id, row.topic, row.aggregate_id, dict(row.payload), row.attempts, row.created_at)


class OutboxRepository(Generic[AnySession]):
    def __init__(self, session: AnySession) -> None:
        self.session = session

    async def add(
        self: OutboxRepository[WriteSession],
        topic: str,
        aggregate_type: str,
        aggregate_id: uuid.UUID,
        payload: Mapping[str, Any],
        now: datetime,
    ) -> int:
        event_id = await self.session.scalar(
            insert(OutboxEvent)
            .values(
                topic=topic,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                payload=dict(payload),
                status=PENDING,
                attempts=0,
                available_at=now,
                created_at=now,
            )
            .returning(OutboxEvent.id)
        )
        assert event_id is not None
        return int(event_id)

    async def claim(
        self: OutboxRepository[WriteSession], relay: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Event]:
        """Claim up to `limit` due events, each the oldest pending event of its aggregate.

        An event whose aggregate has an earlier event still pending (being delivered, or waiting for a retry) is
        not due: that is what keeps each aggregate in order however many relays run. FOR UPDATE SKIP LOCKED lets
        relays claim side by side without waiting for each other (on SQLite the writer lock serialises them).
        """
        earlier = aliased(OutboxEvent)
        stmt = (
            select(OutboxEvent)
            .where(
                OutboxEvent.status == PENDING,
                OutboxEvent.available_at <= now,
                or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now),
                ~exists().where(
                    earlier.aggregate_id == OutboxEvent.aggregate_id,
                    earlier.status == PENDING,
                    earlier.id < OutboxEvent.id,
                ),
            )
            .order_by(OutboxEvent.id)
            .limit(limit)
            .with_for_update(of=OutboxEvent, skip_locked=True)
        )
        rows = list((await self.session.execute(stmt)).scalars().all())
        if not rows:
            return []
        await self.session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([r.id for r in rows]))
            .values(claimed_until=now + lease, claimed_by=relay)
            .execution_options(synchronize_session=False)
        )
        return [_event(r) for r in rows]

    async def mark_delivered(self: OutboxRepository[WriteSession], event_ids: Sequence[int], now: datetime) -> None:
        await self.session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(list(event_ids)), OutboxEvent.status == PENDING)
            .values(status=DELIVERED, delivered_at=now, claimed_until=None, claimed_by=None, last_error=None)
            .execution_options(synchronize_session=False)
        )

    async def mark_failed(
        self: OutboxRepository[WriteSession],
        event_id: int,
        *,
        attempts: int,
        retry_at: datetime,
        error: str,
        dead: bool,
    ) -> None:
        await self.session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == event_id, OutboxEvent.status == PENDING)
            .values(
                status=DEAD if dead else PENDING,
                attempts=attempts,
                available_at=retry_at,
                claimed_until=None,
                claimed_by=None,
                last_error=error[:4000],
            )
            .execution_options(synchronize_session=False)
        )

    async def mark_handled(self: OutboxRepository[WriteSession], event_id: int, handler: str, now: datetime) -> bool:
        """Record that `handler` handled the event; False when it already had (the handler must then do nothing).

        On PostgreSQL a concurrent second delivery waits here on the unique key until the first commits.
        """
        result = await self.session.execute(
            dialect_insert(self.session, HandledEvent.__table__)
            .values(event_id=event_id, handler=handler, handled_at=now)
            .on_conflict_do_nothing()
        )
        return rowcount(result) > 0

    async def backlog(self) -> Backlog:
        stmt = select(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.status == PENDING).scalar_subquery(),
            select(func.min(OutboxEvent.created_at)).where(OutboxEvent.status == PENDING).scalar_subquery(),
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.status == DEAD).scalar_subquery(),
        )
        pending, oldest, dead = (await self.session.execute(stmt)).one()
        return Backlog(int(pending), oldest, int(dead))

    async def list_events(self, status: str | None, limit: int) -> list[OutboxEvent]:
        stmt = select(OutboxEvent).order_by(OutboxEvent.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(OutboxEvent.status == status)
        return list((await self.session.execute(stmt)).scalars().all())

    async def get(self, event_id: int) -> OutboxEvent | None:
        return await self.session.get(OutboxEvent, event_id)

    async def replay(self: OutboxRepository[WriteSession], event_ids: Sequence[int] | None, now: datetime) -> int:
        """Send dead events (all of them when `event_ids` is None) back to pending, due now, attempts reset."""
        stmt = update(OutboxEvent).where(OutboxEvent.status == DEAD)
        if event_ids is not None:
            stmt = stmt.where(OutboxEvent.id.in_(list(event_ids)))
        result = await self.session.execute(
            stmt.values(
                status=PENDING, attempts=0, available_at=now, claimed_until=None, claimed_by=None
            ).execution_options(synchronize_session=False)
        )
        return rowcount(result)

    async def purge_delivered(self: OutboxRepository[WriteSession], before: datetime) -> int:
        """Forget delivered events older than `before` (and their handler records)."""
        old = select(OutboxEvent.id).where(and_(OutboxEvent.status == DELIVERED, OutboxEvent.created_at < before))
        await self.session.execute(delete(HandledEvent).where(HandledEvent.event_id.in_(old)))
        result = await self.session.execute(
            delete(OutboxEvent).where(OutboxEvent.status == DELIVERED, OutboxEvent.created_at < before)
        )
        return rowcount(result)
