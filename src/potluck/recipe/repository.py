"""All SQL about recipes, their parts, ratings and favorites."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence, Set
from datetime import datetime
from typing import Any, Generic, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    Uuid,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.interfaces import LoaderOption
from sqlalchemy.types import NullType

from potluck.db.base import utcnow
from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.prepared import Prepared
from potluck.db.session import AnySession, Rows, WriteSession
from potluck.kit.cursor import Cursor
from potluck.kit.ids import new_id
from potluck.recipe.document import NUTRITION_FIELDS, RecipeRecord
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
from potluck.user.models import User


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


# --- documents: one query per page on PostgreSQL, two on SQLite, whatever the parts ---------------------------


# Documents by id, one statement per (parts, PostgreSQL or not, one id or many), built once and prepared
# (db/prepared.py): a load neither rebuilds the select nor walks it for SQLAlchemy's cache key, and on PostgreSQL
# it runs on the driver (both ~13% of an uncached read's CPU, and SQLAlchemy's execution ~150 µs more;
# docs/benchmarks.md).
_DOCUMENTS: dict[tuple[frozenset[str], bool, bool], Prepared] = {}


def _document_columns(parts: Set[str]) -> list[Any]:
    columns: list[Any] = [
        Recipe.id,
        Recipe.title,
        Recipe.description,
        Recipe.cuisine,
        Recipe.prep_minutes,
        Recipe.cook_minutes,
        Recipe.servings,
        Recipe.difficulty,
        Recipe.is_public,
        Recipe.image_key,
        Recipe.rating_avg,
        Recipe.rating_count,
        Recipe.view_count,
        Recipe.favorite_count,
        Recipe.created_at,
        Recipe.updated_at,
        Recipe.version,
        Recipe.author_id,
        User.username.label("author_username"),
        User.display_name.label("author_display_name"),
    ]
    if "nutrition" in parts:
        columns.append(Nutrition.recipe_id.label("nutrition_recipe_id"))
        columns += [getattr(Nutrition, name).label(f"nutrition_{name}") for name in NUTRITION_FIELDS]
    return columns


def _aggregated_parts(parts: Set[str]) -> list[Any]:
    """PostgreSQL: each requested part as one ordered array per recipe row (correlated, index-driven)."""
    columns: list[Any] = []
    if "ingredients" in parts:
        line = tuple_(Ingredient.name, RecipeIngredient.quantity, RecipeIngredient.unit, RecipeIngredient.note)
        columns.append(
            select(func.array_agg(aggregate_order_by(line, RecipeIngredient.position), type_=NullType()))
            .select_from(RecipeIngredient)
            .join(Ingredient, Ingredient.id == RecipeIngredient.ingredient_id)
            .where(RecipeIngredient.recipe_id == Recipe.id)
            .scalar_subquery()
            .label("part_ingredients")
        )
    if "steps" in parts:
        columns.append(
            select(func.array_agg(aggregate_order_by(Step.text, Step.position), type_=NullType()))
            .where(Step.recipe_id == Recipe.id)
            .scalar_subquery()
            .label("part_steps")
        )
    if "tags" in parts:
        columns.append(
            select(func.array_agg(aggregate_order_by(Tag.name, Tag.name), type_=NullType()))
            .select_from(RecipeTag)
            .join(Tag, Tag.id == RecipeTag.tag_id)
            .where(RecipeTag.recipe_id == Recipe.id)
            .scalar_subquery()
            .label("part_tags")
        )
    return columns


_FLAT = ("recipe_id", "kind", "pos", "text", "quantity", "unit", "note")


def _flat(*columns: Any) -> Select[Any]:
    return select(*(column.label(name) for column, name in zip(columns, _FLAT, strict=True)))


def _flat_parts(ids: Sequence[uuid.UUID], parts: Set[str]) -> Select[Any] | None:
    """SQLite: every requested part of every recipe in `ids` as tagged rows of one UNION ALL, in document order."""
    selects: list[Any] = []
    if "ingredients" in parts:
        ri = RecipeIngredient
        selects.append(
            _flat(ri.recipe_id, literal(0), ri.position, Ingredient.name, ri.quantity, ri.unit, ri.note)
            .join(Ingredient, Ingredient.id == ri.ingredient_id)
            .where(ri.recipe_id.in_(ids))
        )
    if "steps" in parts:
        selects.append(
            _flat(Step.recipe_id, literal(1), Step.position, Step.text, null(), null(), null()).where(
                Step.recipe_id.in_(ids)
            )
        )
    if "tags" in parts:
        selects.append(
            _flat(RecipeTag.recipe_id, literal(2), literal(0), Tag.name, null(), null(), null())
            .join(Tag, Tag.id == RecipeTag.tag_id)
            .where(RecipeTag.recipe_id.in_(ids))
        )
    if not selects:
        return None
    flat = union_all(*selects).subquery()
    return select(flat).order_by(flat.c.recipe_id, flat.c.kind, flat.c.pos, flat.c.text)


def _newest_first(stmt: Select[Any], cursor: Cursor | None, limit: int) -> Select[Any]:
    """A list's page: newest first, keyset-paginated over (created_at, id) from `cursor`."""
    if cursor is not None:
        stmt = stmt.where(tuple_(Recipe.created_at, Recipe.id) < tuple_(cursor.created_at, cursor.id))
    return stmt.order_by(Recipe.created_at.desc(), Recipe.id.desc()).limit(limit)


