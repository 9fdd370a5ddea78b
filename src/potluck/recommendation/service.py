"""Personal recommendations: ranked once per user per TTL, served through the recipe cache.

The `recommendations` family holds `recommend:{user_id}` for 1800 s as the ordered ids of the user's top TOP_N
recommendations (one loader across processes under the cache's lease; XFetch refreshes it before it expires).
Ids are hydrated through `RecipeService.visible` as an anonymous viewer, so a recipe that went private or was
deleted since the list was computed disappears at once, for everyone: it is skipped and the next id takes its
place. Hydrating anonymously also means the list can never show a private recipe, whoever asks.

Which ranking: the trained model (model.py, docs/recommendations.md) once one is published, today's formula
(scoring.py) before that. The cached value records the model version it was ranked with ({"v": version, "ids":
[...]}); a process serving a newer model treats an older list as a miss and ranks again, so publishing a model
invalidates every `recommend:*` list without touching a key (the version is the generation). A list newer than
the process's own model is served as is (another process already loaded the new one).

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

import asyncio
import time
import uuid
from dataclasses import dataclass

import orjson

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import RECOMMENDATIONS
from potluck.cache.keys import recommend_key
from potluck.db.consistency import ConsistencyToken
from potluck.db.engine import Database
from potluck.recipe.service import CachedRecipe, RecipeService
from potluck.recommendation.artefact import ArtefactStore, ModelHolder, new_version, publish
from potluck.recommendation.model import DEFAULT_PARAMS, Params, build_artefact, dumps
from potluck.recommendation.repository import RecommendationRepository, TrainingRepository
from potluck.recommendation.scoring import declared_profile, like_weight, rank, taste_profile
from potluck.search.service import hydrate

# Ids kept per user: the largest page a client may ask for.
TOP_N = 100
# How much of the taste profile picks candidates (the score still uses all of it).
TOP_CUISINES = 3
TOP_TAGS = 5


class RecommendationService:
    def __init__(
        self, database: Database, cache: Cache, recipes: RecipeService, models: ModelHolder | None = None
    ) -> None:
        self.database = database
        self.cache = cache
        self.recipes = recipes
        self.models = models

    async def for_user(
        self, user_id: uuid.UUID, limit: int, *, min_lsn: ConsistencyToken | None = None
    ) -> list[CachedRecipe]:
        """The `limit` best recommendations for `user_id`, best first (public recipes; the route projects them)."""
        if self.models is not None:
            await self.models.refresh()
        version = self._version()
        key = recommend_key(user_id)
        loaded = await self.cache.get_or_fill(RECOMMENDATIONS, key, lambda: self._load(user_id, min_lsn))
        ranked_with, ids = _decode(loaded.payload)
        if version is not None and (ranked_with is None or ranked_with < version):
            # Ranked by an older model: the generation moved on. Rank again and replace it.
            loaded = await self.cache.refresh(RECOMMENDATIONS, key, lambda: self._load(user_id, min_lsn))
            ranked_with, ids = _decode(loaded.payload)
        return await hydrate(self.recipes, ids, None, limit=limit)

    def _version(self) -> str | None:
        return None if self.models is None else self.models.version

    async def compute(self, user_id: uuid.UUID, *, min_lsn: ConsistencyToken | None = None) -> list[uuid.UUID]:
        """The top TOP_N recommendation ids for `user_id`, ranked now (by the model once there is one)."""
        served = None if self.models is None else self.models.current
        async with self.database.read_session(min_lsn=min_lsn) as session:
            repository = RecommendationRepository(session)
            interactions = await repository.interactions(user_id)
            tastes = await repository.declared_tastes(user_id)
            if served is not None:
                likes = [(i.recipe_id, like_weight(i)) for i in interactions]
                seen = [i.recipe_id for i in interactions]
            else:
                profile = taste_profile(interactions)
                if profile.is_empty and tastes is not None:
                    profile = declared_profile(*tastes, profile.seen)
                candidates = await repository.candidates(
                    user_id, profile.top_cuisines(TOP_CUISINES), profile.top_tags(TOP_TAGS)
                )
        if served is not None:
            # Scoring every recipe is CPU work (milliseconds at 100,000 recipes): off the event loop. Declared
            # tastes join the profile (model.py): alone they make the list popular-in-those-tastes.
            return await asyncio.to_thread(served.recommend, user_id, likes, seen, TOP_N, tastes)
        return rank(candidates, profile, user_id, TOP_N)

    async def similar(self, recipe_id: uuid.UUID, limit: int) -> list[CachedRecipe] | None:
        """Public recipes like `recipe_id`, best first; None when no model knows it (new, private or no model)."""
        if self.models is not None:
            await self.models.refresh()
        served = None if self.models is None else self.models.current
        if served is None:
            return None
        ids = await asyncio.to_thread(served.similar, recipe_id, TOP_N)
        if ids is None:
            return None
        return await hydrate(self.recipes, ids, None, limit=limit)

    async def _load(self, user_id: uuid.UUID, min_lsn: ConsistencyToken | None) -> Loaded:
        version = self._version()
        ids = await self.compute(user_id, min_lsn=min_lsn)
        return Loaded(orjson.dumps({"v": version, "ids": [i.hex for i in ids]}))


def _decode(payload: bytes | None) -> tuple[str | None, list[uuid.UUID]]:
    """(model version, ids) of a cached list; a bare list (before models) was ranked by the formula."""
    value = orjson.loads(payload or b"[]")
    if isinstance(value, list):
        return None, [uuid.UUID(hex=i) for i in value]
    return value.get("v"), [uuid.UUID(hex=i) for i in value.get("ids", [])]


@dataclass(frozen=True, slots=True)
class TrainingReport:
    version: str
    recipes: int
    users: int
    likes: int
    bytes: int
    seconds: float


class ModelTrainer:
    """Trains the model on everything in the database and publishes it (the nightly job, `potluck recommend
    train`). Reads the primary through the background pool; the CPU work runs off the event loop."""

    def __init__(self, database: Database, store: ArtefactStore, params: Params = DEFAULT_PARAMS) -> None:
        self.database = database
        self.store = store
        self.params = params

    async def train(self) -> TrainingReport:
        """Train and publish a new version; every process picks it up on its next check (artefact.ModelHolder)."""
        started = time.perf_counter()
        async with self.database.read_session(transaction=True) as session:  # its cursors need a transaction
            snapshot = await TrainingRepository(session).snapshot()
        version = new_version()
        data = await asyncio.to_thread(lambda: dumps(build_artefact(snapshot, version, self.params)))
        await publish(self.store, version, data)
        return TrainingReport(
            version=version,
            recipes=int(snapshot.public.sum()),
            users=snapshot.n_users,
            likes=int((snapshot.events.weight > 0).sum()),
            bytes=len(data),
            seconds=time.perf_counter() - started,
        )
