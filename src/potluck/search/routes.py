"""GET /search and GET /search/trending: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from potluck.cache.dependencies import SurrogateKeysDep
from potluck.db.dependencies import MinLsn
from potluck.errors import BadRequestError
from potluck.kit.inputs import SafeStr
from potluck.kit.links import next_link
from potluck.kit.responses import json_response
from potluck.recipe.dependencies import ListSelection
from potluck.recipe.http import owners, page_items
from potluck.search.dependencies import SearchServiceDep
from potluck.search.query import MAX_CURSOR_LENGTH, MAX_LIMIT, MAX_QUERY_LENGTH, SearchQueryError, normalise
from potluck.search.schemas import SearchPage, TrendingQueries
from potluck.user.dependencies import OptionalUserId

router = APIRouter(prefix="/search", tags=["search"])

# Anonymous searches see public data only and may sit in shared caches briefly; a signed-in viewer's may not.
PUBLIC_SEARCH_CACHE = "public, max-age=15, s-maxage=30, stale-while-revalidate=30"
PRIVATE_CACHE = "private, no-cache"
TRENDING_QUERIES_CACHE = "public, max-age=60, s-maxage=60, stale-while-revalidate=60"


@router.get("", response_model=SearchPage)
async def search_recipes(
    service: SearchServiceDep,
    viewer: OptionalUserId,
    selection: ListSelection,
    request: Request,
    min_lsn: MinLsn,
    edge: SurrogateKeysDep,
    q: Annotated[
        SafeStr,
        Query(
            min_length=1,
            max_length=MAX_QUERY_LENGTH,
            description='Web-search syntax: words, "a phrase", -excluded, `or` between alternatives.',
        ),
    ],
    cuisine: Annotated[SafeStr | None, Query(max_length=50)] = None,
    tag: Annotated[list[SafeStr] | None, Query(description="Tags every result must have (repeatable).")] = None,
    ingredient: Annotated[list[SafeStr] | None, Query(description="Ingredients every result must contain.")] = None,
    exclude_ingredient: Annotated[list[SafeStr] | None, Query(description="Ingredients no result may contain.")] = None,
    max_total_minutes: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    min_rating: Annotated[float | None, Query(ge=0, le=5)] = None,
    sort: Literal["relevance", "rating", "newest"] = "relevance",
    prefix: Annotated[bool, Query(description="Type-ahead: the last word also matches as a prefix.")] = False,
    cursor: Annotated[SafeStr | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Response:
    """Full-text search over titles, descriptions and ingredient names, ranked and filtered.

    When nothing matches exactly, recipes with a similar title are returned instead (`mode: fuzzy`).
    Private recipes appear only to their author."""
    try:
        query = normalise(
            q,
            cuisine=cuisine,
            tags=tag,
            include_ingredients=ingredient,
            exclude_ingredients=exclude_ingredient,
            max_total_minutes=max_total_minutes,
            min_rating=min_rating,
            sort=sort,
            limit=limit,
            cursor=cursor,
            prefix=prefix,
        )
    except SearchQueryError as exc:
        raise BadRequestError(str(exc), extra={"param": exc.param}) from exc
    result = await service.search(query, viewer, min_lsn=min_lsn)
    body = {
        "items": page_items(result.items, selection),
        "next_cursor": result.next_cursor,
        "mode": "fuzzy" if result.fuzzy else "exact",
    }
    headers = {"Cache-Control": PUBLIC_SEARCH_CACHE if viewer is None else PRIVATE_CACHE, "Vary": "Authorization"}
    if viewer is None:
        headers.update(edge.search(owners(result.items)))
    headers.update(next_link(request, result.next_cursor))
    return json_response(body, headers=headers)


@router.get("/trending", response_model=TrendingQueries)
async def trending_queries(service: SearchServiceDep, limit: Annotated[int, Query(ge=1, le=50)] = 10) -> Response:
    """The most frequent searches of the last 24 hours (hourly buckets: the current hour and the 23 before)."""
    top = await service.trending_queries(limit)
    body = {"window_hours": 24, "items": [{"query": t.query, "count": t.count} for t in top]}
    return json_response(body, headers={"Cache-Control": TRENDING_QUERIES_CACHE})