class RecipeReads:
    """The column selects about recipes: documents by id, list pages' ids. They need rows only (`Rows`): a
    ReadRows without an ORM session (Database.read_rows), or any session through RecipeRepository."""

    def __init__(self, session: Rows) -> None:
        self.session = session

    def _documents_query(self, parts: Set[str]) -> Select[Any]:
        columns = _document_columns(parts)
        if self._aggregates:
            columns += _aggregated_parts(parts)
        stmt = select(*columns).select_from(Recipe).join(User, User.id == Recipe.author_id)
        if "nutrition" in parts:
            stmt = stmt.outerjoin(Nutrition, Nutrition.recipe_id == Recipe.id)
        return stmt

    @property
    def _aggregates(self) -> bool:
        return self.session.dialect_name == "postgresql"

    async def _records(
        self, stmt: Select[Any] | Prepared, parts: Set[str], params: dict[str, Any] | None = None
    ) -> list[RecipeRecord]:
        rows = await self.session.rows(stmt, params)
        if self._aggregates:
            return [
                RecipeRecord(
                    row,
                    [tuple(line) for line in row.part_ingredients or ()] if "ingredients" in parts else [],
                    list(row.part_steps or ()) if "steps" in parts else [],
                    list(row.part_tags or ()) if "tags" in parts else [],
                )
                for row in rows
            ]
        records = [RecipeRecord(row) for row in rows]
        flat = _flat_parts([r.id for r in records], parts) if records else None
        if flat is not None:
            by_id = {record.id: record for record in records}
            for part in await self.session.rows(flat):
                record = by_id[part.recipe_id]
                if part.kind == 0:
                    record.ingredients.append((part.text, part.quantity, part.unit, part.note))
                elif part.kind == 1:
                    record.steps.append(part.text)
                else:
                    record.tags.append(part.text)
        return records

    async def documents(self, ids: Sequence[uuid.UUID], parts: Set[str]) -> list[RecipeRecord]:
        """The records of the recipes in `ids` that exist, in no particular order (visibility is the caller's)."""
        if not ids:
            return []
        postgres = self._aggregates
        if len(ids) > 1 and not postgres:
            return await self._records(self._documents_query(parts).where(Recipe.id.in_(ids)), parts)
        # One prepared statement per part set for any number of ids on PostgreSQL (= ANY of an array), and for one
        # id anywhere: the cache's fills, run on the driver itself where they can be (db/prepared.py).
        many = len(ids) > 1
        key = (frozenset(parts), postgres, many)
        stmt = _DOCUMENTS.get(key)
        if stmt is None:
            where = (
                Recipe.id == any_(bindparam("recipe_ids", type_=ARRAY(Uuid())))
                if many
                else Recipe.id == bindparam("recipe_id")
            )
            stmt = _DOCUMENTS[key] = Prepared(self._documents_query(parts).where(where))
        params = {"recipe_ids": list(ids)} if many else {"recipe_id": ids[0]}
        return await self._records(stmt, parts, params)

    def _list_query(
        self, filters: RecipeFilters, viewer_id: uuid.UUID | None, base: Select[Any] | None = None
    ) -> Select[Any]:
        stmt = (select(Recipe) if base is None else base).where(visible_to(viewer_id))
        if filters.author is not None:
            stmt = stmt.where(Recipe.author_id == filters.author)
        if (cuisine := filters.cuisine_compared) is not None:
            stmt = stmt.where(Recipe.cuisine == cuisine)
        if filters.max_total_minutes is not None:
            stmt = stmt.where(Recipe.prep_minutes + Recipe.cook_minutes <= filters.max_total_minutes)
        if (tag := filters.tag_compared) is not None:
            stmt = stmt.where(
                exists()
                .where(RecipeTag.recipe_id == Recipe.id)
                .where(RecipeTag.tag_id == Tag.id)
                .where(Tag.name == tag)
            )
        return stmt

    async def list_page(
        self,
        filters: RecipeFilters,
        viewer_id: uuid.UUID | None,
        cursor: Cursor | None,
        limit: int,
        parts: Set[str],
    ) -> list[RecipeRecord]:
        """Whole records, newest first, keyset-paginated over (created_at, id): one statement on PostgreSQL, two on
        SQLite (bench/pagination.py's keyset side; the API reads ids, `list_ids`, and documents from the cache)."""
        stmt = _newest_first(self._list_query(filters, viewer_id, self._documents_query(parts)), cursor, limit)
        return await self._records(stmt, parts)

    async def list_ids(
        self,
        filters: RecipeFilters,
        limit: int,
        *,
        viewer_id: uuid.UUID | None = None,
        cursor: Cursor | None = None,
    ) -> list[tuple[uuid.UUID, datetime]]:
        """The ids and creation times of a page of a list as `viewer_id` sees it, newest first, keyset-paginated
        over (created_at, id): the documents come from the recipe cache (RecipeService.visible)."""
        ids = self._list_query(filters, viewer_id, cast("Select[Any]", select(Recipe.id, Recipe.created_at)))
        return [(row.id, row.created_at) for row in await self.session.rows(_newest_first(ids, cursor, limit))]

    async def has_private_recipes(self, author_id: uuid.UUID) -> bool:
        """Whether this user's lists and searches could differ from the public ones (idx_recipes_author_created)."""
        stmt = select(exists().where(Recipe.author_id == author_id, Recipe.is_public.is_(False)))
        return bool((await self.session.rows(stmt))[0][0])


