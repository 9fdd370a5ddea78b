"""Notifications: the fan-out of a new recipe to its author's followers, and the reader's inbox. Never commits:
the fan-out's handler runs each batch in its own transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from potluck.db.base import utcnow
from potluck.db.session import ReadSession, WriteSession
from potluck.errors import NotFoundError
from potluck.kit.cursor import Cursor, encode_cursor
from potluck.notification.fanout import keyset_ranges
from potluck.notification.models import Notification, NotificationKind
from potluck.notification.repository import FollowerKey as Key
from potluck.notification.repository import NotificationRepository
from potluck.notification.schemas import NotificationPage, NotificationRead, NotificationRecipe
from potluck.recipe.repository import RecipeRepository
from potluck.user.schemas import UserSummary


@dataclass(frozen=True, slots=True)
class FanOut:
    recipe_id: uuid.UUID
    author_id: uuid.UUID
    published_at: datetime
    ranges: list[tuple[Key | None, Key | None]]


class NotificationService:
    def __init__(self, batch_size: int = 5000) -> None:
        self.batch_size = batch_size

    async def fan_out_plan(self, session: ReadSession, recipe_id: uuid.UUID) -> FanOut | None:
        """How to notify the followers of a new recipe's author: keyset ranges of `batch_size` followers each.
        None when the recipe is gone or not public (nobody is notified)."""
        recipe = await RecipeRepository(session).get(recipe_id, frozenset())
        if recipe is None or not recipe.is_public:
            return None
        boundaries = await NotificationRepository(session).follower_boundaries(recipe.author_id, self.batch_size)
        # Stamped with the recipe's time, not the relay's: the inbox lists recipes in the order they appeared, and a
        # re-delivery carries the same time, which the partitioned table's unique key holds (migration 0006).
        return FanOut(recipe_id, recipe.author_id, recipe.created_at, keyset_ranges(boundaries))

    async def notify_range(self, session: WriteSession, plan: FanOut, after: Key | None, upto: Key | None) -> int:
        """One notification per follower in (after, upto], one INSERT ... SELECT; safe to run again (the unique
        (user_id, kind, recipe_id), with created_at on PostgreSQL, skips those already notified: every run stamps
        the recipe's created_at). Returns the rows inserted."""
        return await NotificationRepository(session).notify_followers(
            plan.author_id, plan.recipe_id, after, upto, plan.published_at
        )

    async def notify_followed(self, session: WriteSession, follower_id: uuid.UUID, followee_id: uuid.UUID) -> None:
        """Tell `followee_id` that `follower_id` follows them (the caller makes it once per event)."""
        await NotificationRepository(session).add(
            Notification(user_id=followee_id, kind=NotificationKind.follow.value, actor_id=follower_id, recipe_id=None),
        )

    async def list_page(
        self, session: ReadSession, user_id: uuid.UUID, cursor: Cursor | None, limit: int
    ) -> NotificationPage:
        rows = await NotificationRepository(session).list_page(user_id, cursor, limit + 1)
        page = rows[:limit]
        items = [
            NotificationRead(
                id=n.id,
                kind=n.kind,
                actor=UserSummary(id=actor.id, username=actor.username, display_name=actor.display_name),
                recipe=NotificationRecipe(id=rid, title=title) if rid is not None and title is not None else None,
                created_at=n.created_at,
                read_at=n.read_at,
            )
            for n, actor, rid, title in page
        ]
        next_cursor = encode_cursor(page[-1][0].created_at, page[-1][0].id) if len(rows) > limit and page else None
        return NotificationPage(items=items, next_cursor=next_cursor)

    async def mark_read(self, session: WriteSession, user_id: uuid.UUID, notification_id: uuid.UUID) -> None:
        """Mark one of the caller's notifications read; 404 if it is not theirs."""
        if not await NotificationRepository(session).mark_read(user_id, notification_id, utcnow()):
            raise NotFoundError("no such notification")

    async def mark_all_read(self, session: WriteSession, user_id: uuid.UUID) -> int:
        return await NotificationRepository(session).mark_all_read(user_id, utcnow())

    async def unread_count(self, session: ReadSession, user_id: uuid.UUID) -> int:
        return await NotificationRepository(session).unread_count(user_id)
