"""All SQL about recipes, their parts, ratings and favorites."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence, Set
from datetime import datetime
from typing import Any, Generic

from sqlalchemy import Select, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from potluck.db.base import utcnow
from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.session import AnySession, WriteSession
from potluck.kit.cursor import Cursor
from potluck.kit.ids import new_id
from potluck.recipe.models import (
    Favorite,
    Ingredient,
    Nutrition,
    Rating,
    Recipe,
    RecipeIngredient,
    RecipeTag,
    Step,
    Tag,
)
from potluck.recipe.schemas import IngredientLine, NutritionData, RecipeFilters


def _part_loaders(parts: Set[str]) -> list[LoaderOption]:
    """One extra query per requested part, whatever the page size: never N+1."""
    options: list[LoaderOption] = [joinedload(Recipe.author)]
    if "ingredients" in parts:
        options.append(selectinload(Recipe.ingredients).joinedload(RecipeIngredient.ingredient))
    if "steps" in parts:
        options.append(selectinload(Recipe.steps))
    if "tags" in parts:
        options.append(selectinload(Recipe.tags))
    if "nutrition" in parts:
        options.append(selectinload(Recipe.nutrition))
    return options


def visible_to(viewer_id: uuid.UUID | None) -> Any:
    """Public recipes, and the viewer's own private ones."""
    if viewer_id is None:
        return Recipe.is_public.is_(True)
    return or_(Recipe.is_public.is_(True), Recipe.author_id == viewer_id)


