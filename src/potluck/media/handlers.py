"""What media does after a commit: delete the objects no recipe row points at any more.

recipe.image_replaced   cache.invalidate (strict), media.sweep
recipe.deleted          media.sweep

The sweep deletes everything under `recipes/{id}/` except the current image's prefix. It runs under the recipe's
row lock, which every upload also holds while it writes objects, so a sweep never deletes what a concurrent
upload is about to commit, and an image that comes back (A → B → A) is never lost to the sweep owed for the first
replacement. It also removes the leftovers of uploads whose transaction rolled back. Safe to run twice.
"""

from __future__ import annotations

from potluck.cache.cache import Cache
from potluck.cache.keys import recipe_key
from potluck.db.engine import Database
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RECIPE_DELETED, RECIPE_IMAGE_REPLACED
from potluck.media.service import MediaService

MEDIA_SWEEP = "media.sweep"


def install_media_handlers(
    registry: HandlerRegistry, *, database: Database, cache: Cache, media: MediaService
) -> HandlerRegistry:
    async def invalidate_recipe(event: Event) -> None:
        # The service invalidated right after commit; this one raises while Redis is down, so it is retried.
        await cache.invalidate_strict([recipe_key(event.aggregate_id)])

    async def sweep(event: Event) -> None:
        async with database.write_session() as session:
            await media.sweep(session, event.aggregate_id)

    registry.register(RECIPE_IMAGE_REPLACED, "cache.invalidate", invalidate_recipe)
    registry.register(RECIPE_IMAGE_REPLACED, MEDIA_SWEEP, sweep)
    registry.register(RECIPE_DELETED, MEDIA_SWEEP, sweep)
    return registry
