"""What media does after a commit: delete the objects no recipe row points at any more.

recipe.image_replaced   cache.invalidate (strict), media.sweep
recipe.deleted          media.sweep
recipe.updated          media.rekey, when `is_public` was sent: a recipe that changed visibility gets its image
                        under a new key (private or public root), and the old key's objects are swept

The sweep deletes everything under `recipes/{id}/` and `private/recipes/{id}/` except the current image's prefix.
It runs under the recipe's row lock, which every upload (and re-key) also holds while it writes objects, so a sweep
never deletes what a concurrent upload is about to commit, and an image that comes back (A → B → A) is never lost
to the sweep owed for the first replacement. It also removes the leftovers of uploads whose transaction rolled back.
Safe to run twice.
"""

from __future__ import annotations

from potluck.cache.cache import Cache
from potluck.cache.keys import recipe_key
from potluck.db.engine import Database
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RECIPE_DELETED, RECIPE_IMAGE_REPLACED, RECIPE_UPDATED
from potluck.media.service import MediaService

MEDIA_SWEEP = "media.sweep"
MEDIA_REKEY = "media.rekey"


def install_media_handlers(
    registry: HandlerRegistry, *, database: Database, cache: Cache, media: MediaService
) -> HandlerRegistry:
    async def invalidate_recipe(event: Event) -> None:
        # The service invalidated right after commit; this one raises while Redis is down, so it is retried.
        await cache.invalidate_strict([recipe_key(event.aggregate_id)])

    async def sweep(event: Event) -> None:
        async with database.write_session() as session:
            await media.sweep(session, event.aggregate_id)

    async def rekey(event: Event) -> None:
        if "is_public" not in (event.payload or {}).get("fields", ()):
            return
        # Naturally idempotent: it compares the stored key with the recipe's visibility now, under its row lock.
        # Its set_image records recipe.image_replaced, whose handlers invalidate the document and sweep the old key.
        async with database.write_session() as session:
            await media.rekey(session, event.aggregate_id)

    registry.register(RECIPE_UPDATED, MEDIA_REKEY, rekey)
    registry.register(RECIPE_IMAGE_REPLACED, "cache.invalidate", invalidate_recipe)
    registry.register(RECIPE_IMAGE_REPLACED, MEDIA_SWEEP, sweep)
    registry.register(RECIPE_DELETED, MEDIA_SWEEP, sweep)
    return registry
