"""Which updates bump the search generation."""

from __future__ import annotations

import pytest

from potluck.recipe.relevance import SEARCH_FIELDS, update_affects_search
from potluck.recipe.schemas import RecipeUpdate


@pytest.mark.parametrize("field", sorted(SEARCH_FIELDS))
def test_each_searched_field_affects_search(field: str) -> None:
    assert update_affects_search({field})
    assert update_affects_search(["servings", field])


@pytest.mark.parametrize(
    "fields",
    [(), ("steps",), ("servings", "nutrition", "difficulty"), ("description", "ingredients", "cook_minutes")],
)
def test_other_fields_do_not(fields: tuple[str, ...]) -> None:
    assert not update_affects_search(fields)


def test_every_searched_field_is_an_update_field() -> None:
    """A renamed schema field would silently stop bumping the generation."""
    assert set(RecipeUpdate.model_fields) >= SEARCH_FIELDS
