from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from potluck.cache.dependencies import SurrogateKeysDep
from potluck.db.dependencies import MinLsn, ReadSessionDep, WriteSessionDep
from potluck.kit.etag import if_none_match_hit, make_etag
from potluck.kit.fields import project
from potluck.kit.inputs import SafeStr
from potluck.kit.links import next_link, public_url
from potluck.kit.pagination import Page
from potluck.kit.responses import json_response
from potluck.recipe.dependencies import (
    DetailSelection,
    ListSelection,
    RecipeForEdit,
    RecipeServiceDep,
    ViewCounterDep,
    VisibleRecipeForWrite,
)
from potluck.recipe.http import (
    FULL_DOCUMENT,
    PRIVATE_CACHE,
    PUBLIC_LIST_CACHE,
    cache_control,
    owners,
    page_items,
    read_headers,
)
from potluck.recipe.schemas import (
    HEAVY_PARTS,
    RECIPE_SHAPE,
    FavoritePage,
    RatingRead,
    RatingWrite,
    RecipeCreate,
    RecipeFilters,
    RecipePage,
    RecipeRead,
    RecipeUpdate,
)
from potluck.user.dependencies import CurrentUserId, OptionalUserId

router = APIRouter(prefix="/recipes", tags=["recipes"])
me_router = APIRouter(prefix="/users/me", tags=["recipes"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RecipeRead)
async def create_recipe(
    body: RecipeCreate,
    user_id: CurrentUserId,
    session: WriteSessionDep,
    recipes: RecipeServiceDep,
    request: Request,
) -> Response:
    """Create a recipe owned by the caller."""
    doc = await recipes.create(session, user_id, body)
    headers = {
        "Location": public_url(request, request.app.url_path_for("get_recipe", recipe_id=doc["id"])),
        "ETag": make_etag(doc["id"], doc["version"], FULL_DOCUMENT),
        "Cache-Control": "no-store",
    }
    return json_response(doc, status.HTTP_201_CREATED, headers)


@router.get("", response_model=RecipePage)
async def list_recipes(
    viewer: OptionalUserId,
    position: MinLsn,
    recipes: RecipeServiceDep,
    selection: ListSelection,
    page: Page,
    request: Request,
    edge: SurrogateKeysDep,
    author: uuid.UUID | None = None,
    cuisine: Annotated[SafeStr | None, Query(max_length=50)] = None,
    tag: Annotated[SafeStr | None, Query(max_length=40)] = None,
    max_total_minutes: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> Response:
    """Recipes newest first, filtered, cursor-paginated. Private recipes appear only to their author."""
    filters = RecipeFilters(author=author, cuisine=cuisine, tag=tag, max_total_minutes=max_total_minutes)
    found, next_cursor = await recipes.list_page(
        filters, viewer, page.cursor, page.limit, selection.include, min_lsn=position
    )
    headers = {"Cache-Control": cache_control(viewer, True, PUBLIC_LIST_CACHE), "Vary": "Authorization"}
    if viewer is None:
        headers.update(edge.recipe_list(owners(found)))
    headers.update(next_link(request, next_cursor))
    return json_response({"items": page_items(found, selection), "next_cursor": next_cursor}, headers=headers)


@router.get("/{recipe_id}", response_model=RecipeRead, responses={304: {"description": "Not Modified"}})
async def get_recipe(
    recipe_id: uuid.UUID,
    viewer: OptionalUserId,
    recipes: RecipeServiceDep,
    views: ViewCounterDep,
    selection: DetailSelection,
    edge: SurrogateKeysDep,
    if_none_match: Annotated[SafeStr | None, Header(max_length=2000)] = None,
) -> Response:
    """One recipe. `fields` and `include` trim it; `If-None-Match` with a current ETag answers 304."""
    cached = await recipes.get(recipe_id, viewer)
    views.record(recipe_id)  # in memory only: no database write per view (potluck.stats)
    etag = make_etag(recipe_id, cached.meta.version, selection.key)
    headers = read_headers(etag, viewer=viewer, is_public=cached.meta.is_public)
    if viewer is None:
        headers.update(edge.recipe(recipe_id, cached.meta.author_id))
    if if_none_match_hit(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if selection.is_everything and selection.include == HEAVY_PARTS:
        # The common case: the stored bytes are the response, unparsed.
        return Response(cached.payload, media_type="application/json", headers=headers)
    return json_response(project(cached.document(), selection, RECIPE_SHAPE), headers=headers)


@router.patch(
    "/{recipe_id}",
    response_model=RecipeRead,
    responses={403: {"description": "Not the author"}, 412: {"description": "ETag mismatch"}},
)
async def update_recipe(
    body: RecipeUpdate,
    recipe: RecipeForEdit,
    session: WriteSessionDep,
    recipes: RecipeServiceDep,
    if_match: Annotated[SafeStr | None, Header(max_length=2000)] = None,
) -> Response:
    """Partial update by the author. Send `If-Match` with the ETag you read to get 412 instead of a lost update."""
    doc = await recipes.update(session, recipe, body, if_match)
    return json_response(
        doc, headers={"ETag": make_etag(doc["id"], doc["version"], FULL_DOCUMENT), "Cache-Control": "no-store"}
    )


@router.delete(
    "/{recipe_id}", status_code=status.HTTP_204_NO_CONTENT, responses={403: {"description": "Not the author"}}
)
async def delete_recipe(recipe: RecipeForEdit, session: WriteSessionDep, recipes: RecipeServiceDep) -> None:
    """Delete a recipe (author only)."""
    await recipes.delete(session, recipe)


@router.put("/{recipe_id}/rating", response_model=RatingRead, responses={403: {"description": "Your own recipe"}})
async def rate_recipe(
    body: RatingWrite,
    recipe: VisibleRecipeForWrite,
    user_id: CurrentUserId,
    session: WriteSessionDep,
    recipes: RecipeServiceDep,
) -> RatingRead:
    """Put the caller's rating (1 to 5 stars, optional review); one per user and recipe. 403 on your own recipe."""
    return await recipes.rate(session, recipe, user_id, body)


@router.delete("/{recipe_id}/rating", status_code=status.HTTP_204_NO_CONTENT)
async def unrate_recipe(
    recipe: VisibleRecipeForWrite, user_id: CurrentUserId, session: WriteSessionDep, recipes: RecipeServiceDep
) -> None:
    await recipes.unrate(session, recipe, user_id)


@router.put("/{recipe_id}/favorite", status_code=status.HTTP_204_NO_CONTENT)
async def favorite_recipe(
    recipe: VisibleRecipeForWrite, user_id: CurrentUserId, session: WriteSessionDep, recipes: RecipeServiceDep
) -> None:
    """Add to the caller's favorites (idempotent)."""
    await recipes.favorite(session, recipe, user_id)


@router.delete("/{recipe_id}/favorite", status_code=status.HTTP_204_NO_CONTENT)
async def unfavorite_recipe(
    recipe: VisibleRecipeForWrite, user_id: CurrentUserId, session: WriteSessionDep, recipes: RecipeServiceDep
) -> None:
    await recipes.unfavorite(session, recipe, user_id)


@me_router.get("/favorites", response_model=FavoritePage)
async def my_favorites(
    user_id: CurrentUserId,
    session: ReadSessionDep,
    recipes: RecipeServiceDep,
    selection: ListSelection,
    page: Page,
    request: Request,
) -> Response:
    """The caller's favorites, most recently added first."""
    rows, next_cursor = await recipes.list_favorites(session, user_id, page.cursor, page.limit, selection.include)
    items = [{"recipe": project(doc, selection, RECIPE_SHAPE), "favorited_at": at.isoformat()} for doc, at in rows]
    headers = {"Cache-Control": PRIVATE_CACHE}
    headers.update(next_link(request, next_cursor))
    return json_response({"items": items, "next_cursor": next_cursor}, headers=headers)
