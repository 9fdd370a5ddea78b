"""HTTP caching headers for recipe reads, shared by the route and the first-tier fast path; the items of every
page of recipes (lists, search, trending, recommendations), spliced from the cached documents' bytes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import orjson

from potluck.cache.surrogate import Owned
from potluck.kit.etag import make_etag
from potluck.kit.fields import Projections, Selection, parse_selection
from potluck.recipe.schemas import HEAVY_PARTS, RECIPE_SHAPE
from potluck.recipe.service import CachedRecipe

# Anonymous reads of public data may sit in shared caches (CDN, nginx); anything that depends on the caller may not.
PUBLIC_CACHE = "public, max-age=60, s-maxage=300, stale-while-revalidate=60"
PUBLIC_LIST_CACHE = "public, max-age=15, s-maxage=30, stale-while-revalidate=30"
PRIVATE_CACHE = "private, no-cache"
# The selection key of the full document, so a write's ETag matches the ETag a plain GET gives.
FULL_DOCUMENT = parse_selection(None, None, RECIPE_SHAPE, default_include=HEAVY_PARTS).key


def cache_control(viewer: uuid.UUID | None, public: bool, policy: str = PUBLIC_CACHE) -> str:
    return policy if viewer is None and public else PRIVATE_CACHE


def full_document_etag(recipe_id: uuid.UUID | str, version: int) -> str:
    return make_etag(recipe_id, version, FULL_DOCUMENT)


def read_headers(etag: str, *, viewer: uuid.UUID | None, is_public: bool) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": cache_control(viewer, is_public), "Vary": "Authorization"}


# Per process: a recipe's projection is computed once per document version and selection, not per page.
PROJECTIONS = Projections(RECIPE_SHAPE)


def page_items(recipes: Sequence[CachedRecipe], selection: Selection) -> list[orjson.Fragment]:
    """A page's items: each cached document cut to `selection` (a card without `fields`/`include`), as JSON."""
    return PROJECTIONS.items([recipe.payload for recipe in recipes], selection)


def owners(recipes: Sequence[CachedRecipe]) -> list[Owned]:
    """Each recipe of a page and its author: the page's surrogate keys (cache/surrogate.py)."""
    return [(recipe.recipe_id, recipe.meta.author_id) for recipe in recipes]
