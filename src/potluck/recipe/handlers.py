"""What the recipe domain does after its events commit. Every handler is safe to run twice.

recipe.created   cache.invalidate (strict), cache.warm (a lease-guarded fill)
recipe.updated   cache.invalidate (strict)
recipe.deleted   cache.invalidate (strict)
rating.created   cache.invalidate (strict)

The service already invalidates right after commit; the strict invalidation here raises while Redis is down, so
the event is retried with backoff until Redis is back and no invalidation is lost with a crashed process. The edge
is not purged here: the write owed it these keys (and more) in its own `edge.purge` event (cache/edge.py).
"""

from __future__ import annotations

import uuid

from potluck.cache.cache import Cache
from potluck.cache.keys import recipe_key, user_key
from potluck.errors import NotFoundError
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RATING_CREATED, RECIPE_CREATED, RECIPE_DELETED, RECIPE_UPDATED
from potluck.recipe.service import RecipeService


def install_recipe_handlers(registry: HandlerRegistry, *, cache: Cache, recipes: RecipeService) -> HandlerRegistry:
    """The handlers above, on `registry`; `recipes` is the background service (its own pool and cache)."""

    async def invalidate_recipe(event: Event) -> None:
        keys = [recipe_key(event.aggregate_id)]
        # The profile counts the author's public recipes: an update moves it only when it changes the visibility.
        fields = event.payload.get("fields", ["is_public"])  # an event recorded before "fields" existed: assume so
        if "author_id" in event.payload and (event.topic != RECIPE_UPDATED or "is_public" in fields):
            keys.append(user_key(uuid.UUID(str(event.payload["author_id"]))))
        await cache.invalidate_strict(keys)

    async def warm(event: Event) -> None:
        try:
            await recipes.get(event.aggregate_id, uuid.UUID(str(event.payload["author_id"])))
        except NotFoundError:
            pass  # deleted since: nothing to warm

    for topic in (RECIPE_CREATED, RECIPE_UPDATED, RECIPE_DELETED, RATING_CREATED):
        registry.register(topic, "cache.invalidate", invalidate_recipe)
    registry.register(RECIPE_CREATED, "cache.warm", warm)
    return registry
