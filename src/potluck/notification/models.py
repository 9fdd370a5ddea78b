from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from potluck.db.base import Base, CreatedAtMixin, IdMixin


class NotificationKind(enum.StrEnum):
    recipe = "recipe"  # someone you follow published a recipe
    follow = "follow"  # someone followed you


class Notification(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "notification"
    __table_args__ = (
        # Re-delivering a fan-out inserts nothing twice. On PostgreSQL the key also holds created_at (the table is
        # partitioned by month of it, migration 0006); a recipe notification's created_at is the recipe's, so the
        # key still means one notification per follower per recipe.
        UniqueConstraint("user_id", "kind", "recipe_id", name="uq_notification_user_kind_recipe"),
        Index("idx_notification_user_created", "user_id", text("created_at DESC"), text("id DESC")),
        Index("idx_notification_recipe", "recipe_id"),
        Index(
            "idx_notification_unread",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
            sqlite_where=text("read_at IS NULL"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    recipe_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"))
    read_at: Mapped[datetime | None]
