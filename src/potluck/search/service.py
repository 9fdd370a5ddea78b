"""Search: a page of recipe ids, from the shared cache or the database, hydrated through the recipe cache.

Caching (shared/design/cache-semantics.md, item 1): a page is cached in the `search_results` family as recipe ids
plus the next cursor, under the generations that the writes which could change it bump (search/scope.py): on
PostgreSQL an exact match under its query's lexemes' generations (`search:x{generations}:{digest}`), the typo
fallback's page under `gen:search`'s and theirs (`search:f…`; an exact page that found nothing is cached as a
marker that sends the reader there); a type-ahead query with no complete word, and every search on SQLite, under
`gen:search` alone (`search:{generation}:{digest}`). A public recipe's creation, or an edit of its title, cuisine,
tags or visibility (recipe/relevance.py), bumps `gen:search` and its lexemes' generations after commit, once per
event; other edits and deletions need none, since pages are hydrated. The generations are read (one MGET) before
the query; when they cannot be read (Redis down, breaker open) the cache is skipped. A word's lexemes come from
PostgreSQL once per process (`SearchRepository.lexemes`, on a replica; they never change) and are kept in memory.

Privacy: cached pages hold public recipes only (they are filled as an anonymous search). A signed-in viewer who
has private recipes of their own gets an uncached search that can include them; everyone else shares the public
pages. Whether a viewer has private recipes is cached under their author scope's generation, which every creation,
deletion and visibility change of their recipes bumps (the list pages' entry: one answers both). Hydration goes through
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
from potluck.cache.keys import (
    SEARCH_EPOCH_KEY,
    SEARCH_GENERATION_KEY,
    scoped_search_key,
    search_key,
    search_scope_key,
)
from potluck.db.consistency import ConsistencyToken
from potluck.db.engine import Database
from potluck.recipe.relevance import private_recipes_scope
from potluck.recipe.service import CachedRecipe, RecipeService
from potluck.search.analytics import QueryCount, SearchAnalytics
from potluck.search.query import SearchQuery, next_cursor
from potluck.search.repository import SearchRepository
from potluck.search.scope import scope_lexemes, scope_words

logger = logging.getLogger("potluck.search")

TRENDING_QUERIES_WINDOW_HOURS = 24
# Words whose lexemes a process keeps (they never change); past this the memo starts again from empty.
MAX_MEMO_WORDS = 50_000


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
class PageKeys:
    """Where a search's public page is cached now: the exact match's key and the typo fallback's (the same key when
    `gen:search` alone namespaces the query), and the generation of the viewer's author scope (None: anonymous)."""

    exact: str
    fallback: str
    private: int | None


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
        self._lexemes: dict[str, tuple[str, ...]] = {}

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
        keys = await self._keys(query, viewer_id)
        if keys is None:
            return await self._query(query, viewer_id, min_lsn=min_lsn)
        private = keys.private
        if viewer_id is not None and private is not None and await self.recipes.viewer_has_private(viewer_id, private):
            return await self._query(query, viewer_id, min_lsn=min_lsn)
        if keys.exact == keys.fallback or (query.cursor is not None and query.cursor.fuzzy):
            return await self._shared(keys.fallback, query, min_lsn)
        page = await self._shared(keys.exact, query, min_lsn, fallback=False)
        if page.fuzzy and not page.ids:
            # The exact match found nothing (or, unfilled, the query answered with the fallback's page, which has
            # ids): the fallback's page, under `gen:search` too (a new title like the words changes it).
            return await self._shared(keys.fallback, query, min_lsn)
        return page

    async def shared_key(self, query: SearchQuery) -> str | None:
        """The key a reader of `query`'s public page looks up first (for an exact match, its words'; the typo
        fallback's page is under another), or None while the generations cannot be read."""
        keys = await self._keys(query, None)
        return None if keys is None else keys.exact

    async def _keys(self, query: SearchQuery, viewer_id: uuid.UUID | None) -> PageKeys | None:
        """`query`'s page keys under the generations as they are now, read in one round trip with the generation of
        `viewer_id`'s author scope; None while they cannot be read."""
        scopes = await self._scopes(query)
        keys = [SEARCH_GENERATION_KEY, *(scopes or ())]
        private = [] if viewer_id is None else [private_recipes_scope(viewer_id)]
        generations = await self.cache.generations([*keys, *private])
        if generations is None:
            return None
        private_generation = generations.pop() if private else None
        exact, fallback = _page_keys(query, scopes is not None, dict(zip(keys, generations, strict=True)))
        return PageKeys(exact, fallback, private_generation)

    async def _shared(
        self, key: str, query: SearchQuery, min_lsn: ConsistencyToken | None, *, fallback: bool = True
    ) -> SearchPage:
        """The public page of `query` cached under `key`; without `fallback`, an exact page, or when the exact match
        finds nothing a first page of none marked `fuzzy` (the fallback's page is cached under another key)."""

        async def fill() -> Loaded:
            async with self.database.read_rows(primary=True) as read:
                return Loaded((await run_search(SearchRepository(read), query, None, fallback=fallback)).pack())

        # Without a leader nothing is filled: the page is read below on the caller's replica session.
        loaded = await self.cache.get_or_fill(SEARCH_RESULTS, key, fill, unstored=not_stored)
        if loaded.payload is None:  # never stored by the fill; a foreign value under our key is not trusted
            return await self._query(query, None, min_lsn=min_lsn)
        return SearchPage.unpack(loaded.payload)

    async def _scopes(self, query: SearchQuery) -> list[str] | None:
        """The generations that namespace the exact match of `query`, besides `gen:search`: the epoch and its
        lexemes' (search/scope.py); None when `gen:search` alone does (SQLite; an alternative with no complete word
        that has a lexeme; the words' lexemes unreadable just now)."""
        if self.database.dialect != "postgresql":
            return None
        words = scope_words(query.text)
        # This request's own view: a memo cleared meanwhile by another request cannot change its choice.
        known = {word: self._lexemes[word] for word in words if word in self._lexemes}
        if missing := [word for word in words if word not in known]:
            try:
                async with self.database.read_rows() as read:
                    found = await SearchRepository(read).lexemes(missing)
            except Exception as exc:  # an optimization must not fail a search: `gen:search` alone is always right
                logger.warning("search.lexemes_unavailable", extra={"error": repr(exc)})
                return None
            if found is None:
                return None
            fetched = {word: tuple(found.get(word, ())) for word in missing}
            if len(self._lexemes) + len(fetched) > MAX_MEMO_WORDS:
                self._lexemes.clear()
            self._lexemes.update(fetched)
            known.update(fetched)
        lexemes = scope_lexemes(query.text, known)
        return None if lexemes is None else [SEARCH_EPOCH_KEY, *dict.fromkeys(map(search_scope_key, lexemes))]

    async def _query(
        self,
        query: SearchQuery,
        viewer_id: uuid.UUID | None,
        *,
        min_lsn: ConsistencyToken | None = None,
    ) -> SearchPage:
        async with self.database.read_rows(min_lsn=min_lsn) as read:
            return await run_search(SearchRepository(read), query, viewer_id)

    async def _record(self, query: SearchQuery) -> None:
        try:
            await self.analytics.record(query.display_text)
        except Exception:  # analytics must never fail a search
            logger.exception("search.analytics_failed")

    async def trending_queries(self, limit: int) -> list[QueryCount]:
        """The most frequent searches of the last 24 hours."""
        return await self.analytics.top(hours=TRENDING_QUERIES_WINDOW_HOURS, limit=limit)


