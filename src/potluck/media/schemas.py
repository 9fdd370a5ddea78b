from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from potluck.recipe.schemas import RecipeImages


class VariantRead(BaseModel):
    name: str
    width: int
    height: int
    bytes: int


class RecipeImageRead(BaseModel):
    recipe_id: uuid.UUID
    version: int = Field(description="The recipe's version after the change (its ETag changes with it).")
    image_url: str
    images: RecipeImages
    variants: list[VariantRead]
