from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from potluck.kit.fields import Shape
from potluck.kit.inputs import NO_CONTROLS, NO_CONTROLS_NOT_BLANK, NUMBER_ONLY, StrictBool
from potluck.recipe.models import Difficulty

MAX_INGREDIENTS = 100
MAX_STEPS = 100
MAX_TAGS = 20
MAX_MINUTES = 7 * 24 * 60

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_CONTROLS_NOT_BLANK]
Description = Annotated[str, StringConstraints(max_length=10_000), NO_CONTROLS]
Cuisine = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50), NO_CONTROLS_NOT_BLANK
]
TagName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$",
    ),
    NO_CONTROLS,
]
StepText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5_000), NO_CONTROLS_NOT_BLANK
]
Minutes = Annotated[int, Field(ge=0, le=MAX_MINUTES), NUMBER_ONLY]
Servings = Annotated[int, Field(ge=1, le=1000), NUMBER_ONLY]
Amount = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False), NUMBER_ONLY]


class RecipeImages(BaseModel):
    """The URL of each variant of a recipe's image (WebP, never wider than the upload)."""

    thumb: str = Field(description="At most 320 pixels wide (media.thumb_width).")
    medium: str = Field(description="At most 960 pixels wide (media.medium_width); also the recipe's `image_url`.")
    large: str = Field(description="At most 1920 pixels wide (media.large_width).")


class IngredientLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=100),
        NO_CONTROLS_NOT_BLANK,
    ]
    quantity: Amount | None = None
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=30), NO_CONTROLS] | None = None
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NO_CONTROLS] | None = None


class NutritionData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calories: Amount | None = None
    protein_g: Amount | None = None
    fat_g: Amount | None = None
    carbohydrates_g: Amount | None = None
    fiber_g: Amount | None = None
    sugar_g: Amount | None = None
    sodium_mg: Amount | None = None


def _unique_tags(tags: list[str] | None) -> list[str] | None:
    return None if tags is None else list(dict.fromkeys(tags))


class RecipeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    cuisine: Cuisine | None = None
    prep_minutes: Minutes = 0
    cook_minutes: Minutes = 0
    servings: Servings = 1
    difficulty: Difficulty = Difficulty.medium
    is_public: StrictBool = True
    ingredients: Annotated[list[IngredientLine], Field(max_length=MAX_INGREDIENTS)] = []
    steps: Annotated[list[StepText], Field(max_length=MAX_STEPS)] = []
    tags: Annotated[list[TagName], Field(max_length=MAX_TAGS)] = []
    nutrition: NutritionData | None = None

    _dedupe_tags = field_validator("tags")(_unique_tags)


class RecipeUpdate(BaseModel):
    """A partial update: only the fields sent change; a list sent replaces the whole list."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    cuisine: Cuisine | None = None
    prep_minutes: Minutes | None = None
    cook_minutes: Minutes | None = None
    servings: Servings | None = None
    difficulty: Difficulty | None = None
    is_public: StrictBool | None = None
    ingredients: Annotated[list[IngredientLine], Field(max_length=MAX_INGREDIENTS)] | None = None
    steps: Annotated[list[StepText], Field(max_length=MAX_STEPS)] | None = None
    tags: Annotated[list[TagName], Field(max_length=MAX_TAGS)] | None = None
    nutrition: NutritionData | None = None

    _dedupe_tags = field_validator("tags")(_unique_tags)


class AuthorRead(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str


class IngredientRead(BaseModel):
    name: str
    quantity: float | None
    unit: str | None
    note: str | None


class RecipeRead(BaseModel):
    """The full representation; `fields` and `include` cut it down."""

    id: uuid.UUID
    title: str
    description: str
    cuisine: str | None
    prep_minutes: int
    cook_minutes: int
    total_minutes: int
    servings: int
    difficulty: Difficulty
    is_public: bool
    image_url: str | None = Field(description="The image's medium variant; null without an image.")
    images: RecipeImages | None = Field(default=None, description="Every variant's URL; null without an image.")
    rating: float | None = Field(description="Average stars, 1 to 5; null before the first rating.")
    rating_count: int
    view_count: int
    favorite_count: int
    author: AuthorRead
    created_at: datetime
    updated_at: datetime
    version: int
    ingredients: list[IngredientRead] | None = None
    steps: list[str] | None = None
    tags: list[str] | None = None
    nutrition: NutritionData | None = None


class RecipePage(BaseModel):
    items: list[RecipeRead]
    next_cursor: str | None


HEAVY_PARTS = frozenset({"ingredients", "steps", "tags", "nutrition"})
RECIPE_SHAPE = Shape(
    light=frozenset(RecipeRead.model_fields) - HEAVY_PARTS,
    heavy=HEAVY_PARTS,
    nested={"author": frozenset(AuthorRead.model_fields), "images": frozenset(RecipeImages.model_fields)},
)


class RatingWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: Annotated[int, Field(ge=1, le=5), NUMBER_ONLY]
    review: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5_000), NO_CONTROLS] | None = None


class RatingRead(BaseModel):
    recipe_id: uuid.UUID
    user_id: uuid.UUID
    stars: int
    review: str | None
    created_at: datetime
    updated_at: datetime
    recipe_rating: float | None
    recipe_rating_count: int


class FavoriteRead(BaseModel):
    recipe: RecipeRead
    favorited_at: datetime


class FavoritePage(BaseModel):
    items: list[FavoriteRead]
    next_cursor: str | None


class RecipeFilters(BaseModel):
    author: uuid.UUID | None = None
    cuisine: str | None = None
    tag: str | None = None
    max_total_minutes: int | None = None

    @property
    def cuisine_compared(self) -> str | None:
        """The cuisine as the list query compares it with the stored (lower-cased) value."""
        return None if self.cuisine is None else self.cuisine.strip().lower()

    @property
    def tag_compared(self) -> str | None:
        """The tag as the list query compares it with the stored (lower-cased) names."""
        return None if self.tag is None else self.tag.strip().lower()