def _page_keys(query: SearchQuery, scoped: bool, generations: dict[str, int]) -> tuple[str, str]:
    """Where `query`'s page is cached: an exact match's key and the typo fallback's, under `generations` (generation
    key -> value: `gen:search`'s, then, when `scoped`, the epoch's and its lexemes'); one key for both when not
    `scoped`."""
    canonical = query.canonical()
    if not scoped:
        key = search_key(generations[SEARCH_GENERATION_KEY], canonical)
        return key, key
    exact = {key: value for key, value in generations.items() if key != SEARCH_GENERATION_KEY}
    return scoped_search_key("x", exact, canonical), scoped_search_key("f", generations, canonical)


async def run_search(
    repository: SearchRepository, query: SearchQuery, viewer_id: uuid.UUID | None, *, fallback: bool = True
) -> SearchPage:
    """The exact match; on a first page that finds nothing, the typo-tolerant fallback instead (without `fallback`:
    no ids, marked `fuzzy`)."""
    fuzzy = query.cursor.fuzzy if query.cursor is not None else False
    hits = await repository.search(query, viewer_id, fuzzy=fuzzy, limit=query.limit + 1)
    if not hits and not fuzzy and query.cursor is None:
        if not fallback:
            return SearchPage([], None, fuzzy=True)
        fuzzy = True
        hits = await repository.search(query, viewer_id, fuzzy=True, limit=query.limit + 1)
    page = hits[: query.limit]
    cursor = next_cursor(query, page, fuzzy=fuzzy, has_more=len(hits) > query.limit)
    return SearchPage([h.id for h in page], cursor, fuzzy)
