"""Recipes: create, read, update, delete, list; ratings and favorites. Never commits."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from potluck.cache.cache import Bump, Cache, Loaded, not_stored
from potluck.cache.families import RECIPE_DETAIL, RECIPE_LIST
from potluck.cache.keys import (
    SEARCH_GENERATION_KEY,
    list_key,
    recipe_key,
    recommend_key,
    user_key,
)
from potluck.cache.surrogate import RECIPE_LIST_KEY
from potluck.db.consistency import ConsistencyToken
from potluck.db.engine import Database
from potluck.db.session import ReadSession, WriteSession
from potluck.errors import ForbiddenError, NotFoundError, PreconditionFailedError
from potluck.events.outbox import Outbox
from potluck.events.topics import (
    RATING_CREATED,
    RECIPE_CREATED,
    RECIPE_DELETED,
    RECIPE_IMAGE_REPLACED,
    RECIPE_UPDATED,
)
from potluck.kit.cursor import Cursor, encode_cursor, next_page, with_page
from potluck.kit.etag import if_match_satisfied
from potluck.kit.media_keys import default_image_url, image_urls
from potluck.recipe.document import build_document
from potluck.recipe.meta import RecipeMeta
from potluck.recipe.models import Recipe
from potluck.recipe.relevance import (
    VECTOR_FIELDS,
    list_generations,
    list_scope,
    page_is_cached,
    private_recipes_scope,
    search_scope_keys,
    update_affects_lists,
    update_affects_search,
)
from potluck.recipe.repository import RecipeReads, RecipeRepository
from potluck.recipe.schemas import (
    HEAVY_PARTS,
    AuthorRead,
    IngredientRead,
    NutritionData,
    RatingRead,
    RatingWrite,
    RecipeCreate,
    RecipeFilters,
    RecipeRead,
    RecipeUpdate,
)

_SCALAR_FIELDS = (
    "title",
    "description",
    "cuisine",
    "prep_minutes",
    "cook_minutes",
    "servings",
    "difficulty",
    "is_public",
)


@dataclass(frozen=True, slots=True)
class CachedRecipe:
    """A recipe's full representation as served bytes, with the metadata to authorize it without parsing."""

    payload: bytes
    meta: RecipeMeta
    recipe_id: uuid.UUID

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.payload)
        return doc

    @classmethod
    def visible(cls, recipe_id: uuid.UUID, loaded: Loaded, viewer_id: uuid.UUID | None) -> CachedRecipe | None:
        """The recipe a cache entry holds, if it exists and `viewer_id` may see it."""
        if loaded.payload is None:
            return None
        cached = cls(loaded.payload, RecipeMeta.unpack(loaded.meta), recipe_id)
        return cached if cached.meta.visible_to(viewer_id) else None


def _ids_page(
    rows: Sequence[tuple[uuid.UUID, datetime]], limit: int, next_number: int | None
) -> tuple[list[uuid.UUID], str | None]:
    """A page of `list_ids` rows read with `limit + 1`: its ids, and the cursor after it if there is more (naming
    page `next_number`)."""
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][1], page[-1][0], next_number) if len(rows) > limit and page else None
    return [recipe_id for recipe_id, _ in page], next_cursor


