"""All recommendation SQL: the viewer's own favorites and ratings, and a bounded set of candidates with signals.

Every statement is plain SQLAlchemy Core that PostgreSQL and SQLite both run: sources with their own ORDER BY
and LIMIT are wrapped in subqueries before the UNION (SQLite refuses them in a compound SELECT directly).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, ColumnElement, Subquery, and_, exists, func, literal, select, union
from sqlalchemy.orm import InstrumentedAttribute

from potluck.db.session import ReadSession
from potluck.recipe.models import Favorite, Rating, Recipe, RecipeIngredient, RecipeTag, Tag
from potluck.recipe.repository import visible_to
from potluck.recommendation.dataset import Snapshot, SnapshotBuilder
from potluck.recommendation.model import Tastes
from potluck.recommendation.scoring import LIKED_STARS, PRIOR_RATINGS, PRIOR_STARS, Candidate, Interaction
from potluck.user.models import Follow, User


@dataclass(frozen=True, slots=True)
class Budget:
    """How many rows each source may contribute: at most 500 candidates in all, whatever the data."""

    # The viewer's most recent favorites, and ratings, that make up the taste profile.
    interactions: int = 200
    # The most recently followed people whose likes count.
    followees: int = 500
    social: int = 150
    per_cuisine: int = 60
    per_tag: int = 20
    popular: int = 70


DEFAULT_BUDGET = Budget()
# The popular source ranks this many times its budget before dropping what the viewer has already seen.
POPULAR_POOL = 3


def _unseen(
    viewer_id: uuid.UUID, recipe_id: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID]
) -> ColumnElement[bool]:
    """Neither favorited nor rated by the viewer: two probes on the `favorite` and `rating` primary keys."""
    return and_(
        ~exists().where(Favorite.user_id == viewer_id, Favorite.recipe_id == recipe_id),
        ~exists().where(Rating.user_id == viewer_id, Rating.recipe_id == recipe_id),
    )


def _eligible(viewer_id: uuid.UUID) -> ColumnElement[bool]:
    """A `recipe` row that may be recommended: public, someone else's, and unseen by the viewer."""
    return and_(Recipe.is_public.is_(True), Recipe.author_id != viewer_id, _unseen(viewer_id, Recipe.id))


def _shrunk_rating() -> ColumnElement[Any]:
    """The scoring's Bayesian average, in SQL, to pick each cuisine's best candidates."""
    stars = func.coalesce(Recipe.rating_avg, PRIOR_STARS)
    return (literal(PRIOR_RATINGS * PRIOR_STARS) + Recipe.rating_count * stars) / (PRIOR_RATINGS + Recipe.rating_count)


