"""GET /recommendations: the signed-in user's personal recommendations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from potluck.db.dependencies import MinLsn
from potluck.kit.fields import project
from potluck.kit.responses import json_response
from potluck.recipe.dependencies import ListSelection
from potluck.recipe.schemas import RECIPE_SHAPE, RecipeRead
from potluck.recommendation.dependencies import RecommendationServiceDep
from potluck.recommendation.service import TOP_N
from potluck.user.dependencies import CurrentUserId

router = APIRouter(prefix="/recommendations", tags=["recommendations"])

# Per user: no shared cache may hold it, and a browser must ask again (a recipe that goes private leaves at once).
RECOMMENDATIONS_CACHE = "private, no-cache"


class RecommendationPage(BaseModel):
    items: list[RecipeRead]


@router.get("", response_model=RecommendationPage)
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
    body = {"items": [project(d, selection, RECIPE_SHAPE) for d in docs]}
    return json_response(body, headers={"Cache-Control": RECOMMENDATIONS_CACHE, "Vary": "Authorization"})
