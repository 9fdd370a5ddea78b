"""Imports every model so that Base.metadata is complete (Alembic and table creation read it)."""

from potluck.db.base import Base
from potluck.events.models import HandledEvent, OutboxEvent
from potluck.notification.models import Notification
from potluck.recipe.models import (
    Favorite,
    Ingredient,
    Nutrition,
    Rating,
    Recipe,
    RecipeIngredient,
    RecipeTag,
    Step,
    Tag,
)
from potluck.stats.models import StatsFlush
from potluck.user.models import AccountToken, AuthSession, Follow, User

__all__ = [
    "AccountToken",
    "AuthSession",
    "Base",
    "Favorite",
    "Follow",
    "HandledEvent",
    "Ingredient",
    "Notification",
    "Nutrition",
    "OutboxEvent",
    "Rating",
    "Recipe",
    "RecipeIngredient",
    "RecipeTag",
    "StatsFlush",
    "Step",
    "Tag",
    "User",
]