class RecommendationRepository:
    def __init__(self, session: ReadSession, budget: Budget = DEFAULT_BUDGET) -> None:
        self.session = session
        self.budget = budget

    async def declared_tastes(self, viewer_id: uuid.UUID) -> Tastes | None:
        """The cuisines and tags the viewer declared (user_account.tastes); None when none."""
        value = (await self.session.execute(select(User.tastes).where(User.id == viewer_id))).scalar_one_or_none()
        if not value or not (value.get("cuisines") or value.get("tags")):
            return None
        return (tuple(value.get("cuisines", ())), tuple(value.get("tags", ())))

    async def interactions(self, viewer_id: uuid.UUID) -> list[Interaction]:
        """The viewer's most recent favorites and ratings of recipes they can still see, with cuisine and tags."""
        favorites = (
            select(Favorite.recipe_id)
            .where(Favorite.user_id == viewer_id)
            .order_by(Favorite.created_at.desc(), Favorite.recipe_id.desc())
            .limit(self.budget.interactions)
            .subquery("fav")
        )
        ratings = (
            select(Rating.recipe_id, Rating.stars)
            .where(Rating.user_id == viewer_id)
            .order_by(Rating.updated_at.desc(), Rating.recipe_id.desc())
            .limit(self.budget.interactions)
            .subquery("rat")
        )
        ids = union(select(favorites.c.recipe_id), select(ratings.c.recipe_id)).subquery("mine")
        stmt = (
            select(Recipe.id, Recipe.cuisine, favorites.c.recipe_id.is_not(None), ratings.c.stars)
            .join(ids, ids.c.recipe_id == Recipe.id)
            .outerjoin(favorites, favorites.c.recipe_id == Recipe.id)
            .outerjoin(ratings, ratings.c.recipe_id == Recipe.id)
            .where(visible_to(viewer_id))
        )
        rows = (await self.session.execute(stmt)).all()
        tags = await self._tags([row[0] for row in rows])
        return [
            Interaction(
                recipe_id=row[0],
                cuisine=row[1],
                tags=tags.get(row[0], ()),
                favorited=bool(row[2]),
                stars=None if row[3] is None else int(row[3]),
            )
            for row in rows
        ]

    def _social_source(self, viewer_id: uuid.UUID) -> CTE:
        """Recipes the viewer's most recent followees liked, with how many of them liked each (column `n`)."""
        followees = (
            select(Follow.followee_id)
            .where(Follow.follower_id == viewer_id)
            .order_by(Follow.created_at.desc())
            .limit(self.budget.followees)
            .scalar_subquery()
        )
        likes = union(
            select(Favorite.user_id, Favorite.recipe_id).where(Favorite.user_id.in_(followees)),
            select(Rating.user_id, Rating.recipe_id).where(Rating.user_id.in_(followees), Rating.stars >= LIKED_STARS),
        ).subquery("liked")  # UNION, not UNION ALL: a person who favorited and rated a recipe counts once
        liked_by = func.count().label("n")
        # Eligibility is probed per liked recipe (EXISTS on its primary key) rather than by joining `recipe`:
        # a join lets SQLite's planner drive from every public recipe instead of from the few liked ones.
        return (
            select(likes.c.recipe_id, liked_by)
            .where(
                exists().where(
                    Recipe.id == likes.c.recipe_id, Recipe.is_public.is_(True), Recipe.author_id != viewer_id
                ),
                _unseen(viewer_id, likes.c.recipe_id),
            )
            .group_by(likes.c.recipe_id)
            .order_by(liked_by.desc(), likes.c.recipe_id.desc())
            .limit(self.budget.social)
            .cte("social")
        )

    def _taste_sources(self, viewer_id: uuid.UUID, cuisines: Sequence[str], tags: Sequence[str]) -> list[Subquery]:
        """The best-rated eligible recipes of each cuisine, and the newest of each tag."""
        eligible = _eligible(viewer_id)  # built once and shared: every source reuses its bound parameters
        sources: list[Subquery] = []
        for i, cuisine in enumerate(cuisines):
            sources.append(
                select(Recipe.id.label("recipe_id"))
                .where(eligible, Recipe.cuisine == cuisine)
                .order_by(_shrunk_rating().desc(), Recipe.favorite_count.desc(), Recipe.id.desc())
                .limit(self.budget.per_cuisine)
                .subquery(f"cuisine_{i}")
            )
        for i, tag in enumerate(tags):
            sources.append(
                select(RecipeTag.recipe_id)
                .join(Tag, Tag.id == RecipeTag.tag_id)
                .join(Recipe, Recipe.id == RecipeTag.recipe_id)
                .where(Tag.name == tag, eligible)
                .order_by(RecipeTag.recipe_id.desc())
                .limit(self.budget.per_tag)
                .subquery(f"tag_{i}")
            )
        return sources

    def _popular_source(self, viewer_id: uuid.UUID) -> Subquery:
        """The most favorited public recipes the viewer has not seen."""
        # The most favorited: no index reads recipes in that order, so every public recipe is visited; the
        # viewer's favorites and ratings are probed only for a pool of POPULAR_POOL times the budget, not per row.
        pool = (
            select(Recipe.id, Recipe.favorite_count, Recipe.rating_count)
            .where(Recipe.is_public.is_(True), Recipe.author_id != viewer_id)
            .order_by(Recipe.favorite_count.desc(), Recipe.rating_count.desc(), Recipe.id.desc())
            .limit(self.budget.popular * POPULAR_POOL)
            .subquery("popular_pool")
        )
        return (
            select(pool.c.id.label("recipe_id"))
            .where(_unseen(viewer_id, pool.c.id))
            .order_by(pool.c.favorite_count.desc(), pool.c.rating_count.desc(), pool.c.id.desc())
            .limit(self.budget.popular)
            .subquery("popular")
        )

    async def candidates(self, viewer_id: uuid.UUID, cuisines: Sequence[str], tags: Sequence[str]) -> list[Candidate]:
        """Public recipes the viewer might like, with their signals; bounded by the budget (≤ 500 by default).

        Sources: what the people the viewer follows favorited or rated LIKED_STARS or more (counted per recipe),
        the best-rated recipes of each of `cuisines`, the newest recipes with each of `tags` (ids are UUIDv7:
        idx_recipe_tag_tag is read backwards), and the most favorited recipes overall (the cold start's
        fallback). Each source drops the viewer's own, favorited and rated recipes before its LIMIT, so none
        of the budget goes to recipes that could never be shown."""
        social = self._social_source(viewer_id)
        sources = [*self._taste_sources(viewer_id, cuisines, tags), self._popular_source(viewer_id)]
        ids = union(select(social.c.recipe_id), *(select(s.c.recipe_id) for s in sources)).subquery("candidate")
        stmt = (
            select(
                Recipe.id,
                Recipe.author_id,
                Recipe.cuisine,
                Recipe.rating_avg,
                Recipe.rating_count,
                Recipe.favorite_count,
                Recipe.view_count,
                func.coalesce(social.c.n, 0),
            )
            .join(ids, ids.c.recipe_id == Recipe.id)
            .outerjoin(social, social.c.recipe_id == Recipe.id)
            .where(Recipe.is_public.is_(True))
        )
        rows = (await self.session.execute(stmt)).all()
        tag_names = await self._tags([row[0] for row in rows])
        return [
            Candidate(
                recipe_id=row[0],
                author_id=row[1],
                cuisine=row[2],
                tags=tag_names.get(row[0], ()),
                rating_avg=None if row[3] is None else float(row[3]),
                rating_count=int(row[4]),
                favorites=int(row[5]),
                views=int(row[6]),
                followed_likers=int(row[7]),
            )
            for row in rows
        ]

    async def _tags(self, recipe_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, ...]]:
        """Tag names per recipe, one query for all of them (at most a few hundred ids)."""
        if not recipe_ids:
            return {}
        stmt = (
            select(RecipeTag.recipe_id, Tag.name)
            .join(Tag, Tag.id == RecipeTag.tag_id)
            .where(RecipeTag.recipe_id.in_(recipe_ids))
            .order_by(RecipeTag.recipe_id, Tag.name)
        )
        found: dict[uuid.UUID, list[str]] = defaultdict(list)
        for recipe_id, name in (await self.session.execute(stmt)).all():
            found[recipe_id].append(name)
        return {recipe_id: tuple(names) for recipe_id, names in found.items()}


