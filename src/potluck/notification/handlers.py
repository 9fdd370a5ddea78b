"""What the notification domain does after recipe and user events commit. Every handler is safe to run twice.

recipe.created   notification.followers (fan-out in batches, each batch idempotent)
user.followed    notification.followed (transactional: once per event)
"""

from __future__ import annotations

import logging
import time
import uuid

from potluck.db.engine import Database
from potluck.db.session import WriteSession
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RECIPE_CREATED, USER_FOLLOWED
from potluck.notification.service import NotificationService

logger = logging.getLogger("potluck.notification")


def install_notification_handlers(
    registry: HandlerRegistry, *, database: Database, notifications: NotificationService
) -> HandlerRegistry:
    async def notify_followers(event: Event) -> None:
        # Batches of fanout_batch_size followers, each its own short transaction: 100,000 followers are 20
        # statements, no transaction holds locks for long, and a retry redoes only what is missing.
        started = time.perf_counter()
        async with database.read_session(primary=True) as session:
            plan = await notifications.fan_out_plan(session, event.aggregate_id)
        if plan is None:
            return
        inserted = 0
        for after, upto in plan.ranges:
            async with database.write_session() as session:
                inserted += await notifications.notify_range(session, plan, after, upto)
        logger.info(
            "notification.fanned_out",
            extra={"recipe_id": str(plan.recipe_id), "inserted": inserted, "seconds": time.perf_counter() - started},
        )

    async def notify_followed(session: WriteSession, event: Event) -> None:
        follower = uuid.UUID(str(event.payload["follower_id"]))
        await notifications.notify_followed(session, follower, event.aggregate_id)

    registry.register(RECIPE_CREATED, "notification.followers", notify_followers)
    registry.register_transactional(USER_FOLLOWED, "notification.followed", notify_followed)
    return registry
