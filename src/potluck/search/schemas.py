"""Response shapes, for the OpenAPI document (the routes serialize prepared dicts with orjson)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from potluck.recipe.schemas import RecipeRead


class SearchPage(BaseModel):
    items: list[RecipeRead]
    next_cursor: str | None
    mode: Literal["exact", "fuzzy"] = Field(
        description="`fuzzy` when nothing matched exactly and these are recipes with a similar title."
    )


class TrendingQuery(BaseModel):
    query: str
    count: int


class TrendingQueries(BaseModel):
    window_hours: int
    items: list[TrendingQuery]