# Rows per round trip when the whole catalogue is read for training.
_TRAINING_CHUNK = 20_000


class TrainingRepository:
    """Everything the model learns from, read in one snapshot: recipes, their tags and ingredients, every
    favorite, rating and follow. For the nightly training job and `potluck recommend`, never for a request."""

    def __init__(self, session: ReadSession) -> None:
        self.session = session

    async def _rows(self, stmt: Any) -> Any:
        result = await self.session.stream(stmt.execution_options(yield_per=_TRAINING_CHUNK))
        async for chunk in result.partitions(_TRAINING_CHUNK):
            for row in chunk:
                yield row

    async def snapshot(self) -> Snapshot:
        """The whole catalogue and all activity, indexed (dataset.Snapshot)."""
        builder = SnapshotBuilder()
        async for user_id, tastes in self._rows(select(User.id, User.tastes).order_by(User.id)):
            builder.user(user_id)
            builder.add_declared(user_id, tastes)
        recipes = select(Recipe.id, Recipe.author_id, Recipe.cuisine, Recipe.is_public).order_by(Recipe.id)
        async for recipe_id, author_id, cuisine, public in self._rows(recipes):
            builder.add_recipe(recipe_id, author_id, cuisine, bool(public))
        tags = select(RecipeTag.recipe_id, Tag.name).join(Tag, Tag.id == RecipeTag.tag_id)
        async for recipe_id, name in self._rows(tags):
            builder.add_feature("tag", recipe_id, name)
        async for recipe_id, ingredient_id in self._rows(
            select(RecipeIngredient.recipe_id, RecipeIngredient.ingredient_id)
        ):
            builder.add_feature("ingredient", recipe_id, ingredient_id.hex)
        async for user_id, recipe_id, at in self._rows(
            select(Favorite.user_id, Favorite.recipe_id, Favorite.created_at)
        ):
            builder.add_favorite(user_id, recipe_id, at)
        async for user_id, recipe_id, stars, at in self._rows(
            select(Rating.user_id, Rating.recipe_id, Rating.stars, Rating.updated_at)
        ):
            builder.add_rating(user_id, recipe_id, int(stars), at)
        async for follower, followee, at in self._rows(
            select(Follow.follower_id, Follow.followee_id, Follow.created_at)
        ):
            builder.add_follow(follower, followee, at)
        return builder.build()