class RecipeRepository(RecipeReads, Generic[AnySession]):
    session: AnySession

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

    async def list_offset(
        self, filters: RecipeFilters, viewer_id: uuid.UUID | None, offset: int, limit: int
    ) -> Sequence[Recipe]:
        """OFFSET pagination: kept only as the baseline the pagination benchmark compares against."""
        stmt = self._list_query(filters, viewer_id).order_by(Recipe.created_at.desc(), Recipe.id.desc())
        stmt = stmt.offset(offset).limit(limit).options(*_part_loaders(set()))
        rows: Sequence[Recipe] = (await self.session.execute(stmt)).unique().scalars().all()
        return rows

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

    async def tag_names(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID) -> list[str]:
        """The names of the recipe's tags, as stored (lower-cased)."""
        stmt = select(Tag.name).join(RecipeTag, RecipeTag.tag_id == Tag.id).where(RecipeTag.recipe_id == recipe_id)
        return list((await self.session.execute(stmt)).scalars())

    async def search_lexemes(self: RecipeRepository[WriteSession], recipe_id: uuid.UUID) -> list[str] | None:
        """The lexemes of the recipe's search vector as this transaction sees it (its triggers keep it current), or
        None on SQLite, which has none (search/scope.py)."""
        if self.session.dialect_name != "postgresql":
            return None
        vector: ColumnElement[Any] = literal_column("recipe.search_vector")
        stmt = (
            select(func.tsvector_to_array(vector, type_=ARRAY(Text))).select_from(Recipe).where(Recipe.id == recipe_id)
        )
        return list((await self.session.execute(stmt)).scalar() or ())

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

    async def ids_touched_by(self, user_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """(recipes the user wrote, other authors' recipes the user rated or favorited), in id order."""
        authored = select(Recipe.id).where(Recipe.author_id == user_id).order_by(Recipe.id)
        rated = select(Rating.recipe_id).where(Rating.user_id == user_id)
        favorited = select(Favorite.recipe_id).where(Favorite.user_id == user_id)
        others = (
            select(Recipe.id)
            .where(Recipe.id.in_(rated.union(favorited).scalar_subquery()), Recipe.author_id != user_id)
            .order_by(Recipe.id)
        )
        return (
            list((await self.session.execute(authored)).scalars().all()),
            list((await self.session.execute(others)).scalars().all()),
        )

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
    ) -> list[tuple[RecipeRecord, datetime]]:
        """The user's favorites they can still see, most recently favorited first."""
        stmt = (
            self._documents_query(parts)
            .add_columns(Favorite.created_at.label("favorited_at"))
            .join(Favorite, Favorite.recipe_id == Recipe.id)
            .where(Favorite.user_id == user_id, visible_to(user_id))
            .order_by(Favorite.created_at.desc(), Favorite.recipe_id.desc())
            .limit(limit)
        )
        if cursor is not None:
            stmt = stmt.where(tuple_(Favorite.created_at, Favorite.recipe_id) < tuple_(cursor.created_at, cursor.id))
        return [(record, record.row.favorited_at) for record in await self._records(stmt, parts)]
