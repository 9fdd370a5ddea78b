"""`warm_cache`: fill the cache with what readers are about to ask for, through the readers' own guarded fills.

What is warmed (shared/design/scalability-and-caching.md, "Cache warming"):

* the `recipes` most popular public recipes (`recipe:{id}`);
* the first page of each of the `searches` most frequent searches of the last 24 hours (`search:{gen}:{digest}`),
  and the recipes on it;
* the trending lists of every period (`trending:{period}`), recomputed, and the recipes at their top.

Every entry goes through `Cache.get_or_fill` (or `Cache.refresh` for the trending lists): the same lease and
compare-and-set fill as a reader's miss, so a write that commits while warming loads a recipe deletes the lease and
the warm fill is refused; warming can never store data older than a write it raced with. Entries already cached are
left as they are (a hit costs one GET). Recipes are loaded from the primary like every fill; the popularity ranking
may come from a replica.

It runs on a schedule (`cache.warm`, by beat in the full topology, in process in the embedded default), by hand
(`potluck warm-cache`), and a new recipe is warmed from its `recipe.created` event (recipe/handlers.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from potluck.db.engine import Database
from potluck.errors import NotFoundError
from potluck.recipe.service import RecipeService
from potluck.search.query import SearchQueryError, normalise
from potluck.search.service import SearchService
from potluck.trending.service import TrendingService
from potluck.warming.repository import WarmingRepository

logger = logging.getLogger("potluck.warming")

# The design's figures: the 100 most popular recipes and the trending searches (GET /search/trending's default).
WARM_RECIPES = 100
WARM_SEARCHES = 10
# Recipes at the top of each trending list that are warmed with it (a client's first page).
WARM_TRENDING_ITEMS = 20
# Fills at once: enough to hide the round trips, few enough not to take the pool from requests.
WARM_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class WarmReport:
    """What one run did; `recipes` counts distinct recipe documents made present (cached before or filled now)."""

    recipes: int
    recipes_gone: int
    searches: int
    searches_skipped: int
    trending_lists: int
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "recipes": self.recipes,
            "recipes_gone": self.recipes_gone,
            "searches": self.searches,
            "searches_skipped": self.searches_skipped,
            "trending_lists": self.trending_lists,
            "seconds": round(self.seconds, 3),
        }


class CacheWarmer:
    def __init__(
        self,
        database: Database,
        recipes: RecipeService,
        search: SearchService,
        trending: TrendingService,
        *,
        concurrency: int = WARM_CONCURRENCY,
    ) -> None:
        self.database = database
        self.recipes = recipes
        self.search = search
        self.trending = trending
        self.concurrency = concurrency

    async def run(
        self, *, recipes: int = WARM_RECIPES, searches: int = WARM_SEARCHES, trending_items: int = WARM_TRENDING_ITEMS
    ) -> WarmReport:
        started = time.perf_counter()
        async with self.database.read_session() as session:
            popular = await WarmingRepository(session).popular_recipe_ids(recipes)
        wanted: dict[uuid.UUID, None] = dict.fromkeys(popular)

        warmed_searches = skipped = 0
        for item in await self.search.trending_queries(searches):
            ids = await self._warm_search(item.query)
            if ids is None:
                skipped += 1
                continue
            warmed_searches += 1
            wanted.update(dict.fromkeys(ids))

        lists = await self.trending.refresh()
        for period in lists:
            wanted.update(dict.fromkeys((await self.trending.ids(period))[:trending_items]))

        present, gone = await self._warm_recipes(list(wanted))
        report = WarmReport(present, gone, warmed_searches, skipped, len(lists), time.perf_counter() - started)
        logger.info("cache.warmed", extra=report.as_dict())
        return report

    async def _warm_search(self, text: str) -> list[uuid.UUID] | None:
        """Fill the first page of a search as an anonymous reader runs it; its ids, or None if unusable."""
        try:
            query = normalise(text)
        except SearchQueryError:
            return None  # recorded by an older normalisation, say: not worth a failed run
        page = await self.search.page(query, None)
        return page.ids

    async def _warm_recipes(self, ids: Sequence[uuid.UUID]) -> tuple[int, int]:
        semaphore = asyncio.Semaphore(self.concurrency)
        present = gone = 0

        async def one(recipe_id: uuid.UUID) -> None:
            nonlocal present, gone
            async with semaphore:
                try:
                    await self.recipes.get(recipe_id, None)
                    present += 1
                except NotFoundError:
                    gone += 1  # deleted or made private since it was ranked

        async with asyncio.TaskGroup() as group:
            for recipe_id in ids:
                group.create_task(one(recipe_id))
        return present, gone
