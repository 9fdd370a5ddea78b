"""GET /trending: the most trending public recipes of a day, a week or a month."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from potluck.cache.dependencies import SurrogateKeysDep
from potluck.kit.responses import json_response
from potluck.recipe.dependencies import ListSelection
from potluck.recipe.http import owners, page_items
from potluck.recipe.schemas import RecipeRead
from potluck.trending.dependencies import TrendingServiceDep
from potluck.trending.scoring import Period
from potluck.trending.service import TOP_N

router = APIRouter(prefix="/trending", tags=["trending"])

# The same for every caller (computed as an anonymous viewer), so shared caches may hold it briefly.
TRENDING_CACHE = "public, max-age=15, s-maxage=30, stale-while-revalidate=30"


class TrendingPage(BaseModel):
    period: Period
    items: list[RecipeRead]


@router.get("", response_model=TrendingPage)
async def trending_recipes(
    service: TrendingServiceDep,
    selection: ListSelection,
    edge: SurrogateKeysDep,
    period: Period = Period.week,
    limit: Annotated[int, Query(ge=1, le=TOP_N)] = 20,
) -> Response:
    """Recipes scored by recent favorites and ratings and by views decayed with age (see docs/search.md)."""
    found = await service.top(period, limit)
    body = {"period": period.value, "items": page_items(found, selection)}
    return json_response(body, headers={"Cache-Control": TRENDING_CACHE, **edge.trending(period.value, owners(found))})
