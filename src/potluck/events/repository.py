"""All SQL about the outbox: recording, claiming, settling, and what an operator lists and replays."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic

from sqlalchemy import and_, column, delete, exists, func, insert, or_, select, table, text, update
from sqlalchemy.orm import aliased

from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.session import AnySession, WriteSession
from potluck.db.time_partitions import DAY, TimePartition, create_range_partition, expired, missing
from potluck.events import partitions
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
class PartitionChanges:
    """What one partition maintenance run did (all empty where the outbox is not partitioned: SQLite)."""

    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    # Rows of dropped days that were not delivered (pending or dead): moved to the default partition, not lost.
    kept: int = 0
    # Rows found in the default partition for a day being created, moved into it.
    moved: int = 0
    # handled_event blocks created and dropped.
    blocks_created: tuple[str, ...] = ()
    blocks_dropped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_created_at: datetime | None
    dead: int


def _event(row: OutboxEvent) -> Event:
    return Event(row.id, row.topic, row.aggregate_id, dict(row.payload), row.attempts, row.created_at)


def new_row(
    topic: str, aggregate_type: str, aggregate_id: uuid.UUID, payload: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """An outbox row as recorded: pending, due at once."""
    return {
        "topic": topic,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "payload": dict(payload),
        "status": PENDING,
        "attempts": 0,
        "available_at": now,
        "created_at": now,
    }


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
        values = new_row(topic, aggregate_type, aggregate_id, payload, now)
        event_id = await self.session.scalar(insert(OutboxEvent).values(**values).returning(OutboxEvent.id))
        assert event_id is not None
        return int(event_id)

    def add_at_flush(self: OutboxRepository[WriteSession], row: Mapping[str, Any]) -> None:
        """A `new_row`, inserted by the session's next flush (at the latest its commit), without awaiting."""
        self.session.add(OutboxEvent(**row))

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
        """Forget delivered events older than `before` (and their handler records).

        On a partitioned outbox whole days go with their partitions (maintain_partitions: a delivered event then
        lives 7 to 8 days), so this deletes only from the default partition, never a day's rows one by one.
        """
        outbox: Any = OutboxEvent.__table__
        if await self.partitioned():
            outbox = table("outbox_event_default", column("id"), column("status"), column("created_at"))
        old = select(outbox.c.id).where(and_(outbox.c.status == DELIVERED, outbox.c.created_at < before))
        await self.session.execute(delete(HandledEvent).where(HandledEvent.event_id.in_(old)))
        result = await self.session.execute(
            delete(outbox).where(outbox.c.status == DELIVERED, outbox.c.created_at < before)
        )
        return rowcount(result)

    async def partitioned(self) -> bool:
        """The outbox is a partitioned table (PostgreSQL after migration 0004; never on SQLite)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return False
        kind = await self.session.scalar(
            text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass('outbox_event')")
        )
        return bool(kind == "p")

    async def partition_names(self, table: str = partitions.OUTBOX_TABLE) -> list[str]:
        rows = await self.session.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:table) ORDER BY c.relname"
            ),
            {"table": table},
        )
        return [str(name) for name in rows.scalars()]

    async def maintain_partitions(
        self: OutboxRepository[WriteSession],
        now: datetime,
        retention: timedelta,
        block: int = partitions.HANDLED_BLOCK,
    ) -> PartitionChanges:
        """Create the coming days' partitions and drop the days past `retention` (docs/scaling.md).

        A dropped day's rows that are not delivered (pending, or dead and waiting for a replay) are first moved to
        the default partition, so nothing undelivered is lost. handled_event's blocks of ids are created ahead of
        the sequence and dropped once no day partition holds their events (the kept events' records move to its
        default partition), so no purge deletes rows one by one. One run at a time
        (an advisory lock): two workers running it together wait for each other and the second finds nothing to
        do. The detach takes a brief exclusive lock on the outbox at the end of the transaction.
        """
        if not await self.partitioned():
            return PartitionChanges()
        await self.session.execute(text("SET LOCAL statement_timeout = 0"))
        await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('potluck.outbox_partitions'))"))
        table = partitions.OUTBOX_TABLE
        existing = await self.partition_names()
        created, moved = [], 0
        for part in missing(DAY, table, existing, now, partitions.DAYS_AHEAD):
            moved += await self._create_partition(part)
            created.append(part.name)
        dropped, kept = [], 0
        for part in expired(DAY, table, existing, now - retention):
            kept += await self._drop_partition(part)
            dropped.append(part.name)
        blocks_created, blocks_dropped = await self._maintain_handled_blocks(block)
        return PartitionChanges(tuple(created), tuple(dropped), kept, moved, blocks_created, blocks_dropped)

    async def _maintain_handled_blocks(
        self: OutboxRepository[WriteSession], size: int
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        table = partitions.HANDLED_TABLE
        existing = await self.partition_names(table)
        last_id = int(await self.session.scalar(text("SELECT last_value FROM outbox_event_id_seq")) or 0)
        created = []
        for block in partitions.blocks_missing(table, existing, last_id, size):
            bounds = f"FROM ({block.start}) TO ({block.end})"
            await self.session.execute(text(f"CREATE TABLE {block.name} (LIKE {table})"))
            await self.session.execute(
                text(
                    f"WITH moved AS (DELETE FROM {table}_default WHERE event_id >= :start AND event_id < :end "
                    f"RETURNING *) INSERT INTO {block.name} SELECT * FROM moved"
                ),
                {"start": block.start, "end": block.end},
            )
            await self.session.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {block.name} FOR VALUES {bounds}"))
            created.append(block.name)
        # The oldest event still in a day partition (the default partition's kept events have their records moved).
        oldest = await self.session.scalar(
            text("SELECT min(id) FROM outbox_event WHERE tableoid <> 'outbox_event_default'::regclass")
        )
        oldest_live = int(oldest) if oldest is not None else last_id + 1
        dropped = []
        for block in partitions.blocks_expired(table, existing, oldest_live, size):
            await self.session.execute(text(f"ALTER TABLE {table} DETACH PARTITION {block.name}"))
            await self.session.execute(
                text(
                    f"INSERT INTO {table} SELECT h.* FROM {block.name} h "
                    "WHERE h.event_id IN (SELECT id FROM outbox_event_default)"
                )
            )
            await self.session.execute(text(f"DROP TABLE {block.name}"))
            dropped.append(block.name)
        return tuple(created), tuple(dropped)

    async def _create_partition(self: OutboxRepository[WriteSession], part: TimePartition) -> int:
        # Rows of this day that reached the default partition (the job did not run for days) move in first.
        return await create_range_partition(
            self.session, partitions.OUTBOX_TABLE, "created_at", part.name, part.start, part.end
        )

    async def _drop_partition(self: OutboxRepository[WriteSession], part: TimePartition) -> int:
        await self.session.execute(text(f"ALTER TABLE outbox_event DETACH PARTITION {part.name}"))
        kept = await self.session.execute(
            text(f"INSERT INTO outbox_event SELECT * FROM {part.name} WHERE status <> :delivered"),
            {"delivered": DELIVERED},
        )
        await self.session.execute(text(f"DROP TABLE {part.name}"))
        return rowcount(kept)
