"""Imports every model so that Base.metadata is complete (Alembic and table creation read it)."""

from potluck.db.base import Base
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
from potluck.user.models import Follow, User

__all__ = [
    "Base",
    "Favorite",
    "Follow",
    "Ingredient",
    "Nutrition",
    "Rating",
    "Recipe",
    "RecipeIngredient",
    "RecipeTag",
    "Step",
    "Tag",
    "User",
]
