from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from potluck.db.base import Base, utcnow


class StatsFlush(Base):
    """One row per applied flush of view counts: a retried flush finds its id here and applies nothing."""

    __tablename__ = "stats_flush"

    flush_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipes: Mapped[int]
    views: Mapped[int] = mapped_column(BigInteger)
    flushed_at: Mapped[datetime] = mapped_column(default=utcnow)
