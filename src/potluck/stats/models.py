from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from potluck.db.base import Base, utcnow


class StatsFlush(Base):
    """One row per applied flush of view counts: a retried flush finds its id here and applies nothing.

    On PostgreSQL the table is partitioned by month of `flushed_at` and keyed by (flush_id, flushed_at)
    (migration 0006); `flushed_at` is the time in the flush's UUIDv7 id (stats.views.flush_time), the same on
    every retry, so the key still refuses a retried flush."""

    __tablename__ = "stats_flush"

    flush_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipes: Mapped[int]
    views: Mapped[int] = mapped_column(BigInteger)
    flushed_at: Mapped[datetime] = mapped_column(default=utcnow)
