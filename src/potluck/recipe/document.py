"""A recipe's API document from flat database rows, in one pass, without pydantic. Pure: no I/O.

`RecipeService.document` builds the same document from ORM objects through `RecipeRead`; this module is the hot
path (cache fills, list pages, search hydration) and must produce byte-for-byte the same JSON once serialized
with orjson (tests/integration/test_recipe_documents.py compares the two over every seeded recipe, on both
backends, and validates the result against the OpenAPI schema of RecipeRead). What pydantic's JSON mode did is
done here by hand: UUIDs and the difficulty as strings, datetimes as RFC 3339 in UTC with a `Z`, key order
as RecipeRead declares its fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from potluck.kit.media_keys import default_image_url, image_urls

# The recipe row's columns a document reads (the repository selects them under these labels).
NUTRITION_FIELDS = ("calories", "protein_g", "fat_g", "carbohydrates_g", "fiber_g", "sugar_g", "sodium_mg")


@dataclass(slots=True)
class RecipeRecord:
    """One recipe as the repository read it: the joined row (recipe, author, nutrition) and its ordered parts."""

    row: Any  # a Row with the labels RecipeRepository.document_columns gives
    ingredients: list[tuple[str, float | None, str | None, str | None]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def id(self) -> uuid.UUID:
        recipe_id: uuid.UUID = self.row.id
        return recipe_id

    @property
    def created_at(self) -> datetime:
        created_at: datetime = self.row.created_at
        return created_at


def _timestamp(value: datetime) -> str:
    # orjson spells an aware UTC datetime exactly as pydantic's JSON mode does (microseconds only when non-zero).
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()


def _float(value: float | None) -> float | None:
    # Float columns may come back as int (SQLite keeps 2.0 as an integer in some paths): pydantic made them floats.
    return None if value is None else float(value)


def build_document(record: RecipeRecord, parts: Set[str], media_base_url: str) -> dict[str, Any]:
    """The API representation (JSON-ready data) of `record` with the heavy parts named in `parts`."""
    r = record.row
    doc: dict[str, Any] = {
        "id": str(r.id),
        "title": r.title,
        "description": r.description,
        "cuisine": r.cuisine,
        "prep_minutes": r.prep_minutes,
        "cook_minutes": r.cook_minutes,
        "total_minutes": r.prep_minutes + r.cook_minutes,
        "servings": r.servings,
        "difficulty": r.difficulty.value,
        "is_public": r.is_public,
        "image_url": default_image_url(media_base_url, r.image_key),
        "images": image_urls(media_base_url, r.image_key),
        "rating": _float(r.rating_avg),
        "rating_count": r.rating_count,
        "view_count": r.view_count,
        "favorite_count": r.favorite_count,
        "author": {"id": str(r.author_id), "username": r.author_username, "display_name": r.author_display_name},
        "created_at": _timestamp(r.created_at),
        "updated_at": _timestamp(r.updated_at),
        "version": r.version,
    }
    if "ingredients" in parts:
        doc["ingredients"] = [
            {"name": name, "quantity": _float(quantity), "unit": unit, "note": note}
            for name, quantity, unit, note in record.ingredients
        ]
    if "steps" in parts:
        doc["steps"] = list(record.steps)
    if "tags" in parts:
        doc["tags"] = list(record.tags)
    if "nutrition" in parts:
        doc["nutrition"] = (
            None
            if r.nutrition_recipe_id is None
            else {name: _float(getattr(r, f"nutrition_{name}")) for name in NUTRITION_FIELDS}
        )
    return doc


def ordered(records: Sequence[RecipeRecord], ids: Sequence[uuid.UUID]) -> list[RecipeRecord]:
    """`records` in the order of `ids`, skipping ids that found no record (deleted since)."""
    by_id: Mapping[uuid.UUID, RecipeRecord] = {record.id: record for record in records}
    return [by_id[i] for i in ids if i in by_id]