class RecipeService:
    def __init__(self, database: Database, cache: Cache, media_base_url: str, outbox: Outbox | None = None) -> None:
        self.database = database
        self.cache = cache
        self.media_base_url = media_base_url
        self.outbox = outbox or Outbox(enabled=False)

    def document(self, recipe: Recipe, parts: Set[str]) -> dict[str, Any]:
        """The API representation of a loaded recipe, as JSON-ready data, with the heavy parts in `parts`."""
        read = RecipeRead(
            id=recipe.id,
            title=recipe.title,
            description=recipe.description,
            cuisine=recipe.cuisine,
            prep_minutes=recipe.prep_minutes,
            cook_minutes=recipe.cook_minutes,
            total_minutes=recipe.total_minutes,
            servings=recipe.servings,
            difficulty=recipe.difficulty,
            is_public=recipe.is_public,
            image_url=default_image_url(self.media_base_url, recipe.image_key),
            images=image_urls(self.media_base_url, recipe.image_key),
            rating=recipe.rating_avg,
            rating_count=recipe.rating_count,
            view_count=recipe.view_count,
            favorite_count=recipe.favorite_count,
            author=AuthorRead(
                id=recipe.author.id, username=recipe.author.username, display_name=recipe.author.display_name
            ),
            created_at=recipe.created_at,
            updated_at=recipe.updated_at,
            version=recipe.version,
        )
        doc = read.model_dump(mode="json", exclude=set(HEAVY_PARTS))
        if "ingredients" in parts:
            doc["ingredients"] = [
                IngredientRead(name=ri.ingredient.name, quantity=ri.quantity, unit=ri.unit, note=ri.note).model_dump(
                    mode="json"
                )
                for ri in recipe.ingredients
            ]
        if "steps" in parts:
            doc["steps"] = [step.text for step in recipe.steps]
        if "tags" in parts:
            doc["tags"] = [tag.name for tag in recipe.tags]
        if "nutrition" in parts:
            n = recipe.nutrition
            doc["nutrition"] = (
                None if n is None else NutritionData.model_validate(n, from_attributes=True).model_dump(mode="json")
            )
        return doc

    async def get(self, recipe_id: uuid.UUID, viewer_id: uuid.UUID | None) -> CachedRecipe:
        """The recipe's full document through the cache; 404 when it is missing or private to someone else.

        The cached entry is the same for every viewer; who may see it is decided here, on every read.
        """
        loaded = await self.cache.get_or_fill(
            RECIPE_DETAIL,
            recipe_key(recipe_id),
            lambda: self._load(recipe_id),
            unstored=lambda: self._load(recipe_id, primary=False),
        )
        cached = CachedRecipe.visible(recipe_id, loaded, viewer_id)
        if cached is None:
            raise NotFoundError("no such recipe")
        return cached

    async def get_cached(
        self, recipe_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID | None
    ) -> dict[uuid.UUID, CachedRecipe | None]:
        """What the cache holds for `recipe_ids` (one multi-get over both tiers): a CachedRecipe when visible to
        `viewer_id`, None when missing or invisible; ids the cache does not hold are left out (ask `get`)."""
        keys = {recipe_key(recipe_id): recipe_id for recipe_id in recipe_ids}
        found: dict[uuid.UUID, CachedRecipe | None] = {}
        for key, loaded in (await self.cache.get_many(RECIPE_DETAIL, list(keys))).items():
            found[keys[key]] = CachedRecipe.visible(keys[key], loaded, viewer_id)
        return found

    async def get_hit(self, recipe_id: uuid.UUID, viewer_id: uuid.UUID | None) -> CachedRecipe | None:
        """The recipe if either cache tier holds it and `viewer_id` may see it; None otherwise (ask `get`, which
        loads a miss and answers 404 for what this viewer may not see). At most one store GET, never a lease."""
        loaded = await self.cache.get_hit(RECIPE_DETAIL, recipe_key(recipe_id), lambda: self._load(recipe_id))
        return None if loaded is None else CachedRecipe.visible(recipe_id, loaded, viewer_id)

    async def fill_missing(
        self, recipe_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID | None
    ) -> dict[uuid.UUID, CachedRecipe | None]:
        """`get` for many recipes `get_cached` did not find, together: their documents in one statement (from the
        primary; a replica's read without a leader) and stored (`Cache.fill_many`). Every id is in the result: a
        CachedRecipe when it exists and `viewer_id` may see it, else None."""
        by_key = {recipe_key(recipe_id): recipe_id for recipe_id in recipe_ids}

        async def load(keys: Sequence[str], primary: bool = True) -> dict[str, Loaded]:
            return {recipe_key(i): loaded for i, loaded in (await self._load_many([by_key[k] for k in keys], primary))}

        filled = await self.cache.fill_many(
            RECIPE_DETAIL, list(by_key), load, unstored=functools.partial(load, primary=False)
        )
        return {by_key[key]: CachedRecipe.visible(by_key[key], loaded, viewer_id) for key, loaded in filled.items()}

    async def _load(self, recipe_id: uuid.UUID, *, primary: bool = True) -> Loaded:
        for _, loaded in await self._load_many([recipe_id], primary):
            return loaded
        return Loaded(None)

    async def _load_many(self, recipe_ids: Sequence[uuid.UUID], primary: bool) -> list[tuple[uuid.UUID, Loaded]]:
        """The cache entries of the recipes of `recipe_ids` that exist, in one statement.

        Fills read the primary: a lagging replica could hand a fill the version a writer just replaced."""
        async with self.database.read_rows(primary=primary) as rows:
            records = await RecipeReads(rows).documents(recipe_ids, HEAVY_PARTS)
        entries = []
        for record in records:
            row = record.row
            doc = build_document(record, HEAVY_PARTS, self.media_base_url)
            meta = RecipeMeta(row.is_public, row.author_id, row.version).pack()
            entries.append((row.id, Loaded(orjson.dumps(doc), meta)))
        return entries

    def _invalidate(
        self,
        session: WriteSession,
        recipe_id: uuid.UUID,
        *,
        author_id: uuid.UUID | None = None,
        search: bool = False,
        search_event: int | None = None,
        search_scopes: Sequence[str] = (),
        reader_id: uuid.UUID | None = None,
        lists: Sequence[str] = (),
    ) -> None:
        keys = [recipe_key(recipe_id), RECIPE_LIST_KEY]  # the list key: edge pages only (cache/surrogate.py)
        if author_id is not None:
            keys.append(user_key(author_id))  # the author's profile counts recipes
        if reader_id is not None:
            keys.append(recommend_key(reader_id))  # their favorites and ratings are what recommendations read
        bumps: list[Bump] = []
        if search:
            # Cached searches hold ids; which ids match changes with a recipe's text, filters or visibility
            # (recipe/relevance.py, docs/search.md): `gen:search`, then the generations of the lexemes of its
            # search vector before and after (the exact matches', search/scope.py). Once per event, all under one
            # marker: the outbox's repeat finds them done.
            bumps += [(key, search_event) for key in [SEARCH_GENERATION_KEY, *search_scopes]]
        # Cached list pages hold ids: the scopes of the lists the recipe may enter or leave (recipe/relevance.py).
        bumps += [(key, None) for key in lists]
        # Search pages carry the generation's key at the edge (cache/surrogate.py): purged after the bump.
        edge_also = [SEARCH_GENERATION_KEY] if search else []
        self.cache.invalidate_after_commit(session, *keys, edge_also=edge_also, bumps=bumps)

    async def list_page(
        self,
        filters: RecipeFilters,
        viewer_id: uuid.UUID | None,
        cursor: Cursor | None,
        limit: int,
        parts: Set[str],
        *,
        min_lsn: ConsistencyToken | None = None,
    ) -> tuple[list[CachedRecipe], str | None]:
        """A page of recipes (the route projects them: cards, `parts`, `fields`), newest first: its ids (a page
        without `parts` from the list cache, else one keyset statement on a replica that has replayed `min_lsn`),
        each recipe through the recipe cache (`visible`). No read session is opened for a page served from the
        cache whole."""
        if not parts:
            cached = await self._cached_page(filters, cursor, limit, viewer_id)
            if cached is not None:
                return cached
        async with self.database.read_rows(min_lsn=min_lsn) as read:
            rows = await RecipeReads(read).list_ids(filters, limit + 1, viewer_id=viewer_id, cursor=cursor)
        ids, next_cursor = _ids_page(rows, limit, next_page(cursor))
        return await self.visible(ids, viewer_id), next_cursor

    async def visible(self, ids: Sequence[uuid.UUID], viewer_id: uuid.UUID | None) -> list[CachedRecipe]:
        """The recipes of `ids` that `viewer_id` may see, in order, from recipe:{id} (one multi-get, visibility
        checked per item); the ones neither tier holds in one statement, stored there (`fill_missing`: the next
        page that shows them reads them from the cache). A recipe gone or no longer visible since its id was read
        is skipped (a page is then shorter; its cursor still follows the last id)."""
        found = await self.get_cached(ids, viewer_id)
        if missing := [recipe_id for recipe_id in ids if recipe_id not in found]:
            found.update(await self.fill_missing(missing, viewer_id))
        return [hit for recipe_id in ids if (hit := found.get(recipe_id)) is not None]

    async def _cached_page(
        self, filters: RecipeFilters, cursor: Cursor | None, limit: int, viewer_id: uuid.UUID | None
    ) -> tuple[list[CachedRecipe], str | None] | None:
        """A page of recipes as anyone sees it (the first, or the one after `cursor`: the order, newest first, never
        changes): its ids from the list cache, under the generation of the list's scope (recipe/relevance.py:
        every write that moves a recipe into or out of the list bumps it), each one from recipe:{id} (`visible`,
        checked per item as for an anonymous viewer). A signed-in viewer gets it when they have no private recipe
        (their page is then the public one; whether they have one is cached under their author scope, which their
        every visibility change bumps). None when a generation cannot be read (Redis down) or the viewer's page is
        their own, or the page is deeper than the cache keeps (LIST_CACHE_PAGES): the caller queries the page."""
        if cursor is not None and not page_is_cached(cursor.page):
            return None
        scope = list_scope(filters.author, filters.tag_compared, filters.cuisine_compared, filters.max_total_minutes)
        private_scope = None if viewer_id is None else private_recipes_scope(viewer_id)
        generations = await self.cache.generations([scope] if private_scope is None else [scope, private_scope])
        if generations is None:
            return None
        query: dict[str, object] = {"filters": filters.model_dump(mode="json"), "limit": limit}
        if cursor is not None:
            query["after"] = encode_cursor(cursor.created_at, cursor.id)
        key = list_key(scope, generations[0], query)
        if viewer_id is not None and await self.viewer_has_private(viewer_id, generations[1]):
            return None
        # Without a leader nothing is filled: the caller's replica session queries the page.
        fill = functools.partial(self._fill_list, filters, cursor, limit)
        loaded = await self.cache.get_or_fill(RECIPE_LIST, key, fill, unstored=not_stored)
        if loaded.payload is None:
            return None
        data = orjson.loads(loaded.payload)
        # The cached cursor names a position only (the key's too): the number of the page it opens is this walk's.
        after = with_page(data["next"], next_page(cursor)) if data["next"] else None
        # Gone or private since the page was cached: skipped (the writes that do that also bump the generation).
        return await self.visible([uuid.UUID(hex=i) for i in data["ids"]], None), after

    async def viewer_has_private(self, viewer_id: uuid.UUID, generation: int) -> bool:
        """Whether `viewer_id` has a private recipe (their lists and searches are then their own, not the shared
        pages), cached under `generation`, the one of their author scope (`private_recipes_scope`): every creation,
        deletion and visibility change of their recipes bumps it. One entry answers lists and searches."""
        key = list_key(private_recipes_scope(viewer_id), generation, {"private_recipes_of": str(viewer_id)})

        async def load(primary: bool = True) -> Loaded:
            async with self.database.read_rows(primary=primary) as read:
                found = await RecipeReads(read).has_private_recipes(viewer_id)
            return Loaded(b"1" if found else b"0")

        loaded = await self.cache.get_or_fill(RECIPE_LIST, key, load, unstored=lambda: load(primary=False))
        return loaded.payload != b"0"

    async def _fill_list(self, filters: RecipeFilters, cursor: Cursor | None, limit: int) -> Loaded:
        # Fills read the primary: a lagging replica could store a pre-write page under the post-write generation.
        async with self.database.read_rows(primary=True) as read:
            rows = await RecipeReads(read).list_ids(filters, limit + 1, cursor=cursor)
        ids, next_cursor = _ids_page(rows, limit, None)  # a position: the reader's walk numbers it
        return Loaded(orjson.dumps({"ids": [i.hex for i in ids], "next": next_cursor}))

    async def create(self, session: WriteSession, author_id: uuid.UUID, data: RecipeCreate) -> dict[str, Any]:
        repo = RecipeRepository(session)
        recipe = Recipe(author_id=author_id, **data.model_dump(include=set(_SCALAR_FIELDS)))
        await repo.add(recipe)
        await repo.replace_ingredients(recipe.id, data.ingredients)
        await repo.replace_steps(recipe.id, data.steps)
        await repo.replace_tags(recipe.id, data.tags)
        await repo.replace_nutrition(recipe.id, data.nutrition)
        # A private recipe is in no shared search page: no search generation moves.
        search_scopes = search_scope_keys(await repo.search_lexemes(recipe.id)) if data.is_public else []
        payload = {"author_id": str(author_id), "is_public": recipe.is_public, "search_scopes": search_scopes}
        event_id = await self.outbox.record(session, RECIPE_CREATED, recipe.id, payload)
        lists = list_generations(author_id, [data.cuisine], data.tags, fields=None, public=data.is_public)
        self._invalidate(
            session,
            recipe.id,
            author_id=author_id,
            search=data.is_public,
            search_event=event_id,
            search_scopes=search_scopes,
            lists=lists,
        )
        return await self._reload(session, recipe.id)

    async def _reload(self, session: WriteSession, recipe_id: uuid.UUID) -> dict[str, Any]:
        recipe = await RecipeRepository(session).get(recipe_id, HEAVY_PARTS, refresh=True)
        assert recipe is not None
        return self.document(recipe, HEAVY_PARTS)

    async def lock_for_edit(self, session: WriteSession, recipe_id: uuid.UUID, user_id: uuid.UUID) -> Recipe:
        """The recipe, locked, if `user_id` is its author: 404 if missing or invisible, 403 if someone else's."""
        recipe = await RecipeRepository(session).get_for_update(recipe_id)
        if recipe is None or not (recipe.is_public or recipe.author_id == user_id):
            raise NotFoundError("no such recipe")
        if recipe.author_id != user_id:
            raise ForbiddenError("only the author may change this recipe")
        return recipe

    async def lock_visible(self, session: WriteSession, recipe_id: uuid.UUID, user_id: uuid.UUID) -> Recipe:
        recipe = await RecipeRepository(session).get_for_update(recipe_id)
        if recipe is None or not (recipe.is_public or recipe.author_id == user_id):
            raise NotFoundError("no such recipe")
        return recipe

    async def update(
        self, session: WriteSession, recipe: Recipe, data: RecipeUpdate, if_match: str | None
    ) -> dict[str, Any]:
        """Apply a partial update; 412 if `if_match` names another version."""
        if not if_match_satisfied(if_match, recipe.version):
            raise PreconditionFailedError(
                "the recipe changed since you read it; fetch it again",
                extra={"current_version": recipe.version},
            )
        repo = RecipeRepository(session)
        sent = data.model_fields_set
        values = {name: getattr(data, name) for name in _SCALAR_FIELDS if name in sent}
        for name in (
            "title",
            "description",
            "prep_minutes",
            "cook_minutes",
            "servings",
            "difficulty",
            "is_public",
        ):
            if name in values and values[name] is None:
                values.pop(name)  # null is meaningful only for nullable fields
        lists = await self._lists_moved_by_update(repo, recipe, data, values)
        # A recipe private before and after is in no shared search page (its author's searches skip them).
        search = update_affects_search(sent) and (recipe.is_public or bool(values.get("is_public", False)))
        lexemes_before = await repo.search_lexemes(recipe.id) if search else None
        if "ingredients" in sent:
            await repo.replace_ingredients(recipe.id, data.ingredients or [])
        if "steps" in sent:
            await repo.replace_steps(recipe.id, data.steps or [])
        if "tags" in sent:
            await repo.replace_tags(recipe.id, data.tags or [])
        if "nutrition" in sent:
            await repo.replace_nutrition(recipe.id, data.nutrition)
        await repo.bump_version(recipe.id, **values)
        search_scopes = []
        if search:
            lexemes_after = await repo.search_lexemes(recipe.id) if not VECTOR_FIELDS.isdisjoint(sent) else None
            search_scopes = search_scope_keys(lexemes_before, lexemes_after)
        payload = {
            "author_id": str(recipe.author_id),
            "fields": sorted(sent),
            "search": search,
            "search_scopes": search_scopes,
        }
        event_id = await self.outbox.record(session, RECIPE_UPDATED, recipe.id, payload)
        self._invalidate(
            session,
            recipe.id,
            # The profile counts the author's public recipes: only a visibility change moves it.
            author_id=recipe.author_id if "is_public" in sent else None,
            search=search,
            search_event=event_id,
            search_scopes=search_scopes,
            lists=lists,
        )
        return await self._reload(session, recipe.id)

    async def _lists_moved_by_update(
        self, repo: RecipeRepository[WriteSession], recipe: Recipe, data: RecipeUpdate, values: dict[str, Any]
    ) -> list[str]:
        """The list generations an update of the locked `recipe` bumps (recipe/relevance.py), from its cuisine and
        tags before (read before they are replaced) and after."""
        sent = data.model_fields_set
        if not update_affects_lists(sent):
            return []  # (list_generations would say the same, without the tags' statement)
        public = recipe.is_public or bool(values.get("is_public", recipe.is_public))
        tags = await repo.tag_names(recipe.id) if public else []
        if public and "tags" in sent:
            tags += data.tags or []
        cuisines = [recipe.cuisine, values["cuisine"] if "cuisine" in values else recipe.cuisine]
        return list_generations(recipe.author_id, cuisines, tags, fields=sent, public=public)

    async def set_image(self, session: WriteSession, recipe: Recipe, image_key: str | None) -> dict[str, Any]:
        """Point the locked recipe at another image (None: none); the outbox deletes the replaced one after commit."""
        await RecipeRepository(session).bump_version(recipe.id, image_key=image_key)
        self._invalidate(session, recipe.id)
        payload = {"author_id": str(recipe.author_id), "previous_key": recipe.image_key, "image_key": image_key}
        await self.outbox.record(session, RECIPE_IMAGE_REPLACED, recipe.id, payload)
        return await self._reload(session, recipe.id)

    async def delete(self, session: WriteSession, recipe: Recipe) -> None:
        repo = RecipeRepository(session)
        tags = await repo.tag_names(recipe.id) if recipe.is_public else []
        lists = list_generations(recipe.author_id, [recipe.cuisine], tags, fields=None, public=recipe.is_public)
        await repo.delete(recipe.id)
        # No search bump: cached pages skip the id when they are hydrated (recipe/relevance.py).
        self._invalidate(session, recipe.id, author_id=recipe.author_id, lists=lists)
        await self.outbox.record(session, RECIPE_DELETED, recipe.id, {"author_id": str(recipe.author_id)})

    async def forget_user(self, session: WriteSession, user_id: uuid.UUID) -> int:
        """Before an account is deleted: delete every recipe it wrote (public ones too, through the ordinary delete:
        events, images, caches) and withdraw its ratings and favorites from other recipes (their averages and
        counts recomputed). How many recipes were deleted."""
        repo = RecipeRepository(session)
        authored, others = await repo.ids_touched_by(user_id)
        for recipe_id in authored:
            recipe = await repo.get_for_update(recipe_id)
            if recipe is not None:
                await self.delete(session, recipe)
        for recipe_id in others:
            recipe = await repo.get_for_update(recipe_id)
            if recipe is not None:
                await self.unrate(session, recipe, user_id)
                await self.unfavorite(session, recipe, user_id)
        return len(authored)

    async def rate(self, session: WriteSession, recipe: Recipe, user_id: uuid.UUID, data: RatingWrite) -> RatingRead:
        """Put the caller's rating; the recipe's average and count are recomputed under its row lock.

        An author may not rate their own recipe (403): a self-rating would feed trending, `min_rating` and
        recommendations with the one opinion that is never impartial."""
        if recipe.author_id == user_id:
            raise ForbiddenError("authors cannot rate their own recipes", extra={"reason": "own-recipe"})
        repo = RecipeRepository(session)
        rating = await repo.upsert_rating(recipe.id, user_id, data.stars, data.review)
        average, count = await repo.recompute_rating(recipe.id)
        self._invalidate(session, recipe.id, reader_id=user_id)
        await self.outbox.record(session, RATING_CREATED, recipe.id, {"user_id": str(user_id), "stars": rating.stars})
        return RatingRead(
            recipe_id=recipe.id,
            user_id=user_id,
            stars=rating.stars,
            review=rating.review,
            created_at=rating.created_at,
            updated_at=rating.updated_at,
            recipe_rating=average,
            recipe_rating_count=count,
        )

    async def unrate(self, session: WriteSession, recipe: Recipe, user_id: uuid.UUID) -> None:
        repo = RecipeRepository(session)
        if await repo.delete_rating(recipe.id, user_id):
            await repo.recompute_rating(recipe.id)
            self._invalidate(session, recipe.id, reader_id=user_id)

    async def favorite(self, session: WriteSession, recipe: Recipe, user_id: uuid.UUID) -> None:
        repo = RecipeRepository(session)
        if await repo.add_favorite(recipe.id, user_id):
            await repo.recompute_favorites(recipe.id)
            self._invalidate(session, recipe.id, reader_id=user_id)

    async def unfavorite(self, session: WriteSession, recipe: Recipe, user_id: uuid.UUID) -> None:
        repo = RecipeRepository(session)
        if await repo.remove_favorite(recipe.id, user_id):
            await repo.recompute_favorites(recipe.id)
            self._invalidate(session, recipe.id, reader_id=user_id)

    async def list_favorites(
        self, session: ReadSession, user_id: uuid.UUID, cursor: Cursor | None, limit: int, parts: Set[str]
    ) -> tuple[list[tuple[dict[str, Any], Any]], str | None]:
        rows = await RecipeRepository(session).list_favorites(user_id, cursor, limit + 1, parts)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][1], page[-1][0].id) if len(rows) > limit and page else None
        return [(build_document(r, parts, self.media_base_url), at) for r, at in page], next_cursor
