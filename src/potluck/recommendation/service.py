"""Personal recommendations: ranked once per user per TTL, served through the recipe cache.

The `recommendations` family holds `recommend:{user_id}` for 1800 s as the ordered ids of the user's top TOP_N
recommendations (one loader across processes under the cache's lease; XFetch refreshes it before it expires).
Ids are hydrated through `RecipeService.get` as an anonymous viewer, so a recipe that went private or was
deleted since the list was computed disappears at once, for everyone: its document is a 404 and the next id
takes its place. Hydrating anonymously also means the list can never show a private recipe, whoever asks.

Freshness: the viewer's own favorites, ratings and follows clear `recommend:{user_id}` after their commit
(recipe/service.py, user/service.py); other users' activity reaches the list on its next computation, up to the
TTL later (docs/recommendations.md).

The fill reads a replica, not the primary: there is one fill per active user per TTL (far more than trending's
one per period), the list is allowed to be as old as its TTL anyway, and a replica that still shows a recipe as
public only puts its id in the list, which hydration then drops. The request's consistency token (`min_lsn`) is
passed on, so a client that just wrote gets a replica that has replayed its write (or the primary): once the
viewer's favorites and ratings invalidate their list, a fill right after one cannot re-add the recipe from a
lagging replica.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import RECOMMENDATIONS
from potluck.cache.keys import recommend_key
from potluck.db.consistency import ConsistencyToken
from potluck.db.engine import Database
from potluck.recipe.service import RecipeService
from potluck.recommendation.repository import RecommendationRepository
from potluck.recommendation.scoring import rank, taste_profile
from potluck.search.service import hydrate

# Ids kept per user: the largest page a client may ask for.
TOP_N = 100
# How much of the taste profile picks candidates (the score still uses all of it).
TOP_CUISINES = 3
TOP_TAGS = 5


class RecommendationService:
    def __init__(self, database: Database, cache: Cache, recipes: RecipeService) -> None:
        self.database = database
        self.cache = cache
        self.recipes = recipes

    async def for_user(
        self, user_id: uuid.UUID, limit: int, *, min_lsn: ConsistencyToken | None = None
    ) -> list[dict[str, Any]]:
        """The `limit` best recommendations for `user_id`, best first, as full (public) recipe documents."""
        loaded = await self.cache.get_or_fill(
            RECOMMENDATIONS, recommend_key(user_id), lambda: self._load(user_id, min_lsn)
        )
        ids = [uuid.UUID(hex=i) for i in orjson.loads(loaded.payload or b"[]")]
        return await hydrate(self.recipes, ids, None, limit=limit)

    async def compute(self, user_id: uuid.UUID, *, min_lsn: ConsistencyToken | None = None) -> list[uuid.UUID]:
        """The top TOP_N recommendation ids for `user_id`, ranked now."""
        async with self.database.read_session(min_lsn=min_lsn) as session:
            repository = RecommendationRepository(session)
            profile = taste_profile(await repository.interactions(user_id))
            candidates = await repository.candidates(
                user_id, profile.top_cuisines(TOP_CUISINES), profile.top_tags(TOP_TAGS)
            )
        return rank(candidates, profile, user_id, TOP_N)

    async def _load(self, user_id: uuid.UUID, min_lsn: ConsistencyToken | None) -> Loaded:
        return Loaded(orjson.dumps([i.hex for i in await self.compute(user_id, min_lsn=min_lsn)]))
