"""GET /recommendations: the signed-in user's personal recommendations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from potluck.db.consistency import MIN_LSN_KEY
from potluck.deps import ContainerDep, CurrentUserId
from potluck.kit.fields import project
from potluck.kit.responses import json_response
from potluck.recipe.dependencies import ListSelection
from potluck.recipe.schemas import RECIPE_SHAPE, RecipeRead
from potluck.recommendation.service import TOP_N, RecommendationService

router = APIRouter(prefix="/recommendations", tags=["recommendations"])

# Per user: no shared cache may hold it, and a browser must ask again (a recipe that goes private leaves at once).
RECOMMENDATIONS_CACHE = "private, no-cache"


class RecommendationPage(BaseModel):
    items: list[RecipeRead]


def _recommendation_service(container: ContainerDep) -> RecommendationService:
    return RecommendationService(container.database, container.cache, container.recipes)


RecommendationServiceDep = Annotated[RecommendationService, Depends(_recommendation_service)]


@router.get("", response_model=RecommendationPage)
async def recommendations(
    service: RecommendationServiceDep,
    viewer: CurrentUserId,
    selection: ListSelection,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=TOP_N)] = 20,
) -> Response:
    """Public recipes picked for the caller by their favorites, ratings and follows (see docs/recommendations.md).

    Never the caller's own recipes, nor ones they favorited or rated. Recomputed at most every 30 minutes."""
    docs = await service.for_user(viewer, limit, min_lsn=getattr(request.state, MIN_LSN_KEY, None))
    body = {"items": [project(d, selection, RECIPE_SHAPE) for d in docs]}
    return json_response(body, headers={"Cache-Control": RECOMMENDATIONS_CACHE, "Vary": "Authorization"})
