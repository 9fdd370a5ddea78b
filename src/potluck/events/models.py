"""The outbox table and the record of which handler has handled which event."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from potluck.db.base import Base, utcnow

# A 64-bit sequence on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class EventStatus(enum.StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"


class OutboxEvent(Base):
    __tablename__ = "outbox_event"
    __table_args__ = (
        # The relay's scan: pending events in recording order.
        Index(
            "idx_outbox_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # "Is an earlier event of this aggregate still pending?", once per candidate.
        Index(
            "idx_outbox_pending_aggregate",
            "aggregate_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("idx_outbox_status_created", "status", "created_at"),
    )

    # The recording order: allocated under the aggregate's row lock, so per aggregate it is the commit order.
    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.pending.value)
    attempts: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class HandledEvent(Base):
    """Written in a handler's own transaction: a second delivery of the event skips that handler."""

    __tablename__ = "handled_event"

    event_id: Mapped[int] = mapped_column(EventId, primary_key=True)
    handler: Mapped[str] = mapped_column(String(100), primary_key=True)
    handled_at: Mapped[datetime] = mapped_column(default=utcnow)
