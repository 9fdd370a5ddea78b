"""Search: a page of recipe ids, from the shared cache or the database, hydrated through the recipe cache.

Caching (shared/design/cache-semantics.md, item 1): a page is cached in the `search_results` family under
`search:{generation}:{digest of the canonical query}` as recipe ids plus the next cursor. A recipe's creation, or
an edit of its title, cuisine, tags or visibility (recipe/relevance.py), bumps the generation after commit, once per
event, which makes every cached page unreachable with one INCR; other edits and deletions need none, since pages
are hydrated. The generation is read before the query; when it cannot be read (Redis down, breaker open) the cache
is skipped.

Privacy: cached pages hold public recipes only (they are filled as an anonymous search). A signed-in viewer who
has private recipes of their own gets an uncached search that can include them; everyone else shares the public
pages. Whether a viewer has private recipes is itself cached under the current generation, so it is recomputed
after any bump (creating a recipe and changing visibility bump it). Hydration goes through
`RecipeService.visible`, which checks visibility on every read: an id that went private or was deleted since the
page was cached is skipped, not shown.

Fills read the primary: a lagging replica could store a pre-write page under the post-write generation.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from potluck.cache.cache import Cache, Loaded, not_stored
from potluck.cache.families import SEARCH_RESULTS
from potluck.cache.keys import SEARCH_GENERATION_KEY, search_key
from potluck.db.consistency import ConsistencyToken
from potluck.db.engine import Database
from potluck.recipe.service import CachedRecipe, RecipeService
from potluck.search.analytics import QueryCount, SearchAnalytics
from potluck.search.query import SearchQuery, next_cursor
from potluck.search.repository import SearchRepository

logger = logging.getLogger("potluck.search")

TRENDING_QUERIES_WINDOW_HOURS = 24


@dataclass(frozen=True, slots=True)
class SearchPage:
    """What a cached search entry holds."""

    ids: list[uuid.UUID]
    next_cursor: str | None
    fuzzy: bool

    def pack(self) -> bytes:
        return orjson.dumps({"ids": [i.hex for i in self.ids], "next": self.next_cursor, "fuzzy": self.fuzzy})

    @classmethod
    def unpack(cls, raw: bytes) -> SearchPage:
        data = orjson.loads(raw)
        return cls([uuid.UUID(hex=i) for i in data["ids"]], data["next"], bool(data["fuzzy"]))


@dataclass(frozen=True, slots=True)
class SearchResult:
    items: list[CachedRecipe]
    next_cursor: str | None
    # True when the exact query found nothing and these are the typo-tolerant fallback's matches.
    fuzzy: bool


async def hydrate(
    recipes: RecipeService,
    ids: Sequence[uuid.UUID],
    viewer_id: uuid.UUID | None,
    *,
    limit: int | None = None,
) -> list[CachedRecipe]:
    """The recipes of `ids`, in order, through the recipe cache (`RecipeService.visible`: one multi-get, the misses
    in one statement, stored); ids that are gone or invisible are skipped.

    With `limit`, only the first `limit` ids are read, then as many later ones as were skipped, and so on: a
    trending list of 100 ids served 20 at a time reads 20 (it read all 100 before).
    """
    wanted = len(ids) if limit is None else min(limit, len(ids))
    found: list[CachedRecipe] = []
    start = 0
    while len(found) < wanted and start < len(ids):
        chunk = ids[start : start + wanted - len(found)]
        start += len(chunk)
        found.extend(await recipes.visible(chunk, viewer_id))
    return found


class SearchService:
    def __init__(self, database: Database, cache: Cache, recipes: RecipeService, analytics: SearchAnalytics) -> None:
        self.database = database
        self.cache = cache
        self.recipes = recipes
        self.analytics = analytics

    async def search(
        self, query: SearchQuery, viewer_id: uuid.UUID | None, *, min_lsn: ConsistencyToken | None = None
    ) -> SearchResult:
        """One page of results for `query` as `viewer_id` sees them (`min_lsn`: for an uncached read's replica)."""
        if query.cursor is None and not query.prefix:
            # First pages only: paging on, or type-ahead keystrokes, are not new searches.
            await self._record(query)
        page = await self.page(query, viewer_id, min_lsn=min_lsn)
        items = await hydrate(self.recipes, page.ids, viewer_id)
        return SearchResult(items, page.next_cursor, page.fuzzy)

    async def page(
        self, query: SearchQuery, viewer_id: uuid.UUID | None, *, min_lsn: ConsistencyToken | None = None
    ) -> SearchPage:
        """The page's recipe ids: from the shared cache when the viewer's results are the public ones."""
        generation = await self.cache.generation(SEARCH_GENERATION_KEY)
        if generation is None or (viewer_id is not None and await self._has_private(viewer_id, generation)):
            return await self._query(query, viewer_id, min_lsn=min_lsn)
        key = search_key(generation, query.canonical())
        # Without a leader nothing is filled: the page is read below on the caller's replica session.
        loaded = await self.cache.get_or_fill(SEARCH_RESULTS, key, lambda: self._fill(query), unstored=not_stored)
        if loaded.payload is None:  # never stored by _fill; a foreign value under our key is not trusted
            return await self._query(query, None, min_lsn=min_lsn)
        return SearchPage.unpack(loaded.payload)

    async def _fill(self, query: SearchQuery) -> Loaded:
        return Loaded((await self._query(query, None, primary=True)).pack())

    async def _query(
        self,
        query: SearchQuery,
        viewer_id: uuid.UUID | None,
        *,
        primary: bool = False,
        min_lsn: ConsistencyToken | None = None,
    ) -> SearchPage:
        async with self.database.read_rows(primary=primary, min_lsn=min_lsn) as read:
            return await run_search(SearchRepository(read), query, viewer_id)

    async def _has_private(self, viewer_id: uuid.UUID, generation: int) -> bool:
        key = search_key(generation, {"private_recipes_of": str(viewer_id)})
        return await self.recipes.has_private_recipes(viewer_id, SEARCH_RESULTS, key)

    async def _record(self, query: SearchQuery) -> None:
        try:
            await self.analytics.record(query.display_text)
        except Exception:  # analytics must never fail a search
            logger.exception("search.analytics_failed")

    async def trending_queries(self, limit: int) -> list[QueryCount]:
        """The most frequent searches of the last 24 hours."""
        return await self.analytics.top(hours=TRENDING_QUERIES_WINDOW_HOURS, limit=limit)


async def run_search(repository: SearchRepository, query: SearchQuery, viewer_id: uuid.UUID | None) -> SearchPage:
    """The exact match; on a first page that finds nothing, the typo-tolerant fallback instead."""
    fuzzy = query.cursor.fuzzy if query.cursor is not None else False
    hits = await repository.search(query, viewer_id, fuzzy=fuzzy, limit=query.limit + 1)
    if not hits and not fuzzy and query.cursor is None:
        fuzzy = True
        hits = await repository.search(query, viewer_id, fuzzy=True, limit=query.limit + 1)
    page = hits[: query.limit]
    cursor = next_cursor(query, page, fuzzy=fuzzy, has_more=len(hits) > query.limit)
    return SearchPage([h.id for h in page], cursor, fuzzy)
