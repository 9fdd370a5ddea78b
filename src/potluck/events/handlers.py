"""What happens after a commit, per event. Every handler is safe to run twice.

recipe.created   search.index (a hook the search capability fills), notification.followers (fan-out in
                 batches), cache.invalidate (strict), cache.warm (a lease-guarded fill)
recipe.updated   search.index, cache.invalidate (strict)
recipe.deleted   search.index, cache.invalidate (strict)
rating.created   cache.invalidate (strict)
user.followed    cache.invalidate (strict), notification.followed (transactional: once per event)

The services already invalidate right after commit; the strict invalidation here raises while Redis is down,
so the event is retried with backoff until Redis is back and no invalidation is lost with a crashed process.
"""

from __future__ import annotations

import logging
import time
import uuid

from potluck.cache.cache import Cache
from potluck.cache.keys import recipe_key, user_key
from potluck.db.engine import Database
from potluck.db.session import WriteSession
from potluck.errors import NotFoundError
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RATING_CREATED, RECIPE_CREATED, RECIPE_DELETED, RECIPE_UPDATED, USER_FOLLOWED
from potluck.notification.service import NotificationService
from potluck.recipe.service import RecipeService

SEARCH_INDEX = "search.index"

logger = logging.getLogger("potluck.events")


def _uuid(event: Event, field: str) -> uuid.UUID:
    return uuid.UUID(str(event.payload[field]))


def install_default_handlers(
    registry: HandlerRegistry,
    *,
    cache: Cache,
    recipes: RecipeService,
    notifications: NotificationService,
    database: Database | None = None,
) -> HandlerRegistry:
    """The handlers above, on `registry`; they use `database` (by default the recipe service's)."""
    db = database or recipes.database

    async def invalidate_recipe(event: Event) -> None:
        keys = [recipe_key(event.aggregate_id)]
        if "author_id" in event.payload:
            keys.append(user_key(_uuid(event, "author_id")))  # the profile counts recipes
        await cache.invalidate_strict(keys)

    async def invalidate_follow(event: Event) -> None:
        await cache.invalidate_strict([user_key(_uuid(event, "follower_id")), user_key(event.aggregate_id)])

    async def notify_followers(event: Event) -> None:
        # Batches of fanout_batch_size followers, each its own short transaction: 100,000 followers are 20
        # statements, no transaction holds locks for long, and a retry redoes only what is missing.
        started = time.perf_counter()
        async with db.read_session(primary=True) as session:
            plan = await notifications.fan_out_plan(session, event.aggregate_id)
        if plan is None:
            return
        inserted = 0
        for after, upto in plan.ranges:
            async with db.write_session() as session:
                inserted += await notifications.notify_range(session, plan, after, upto)
        logger.info(
            "notification.fanned_out",
            extra={"recipe_id": str(plan.recipe_id), "inserted": inserted, "seconds": time.perf_counter() - started},
        )

    async def warm(event: Event) -> None:
        try:
            await recipes.get(event.aggregate_id, _uuid(event, "author_id"))
        except NotFoundError:
            pass  # deleted since: nothing to warm

    async def notify_followed(session: WriteSession, event: Event) -> None:
        await notifications.notify_followed(session, _uuid(event, "follower_id"), event.aggregate_id)

    for topic in (RECIPE_CREATED, RECIPE_UPDATED, RECIPE_DELETED):
        registry.register_hook(topic, SEARCH_INDEX)
    registry.register(RECIPE_CREATED, "notification.followers", notify_followers)
    registry.register(RECIPE_CREATED, "cache.invalidate", invalidate_recipe)
    registry.register(RECIPE_CREATED, "cache.warm", warm)
    registry.register(RECIPE_UPDATED, "cache.invalidate", invalidate_recipe)
    registry.register(RECIPE_DELETED, "cache.invalidate", invalidate_recipe)
    registry.register(RATING_CREATED, "cache.invalidate", invalidate_recipe)
    registry.register(USER_FOLLOWED, "cache.invalidate", invalidate_follow)
    registry.register_transactional(USER_FOLLOWED, "notification.followed", notify_followed)
    return registry
