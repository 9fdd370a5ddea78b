"""The search service, built per request from the container."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from potluck.deps import ContainerDep
from potluck.search.analytics import InMemorySearchAnalytics, SearchAnalytics
from potluck.search.service import SearchService

# Where the in-process fallback lives when bootstrap has not provided `container.search_analytics`.
_FALLBACK_STATE = "potluck_search_analytics"


def search_analytics(request: Request, container: ContainerDep) -> SearchAnalytics:
    """The container's analytics adapter, else one in-process adapter per application."""
    configured: SearchAnalytics | None = getattr(container, "search_analytics", None)
    if configured is not None:
        return configured
    fallback: SearchAnalytics | None = getattr(request.app.state, _FALLBACK_STATE, None)
    if fallback is None:
        fallback = InMemorySearchAnalytics()
        setattr(request.app.state, _FALLBACK_STATE, fallback)
    return fallback


def _search_service(
    container: ContainerDep, analytics: Annotated[SearchAnalytics, Depends(search_analytics)]
) -> SearchService:
    return SearchService(container.database, container.cache, container.recipes, analytics)


SearchServiceDep = Annotated[SearchService, Depends(_search_service)]
