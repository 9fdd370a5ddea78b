from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class RecipeImages(BaseModel):
    """The URL of each variant of a recipe's image (WebP, never wider than the upload)."""

    thumb: str = Field(description="At most 320 pixels wide (media.thumb_width).")
    medium: str = Field(description="At most 960 pixels wide (media.medium_width); also the recipe's `image_url`.")
    large: str = Field(description="At most 1920 pixels wide (media.large_width).")


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
