"""GET /recommendations (the signed-in user's personal recommendations) and GET /recipes/{id}/similar."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from potluck.db.dependencies import MinLsn
from potluck.kit.responses import json_response
from potluck.recipe.dependencies import ListSelection
from potluck.recipe.http import page_items
from potluck.recipe.schemas import RecipeRead
from potluck.recommendation.dependencies import RecommendationServiceDep
from potluck.recommendation.service import TOP_N
from potluck.user.dependencies import CurrentUserId

router = APIRouter(tags=["recommendations"])

# Per user: no shared cache may hold it, and a browser must ask again (a recipe that goes private leaves at once).
RECOMMENDATIONS_CACHE = "private, no-cache"
# The same for everyone and changed only by a new model (nightly) or a recipe going private (hydration drops it
# at once here; an edge copy keeps it up to s-maxage): shared caches may keep it a while.
SIMILAR_CACHE = "public, max-age=300, s-maxage=3600, stale-while-revalidate=600"


class RecommendationPage(BaseModel):
    items: list[RecipeRead]


@router.get("/recommendations", response_model=RecommendationPage)
async def recommendations(
    service: RecommendationServiceDep,
    viewer: CurrentUserId,
    selection: ListSelection,
    min_lsn: MinLsn,
    limit: Annotated[int, Query(ge=1, le=TOP_N)] = 20,
) -> Response:
    """Public recipes picked for the caller by their favorites, ratings and follows (see docs/recommendations.md).

    Never the caller's own recipes, nor ones they favorited or rated. Recomputed at most every 30 minutes."""
    docs = await service.for_user(viewer, limit, min_lsn=min_lsn)
    body = {"items": page_items(docs, selection)}
    return json_response(body, headers={"Cache-Control": RECOMMENDATIONS_CACHE, "Vary": "Authorization"})


@router.get("/recipes/{recipe_id}/similar", response_model=RecommendationPage)
async def similar_recipes(
    recipe_id: uuid.UUID,
    service: RecommendationServiceDep,
    selection: ListSelection,
    limit: Annotated[int, Query(ge=1, le=TOP_N)] = 10,
) -> Response:
    """Public recipes like this one (by who liked them, and by cuisine, tags and ingredients), for anyone.

    404 when the recipe is missing or private; an empty list when the model does not know it yet (a recipe
    newer than the last nightly training)."""
    await service.recipes.get(recipe_id, None)  # 404 for a missing or private recipe, as GET /recipes/{id}
    docs = await service.similar(recipe_id, limit) or []
    body = {"items": page_items(docs, selection)}
    return json_response(body, headers={"Cache-Control": SIMILAR_CACHE})