class RecipeRepository(Generic[AnySession]):
    def __init__(self, session: AnySession) -> None:
        self.session = session

    async def get(self, recipe_id: uuid.UUID, parts: Set[str], *, refresh: bool = False) -> Recipe | None:
        stmt = select(Recipe).where(Recipe.id == recipe_id).options(*_part_loaders(parts))
        if refresh:
            stmt = stmt.execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).unique().scalars().first()

    async def get_for_update(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID) -> Recipe | None:
        """The recipe row, locked until the transaction ends (a no-op lock on SQLite, which serializes writers)."""
        stmt = select(Recipe).where(Recipe.id == recipe_id).with_for_update()
        return (await self.session.execute(stmt)).scalars().first()

    def _list_query(self, filters: RecipeFilters, viewer_id: uuid.UUID | None) -> Select[Recipe]:
        stmt = select(Recipe).where(visible_to(viewer_id))
        if filters.author is not None:
            stmt = stmt.where(Recipe.author_id == filters.author)
        if filters.cuisine is not None:
            stmt = stmt.where(Recipe.cuisine == filters.cuisine.strip().lower())
        if filters.max_total_minutes is not None:
            stmt = stmt.where(Recipe.prep_minutes + Recipe.cook_minutes <= filters.max_total_minutes)
        if filters.tag is not None:
            stmt = stmt.where(
                exists()
                .where(RecipeTag.recipe_id == Recipe.id)
                .where(RecipeTag.tag_id == Tag.id)
                .where(Tag.name == filters.tag.strip().lower())
            )
        return stmt

    async def list_page(
        self,
        filters: RecipeFilters,
        viewer_id: uuid.UUID | None,
        cursor: Cursor | None,
        limit: int,
        parts: Set[str],
    ) -> Sequence[Recipe]:
        """Newest first, keyset-paginated over (created_at, id)."""
        stmt = self._list_query(filters, viewer_id)
        if cursor is not None:
            stmt = stmt.where(tuple_(Recipe.created_at, Recipe.id) < tuple_(cursor.created_at, cursor.id))
        stmt = stmt.order_by(Recipe.created_at.desc(), Recipe.id.desc()).limit(limit).options(*_part_loaders(parts))
        return (await self.session.execute(stmt)).unique().scalars().all()

    async def list_offset(
        self, filters: RecipeFilters, viewer_id: uuid.UUID | None, offset: int, limit: int
    ) -> Sequence[Recipe]:
        """OFFSET pagination: kept only as the baseline the pagination benchmark compares against."""
        stmt = self._list_query(filters, viewer_id).order_by(Recipe.created_at.desc(), Recipe.id.desc())
        stmt = stmt.offset(offset).limit(limit).options(*_part_loaders(set()))
        return (await self.session.execute(stmt)).unique().scalars().all()

    # --- writes -------------------------------------------------------------------------------------------

    async def _ids_by_name(
        self: RecipeRepository[WriteSession], model: type[Ingredient] | type[Tag], names: Iterable[str]
    ) -> dict[str, uuid.UUID]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        # Insert the missing names, tolerating concurrent writers that insert the same ones.
        await self.session.execute(
            dialect_insert(self.session, model.__table__)
            .values([{"id": new_id(), "name": n} for n in wanted])
            .on_conflict_do_nothing(index_elements=["name"])
        )
        rows = await self.session.execute(select(model.name, model.id).where(model.name.in_(wanted)))
        return {name: id_ for name, id_ in rows.all()}  # noqa: C416 (typed unpacking)

    async def add(self: RecipeRepository[WriteSession], recipe: Recipe) -> None:
        self.session.add(recipe)
        await self.session.flush()

    async def replace_ingredients(
        self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, lines: Sequence[IngredientLine]
    ) -> None:
        await self.session.execute(delete(RecipeIngredient).where(RecipeIngredient.recipe_id == recipe_id))
        if not lines:
            return
        ids = await self._ids_by_name(Ingredient, (line.name for line in lines))
        await self.session.execute(
            insert(RecipeIngredient),
            [
                {
                    "recipe_id": recipe_id,
                    "position": position,
                    "ingredient_id": ids[line.name],
                    "quantity": line.quantity,
                    "unit": line.unit,
                    "note": line.note,
                }
                for position, line in enumerate(lines)
            ],
        )

    async def replace_steps(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, steps: Sequence[str]) -> None:
        await self.session.execute(delete(Step).where(Step.recipe_id == recipe_id))
        if steps:
            await self.session.execute(
                insert(Step),
                [{"recipe_id": recipe_id, "position": i, "text": t} for i, t in enumerate(steps)],
            )

    async def replace_tags(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, tags: Sequence[str]) -> None:
        await self.session.execute(delete(RecipeTag).where(RecipeTag.recipe_id == recipe_id))
        if tags:
            ids = await self._ids_by_name(Tag, tags)
            await self.session.execute(insert(RecipeTag), [{"recipe_id": recipe_id, "tag_id": ids[t]} for t in tags])

    async def replace_nutrition(
        self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, nutrition: NutritionData | None
    ) -> None:
        await self.session.execute(delete(Nutrition).where(Nutrition.recipe_id == recipe_id))
        if nutrition is not None:
            await self.session.execute(insert(Nutrition).values(recipe_id=recipe_id, **nutrition.model_dump()))

    async def delete(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID) -> None:
        await self.session.execute(delete(Recipe).where(Recipe.id == recipe_id))

    async def bump_version(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(Recipe)
            .where(Recipe.id == recipe_id)
            .values(version=Recipe.version + 1, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )

    async def upsert_rating(
        self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, user_id: uuid.UUID, stars: int, review: str | None
    ) -> Rating:
        now = utcnow()
        stmt = dialect_insert(self.session, Rating.__table__).values(
            recipe_id=recipe_id, user_id=user_id, stars=stars, review=review, created_at=now, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id", "recipe_id"],
            set_={"stars": stmt.excluded.stars, "review": stmt.excluded.review, "updated_at": now},
        )
        await self.session.execute(stmt)
        rating = (
            await self.session.execute(
                select(Rating)
                .where(Rating.recipe_id == recipe_id, Rating.user_id == user_id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        return rating

    async def delete_rating(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(Rating).where(Rating.recipe_id == recipe_id, Rating.user_id == user_id)
        )
        return rowcount(result) > 0

    async def recompute_rating(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID) -> tuple[float | None, int]:
        """Average and count from the rating rows themselves (the caller holds the recipe's row lock)."""
        avg, count = (
            await self.session.execute(
                select(func.avg(Rating.stars), func.count()).where(Rating.recipe_id == recipe_id)
            )
        ).one()
        average = round(float(avg), 4) if avg is not None else None
        await self.bump_version(recipe_id, rating_avg=average, rating_count=int(count))
        return average, int(count)

    async def add_favorite(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            dialect_insert(self.session, Favorite.__table__)
            .values(recipe_id=recipe_id, user_id=user_id, created_at=utcnow())
            .on_conflict_do_nothing()
        )
        return rowcount(result) > 0

    async def remove_favorite(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(Favorite).where(Favorite.recipe_id == recipe_id, Favorite.user_id == user_id)
        )
        return rowcount(result) > 0

    async def recompute_favorites(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID) -> None:
        count = select(func.count()).select_from(Favorite).where(Favorite.recipe_id == recipe_id)
        await self.bump_version(recipe_id, favorite_count=count.scalar_subquery())

    async def list_favorites(
        self, user_id: uuid.UUID, cursor: Cursor | None, limit: int, parts: Set[str]
    ) -> list[tuple[Recipe, datetime]]:
        """The user's favorites they can still see, most recently favorited first."""
        stmt = (
            select(Recipe, Favorite.created_at)
            .join(Favorite, Favorite.recipe_id == Recipe.id)
            .where(Favorite.user_id == user_id, visible_to(user_id))
            .order_by(Favorite.created_at.desc(), Favorite.recipe_id.desc())
            .limit(limit)
            .options(*_part_loaders(parts))
        )
        if cursor is not None:
            stmt = stmt.where(tuple_(Favorite.created_at, Favorite.recipe_id) < tuple_(cursor.created_at, cursor.id))
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).unique().all()]
