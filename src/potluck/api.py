"""Every domain router, mounted under /api/v1 by the app (`API_PREFIX`), in the order requests try them.

FastAPI matches a request against the routes one by one, twice (to choose, then to handle), through every level
of included routers, so the order is by traffic: recipe reads and lists first, then search, trending, profiles;
account and upload routes last. Each router is included into the app itself (one level, not a router of routers).
Only order between routers that share a prefix matters for correctness: `/users/me/...` before `/users/{id}`,
recipe routes before the image routes under `/recipes/{id}/images`."""

from __future__ import annotations

from fastapi import APIRouter

from potluck.media.routes import router as media_router
from potluck.notification.routes import router as notifications_router
from potluck.recipe.routes import me_router as my_recipes_router
from potluck.recipe.routes import router as recipes_router
from potluck.recommendation.routes import router as recommendations_router
from potluck.search.routes import router as search_router
from potluck.trending.routes import router as trending_router
from potluck.user.routes import auth_router
from potluck.user.routes import router as users_router

API_PREFIX = "/api/v1"

API_ROUTERS: tuple[APIRouter, ...] = (
    recipes_router,
    search_router,
    trending_router,
    my_recipes_router,
    users_router,
    recommendations_router,
    notifications_router,
    media_router,
    auth_router,
)
