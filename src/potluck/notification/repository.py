"""All SQL about notifications, including the fan-out's INSERT ... SELECT over a keyset range of followers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Generic

from sqlalchemy import and_, func, literal, select, tuple_, update
from sqlalchemy.orm import aliased

from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.session import AnySession, ReadSession, WriteSession
from potluck.db.time_partitions import TimePartitionChanges, TimePartitions
from potluck.kit.cursor import Cursor
from potluck.notification.models import Notification, NotificationKind
from potluck.recipe.models import Recipe
from potluck.user.models import Follow, User

NOTIFICATION_TABLE = "notification"
# A follower's position in the fan-out: the order of idx_follow_followee_created.
FollowerKey = tuple[datetime, uuid.UUID]


def _new_id_sql(session: ReadSession) -> Any:
    """A fresh id per inserted row, computed by the database (the rows never pass through Python)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.gen_random_uuid()
    return func.lower(func.hex(func.randomblob(16)))  # SQLite stores a Uuid as 32 hex digits


class NotificationRepository(Generic[AnySession]):
    def __init__(self, session: AnySession) -> None:
        self.session = session

    async def follower_boundaries(self, author_id: uuid.UUID, batch_size: int) -> list[FollowerKey]:
        """Every batch_size-th follower of the author, in (followed at, follower id) order: the batch edges."""
        ranked = (
            select(
                Follow.created_at,
                Follow.follower_id,
                func.row_number().over(order_by=(Follow.created_at, Follow.follower_id)).label("rn"),
            )
            .where(Follow.followee_id == author_id)
            .subquery()
        )
        stmt = (
            select(ranked.c.created_at, ranked.c.follower_id)
            .where(ranked.c.rn % batch_size == 0)
            .order_by(ranked.c.created_at, ranked.c.follower_id)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).all()]

    async def notify_followers(
        self: NotificationRepository[WriteSession],
        author_id: uuid.UUID,
        recipe_id: uuid.UUID,
        after: FollowerKey | None,
        upto: FollowerKey | None,
        now: datetime,
    ) -> int:
        """One notification per follower in (after, upto], in one statement; existing ones are left alone."""
        key = tuple_(Follow.created_at, Follow.follower_id)
        conditions: list[Any] = [Follow.followee_id == author_id]
        if after is not None:
            conditions.append(key > tuple_(after[0], after[1]))
        if upto is not None:
            conditions.append(key <= tuple_(upto[0], upto[1]))
        source = select(
            _new_id_sql(self.session),
            Follow.follower_id,
            literal(NotificationKind.recipe.value),
            literal(author_id, Notification.actor_id.type),
            literal(recipe_id, Notification.recipe_id.type),
            literal(now, Notification.created_at.type),
        ).where(and_(*conditions))
        stmt = (
            dialect_insert(self.session, Notification.__table__)
            .from_select(["id", "user_id", "kind", "actor_id", "recipe_id", "created_at"], source)
            # No conflict target: the unique key is (user_id, kind, recipe_id) on SQLite and (user_id, kind,
            # recipe_id, created_at) on PostgreSQL (partitioned by created_at, migration 0006). `now` is the
            # recipe's created_at, the same on every re-delivery, so both keys refuse the same rows.
            .on_conflict_do_nothing()
        )
        return rowcount(await self.session.execute(stmt))

    async def maintain_partitions(
        self: NotificationRepository[WriteSession], now: datetime, retention: timedelta
    ) -> TimePartitionChanges:
        """Create the coming months of `notification` and drop the months past `retention` (PostgreSQL)."""
        return await TimePartitions(self.session, NOTIFICATION_TABLE, "created_at").maintain(now, retention)

    async def add(self: NotificationRepository[WriteSession], notification: Notification) -> None:
        self.session.add(notification)
        await self.session.flush()

    async def list_page(
        self, user_id: uuid.UUID, cursor: Cursor | None, limit: int
    ) -> list[tuple[Notification, User, uuid.UUID | None, str | None]]:
        """The user's notifications newest first, with the actor and the recipe's title (one query)."""
        actor = aliased(User)
        stmt = (
            select(Notification, actor, Recipe.id, Recipe.title)
            .join(actor, actor.id == Notification.actor_id)
            .outerjoin(Recipe, Recipe.id == Notification.recipe_id)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
        if cursor is not None:
            stmt = stmt.where(tuple_(Notification.created_at, Notification.id) < tuple_(cursor.created_at, cursor.id))
        return [(row[0], row[1], row[2], row[3]) for row in (await self.session.execute(stmt)).all()]

    async def mark_read(
        self: NotificationRepository[WriteSession], user_id: uuid.UUID, notification_id: uuid.UUID, now: datetime
    ) -> bool:
        """True when the user has this notification (read now or before)."""
        result = await self.session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.user_id == user_id)
            .values(read_at=func.coalesce(Notification.read_at, now))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0

    async def mark_all_read(self: NotificationRepository[WriteSession], user_id: uuid.UUID, now: datetime) -> int:
        result = await self.session.execute(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=now)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)

    async def unread_count(self, user_id: uuid.UUID) -> int:
        stmt = (
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def count_for_recipe(self, recipe_id: uuid.UUID) -> int:
        stmt = select(func.count()).select_from(Notification).where(Notification.recipe_id == recipe_id)
        return int((await self.session.execute(stmt)).scalar_one())
