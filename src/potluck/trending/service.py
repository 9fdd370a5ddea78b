"""Trending recipes: the top of each period computed at most once per TTL, served through the recipe cache.

The `trending` family holds `trending:{period}` for 600 s as the ordered ids of the top TOP_N public recipes.
A scheduled task (`trending.refresh`, every 300 s) recomputes every period and replaces the lists; a reader who
finds none (a cold cache) computes it once across processes under the cache's lease, and XFetch refreshes a list
before it expires should the task not run. Ids are hydrated
through `RecipeService.visible` as an anonymous viewer, so a recipe that went private or was deleted since the
list was computed disappears at once: it is skipped, and the next id takes its place.

The candidates may come from a replica: the list is only as fresh as its TTL anyway, and hydration is current.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial

import orjson

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import TRENDING
from potluck.cache.keys import trending_key
from potluck.db.base import utcnow
from potluck.db.engine import Database
from potluck.recipe.service import CachedRecipe, RecipeService
from potluck.search.service import hydrate
from potluck.trending.repository import TrendingRepository
from potluck.trending.scoring import PERIODS, Period, rank

# Ids kept per period: the largest page a client may ask for.
TOP_N = 100


class TrendingService:
    def __init__(
        self, database: Database, cache: Cache, recipes: RecipeService, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.database = database
        self.cache = cache
        self.recipes = recipes
        self.clock = clock
        # The last ranking parsed per key, with the bytes it came from: each request of a trending page got the
        # same 100 ids from the cache and parsed every one again (~1% of the mix's API CPU).
        self._parsed: dict[str, tuple[bytes, tuple[uuid.UUID, ...]]] = {}

    async def top(self, period: Period, limit: int) -> list[CachedRecipe]:
        """The `limit` most trending public recipes of `period`, best first."""
        return await hydrate(self.recipes, await self.ids(period), None, limit=limit)

    async def ids(self, period: Period) -> list[uuid.UUID]:
        """The cached ranking of `period` (computed if absent), best first; not checked for visibility."""
        key = trending_key(period.value)
        loaded = await self.cache.get_or_fill(TRENDING, key, lambda: self._load(period))
        payload = loaded.payload or b"[]"
        parsed = self._parsed.get(key)
        if parsed is None or parsed[0] != payload:
            parsed = (payload, tuple(uuid.UUID(hex=i) for i in orjson.loads(payload)))
            self._parsed[key] = parsed
        return list(parsed[1])

    async def refresh(self) -> dict[Period, int]:
        """Recompute every period's list now and store it (the scheduled task; also run by warm-cache), through the
        cache's guarded refresh: a list being recomputed by another process at the same moment is left to it."""
        sizes: dict[Period, int] = {}
        for period in Period:
            loaded = await self.cache.refresh(TRENDING, trending_key(period.value), partial(self._load, period))
            sizes[period] = len(orjson.loads(loaded.payload or b"[]"))
        return sizes

    async def compute(self, period: Period) -> list[uuid.UUID]:
        """The top TOP_N recipe ids of `period`, scored now."""
        now = self.clock()
        async with self.database.read_session() as session:
            candidates = await TrendingRepository(session).candidates(now - PERIODS[period].window)
        return [recipe_id for recipe_id, _ in rank(candidates, period, now, TOP_N)]

    async def _load(self, period: Period) -> Loaded:
        ids = await self.compute(period)
        # Nothing trends yet (an empty or just-seeded database): cached briefly, like a missing id (30 s), not for
        # the list's 600 s, so the first activity shows up soon.
        return Loaded(orjson.dumps([i.hex for i in ids])) if ids else Loaded(None)
