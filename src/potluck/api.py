"""Mounts every domain router under /api/v1."""

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

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_router)
api_router.include_router(my_recipes_router)
api_router.include_router(users_router)
api_router.include_router(recipes_router)
api_router.include_router(media_router)
api_router.include_router(notifications_router)
api_router.include_router(search_router)
api_router.include_router(trending_router)
api_router.include_router(recommendations_router)
