"""Dependencies that validate: a route that takes a RecipeForEdit never repeats the 404/403 checks."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Query

from potluck.db.dependencies import WriteSessionDep
from potluck.errors import BadRequestError
from potluck.kit.fields import FieldSelectionError, Selection, parse_selection
from potluck.kit.inputs import SafeStr
from potluck.kit.wiring import provided
from potluck.recipe.models import Recipe
from potluck.recipe.schemas import HEAVY_PARTS, RECIPE_SHAPE
from potluck.recipe.service import RecipeService
from potluck.recipe.views import ViewCounter
from potluck.user.dependencies import CurrentUserId

RecipeServiceDep = Annotated[RecipeService, Depends(provided(RecipeService))]
ViewCounterDep = Annotated[ViewCounter, Depends(provided(ViewCounter))]


async def _recipe_for_edit(
    recipe_id: uuid.UUID, user_id: CurrentUserId, session: WriteSessionDep, recipes: RecipeServiceDep
) -> Recipe:
    return await recipes.lock_for_edit(session, recipe_id, user_id)


async def _recipe_visible_for_write(
    recipe_id: uuid.UUID, user_id: CurrentUserId, session: WriteSessionDep, recipes: RecipeServiceDep
) -> Recipe:
    return await recipes.lock_visible(session, recipe_id, user_id)


RecipeForEdit = Annotated[Recipe, Depends(_recipe_for_edit, scope="function")]
VisibleRecipeForWrite = Annotated[Recipe, Depends(_recipe_visible_for_write, scope="function")]


def _names_pattern(names: Iterable[str], *, at_least_one: bool) -> str:
    """What parse_selection accepts, as a JSON Schema pattern: names between commas, blanks and empty slots."""
    name = "(" + "|".join(re.escape(n) for n in sorted(names, key=lambda n: (-len(n), n))) + ")"
    listed = rf"{name}\s*(,\s*({name}\s*)?)*"
    return rf"^(\s*,)*\s*{listed if at_least_one else f'({listed})?'}$"


_FIELD_NAMES = [
    *RECIPE_SHAPE.light,
    *RECIPE_SHAPE.heavy,
    *(f"{head}.{sub}" for head, subs in RECIPE_SHAPE.nested.items() for sub in subs),
]
FieldsParam = Annotated[
    SafeStr | None,
    Query(
        max_length=1000,
        # Documented, not enforced here: parse_selection answers a 400 naming the unknown field.
        json_schema_extra={"pattern": _names_pattern(_FIELD_NAMES, at_least_one=True)},
        description="Comma-separated fields to return, e.g. `id,title,image_url,rating,author.username`; "
        "the items then hold only those (at least one name; unknown names are a 400).",
    ),
]
IncludeParam = Annotated[
    SafeStr | None,
    Query(
        max_length=200,
        json_schema_extra={"pattern": _names_pattern(RECIPE_SHAPE.heavy, at_least_one=False)},
        description="Heavy parts to add: `ingredients,nutrition,tags,steps`.",
    ),
]


def _selection(fields: str | None, include: str | None, default_include: frozenset[str]) -> Selection:
    try:
        return parse_selection(fields, include, RECIPE_SHAPE, default_include=default_include)
    except FieldSelectionError as exc:
        raise BadRequestError(str(exc), extra={"field": exc.name}) from exc


async def _detail_selection(fields: FieldsParam = None, include: IncludeParam = None) -> Selection:
    return _selection(fields, include, HEAVY_PARTS)


async def _list_selection(fields: FieldsParam = None, include: IncludeParam = None) -> Selection:
    return _selection(fields, include, frozenset())


DetailSelection = Annotated[Selection, Depends(_detail_selection)]
ListSelection = Annotated[Selection, Depends(_list_selection)]
