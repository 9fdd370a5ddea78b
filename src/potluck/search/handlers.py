"""What search does after a recipe event: `search.index`.

The index itself needs nothing: triggers keep it current inside the writing transaction (migration 0002). What
remains is the cache: cached pages may name a recipe that no longer matches, or miss one that now does. For a
creation, and an update of a field search reads (recipe/relevance.py; deletions need none, and so does a recipe
private throughout), the service bumps the search generation and the generations of the recipe's lexemes (the
event's `search_scopes`) right after commit; this handler bumps them again when the outbox delivers the event, so
a process that died between its commit and its bumps still leaves no stale page behind for longer than the relay's
delay. The bump raises while the store is down, so the event is retried until it lands. The bumps owed for one
event happen once, all under one marker, whoever gets there first, so redelivery is harmless.
"""

from __future__ import annotations

import uuid

from potluck.cache.cache import Cache
from potluck.cache.keys import SEARCH_GENERATION_KEY
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RECIPE_CREATED, RECIPE_DELETED, RECIPE_UPDATED
from potluck.recipe.relevance import private_recipes_scope, update_affects_search

SEARCH_INDEX = "search.index"


def install_search_handlers(registry: HandlerRegistry, cache: Cache) -> HandlerRegistry:
    """`search.index` for recipe.created, recipe.updated and recipe.deleted."""

    async def invalidate_searches(event: Event) -> None:
        if event.topic == RECIPE_DELETED:
            return
        private_created = event.topic == RECIPE_CREATED and event.payload.get("is_public") is False
        if (private_created or "is_public" in event.payload.get("fields", [])) and "author_id" in event.payload:
            # Whether the author has a private recipe (their searches skip the shared pages then) is cached under
            # their author scope: bumped again here, as `gen:search` is, in case the writer died before its bump.
            await cache.bump_strict([private_recipes_scope(uuid.UUID(event.payload["author_id"]))])
        if private_created:
            return  # in no shared page
        # `search`: what the writer decided (False for a recipe private throughout); events from before it said.
        if event.topic == RECIPE_UPDATED and not event.payload.get(
            "search", update_affects_search(event.payload.get("fields", []))
        ):
            return
        # Strict, like the relay's cache.invalidate: CacheStoreError while Redis is down, so the relay retries.
        # Once per event: a no-op when the writer's own bump after commit (or an edge.purge redelivery) did it.
        # With the lexeme generations the writer listed (search/scope.py), all under the event's one marker.
        await cache.bump_strict([SEARCH_GENERATION_KEY, *event.payload.get("search_scopes", [])], event.id)

    for topic in (RECIPE_CREATED, RECIPE_UPDATED, RECIPE_DELETED):
        registry.register(topic, SEARCH_INDEX, invalidate_searches)
    return registry
