"""All trending SQL: public recipes with activity in a time window, and their counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, union

from potluck.db.session import ReadSession
from potluck.recipe.models import Favorite, Rating, Recipe
from potluck.trending.scoring import Candidate


class TrendingRepository:
    def __init__(self, session: ReadSession) -> None:
        self.session = session

    async def candidates(self, since: datetime) -> list[Candidate]:
        """Public recipes favorited, rated or published since `since`, with the favorites and ratings since then.

        The windows read idx_favorite_created and idx_rating_created (migration 0002)."""
        favorites = (
            select(Favorite.recipe_id, func.count().label("n"))
            .where(Favorite.created_at >= since)
            .group_by(Favorite.recipe_id)
            .subquery("favorites")
        )
        ratings = (
            select(Rating.recipe_id, func.count().label("n"), func.avg(Rating.stars).label("avg"))
            .where(Rating.created_at >= since)
            .group_by(Rating.recipe_id)
            .subquery("ratings")
        )
        ids = union(
            select(favorites.c.recipe_id),
            select(ratings.c.recipe_id),
            select(Recipe.id.label("recipe_id")).where(Recipe.created_at >= since),
        ).subquery("candidate")
        stmt = (
            select(
                Recipe.id,
                Recipe.created_at,
                Recipe.view_count,
                func.coalesce(favorites.c.n, 0),
                func.coalesce(ratings.c.n, 0),
                ratings.c.avg,
            )
            .join(ids, ids.c.recipe_id == Recipe.id)
            .outerjoin(favorites, favorites.c.recipe_id == Recipe.id)
            .outerjoin(ratings, ratings.c.recipe_id == Recipe.id)
            .where(Recipe.is_public.is_(True))
        )
        rows = (await self.session.execute(stmt)).all()
        return [
            Candidate(
                recipe_id=row[0],
                created_at=row[1],
                views=int(row[2]),
                favorites=int(row[3]),
                ratings=int(row[4]),
                rating_avg=None if row[5] is None else float(row[5]),
            )
            for row in rows
        ]
