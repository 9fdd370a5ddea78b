"""Which recipe changes can change a search's results. Pure.

Cached search pages hold recipe ids and are hydrated through `recipe:{id}` on every read, so a page never shows
a stale title, a deleted recipe or one that went private (hydration skips those). What a page can get wrong is
only which ids it holds and their order: that changes when the text a search matches, a filter's value, or who may
see a recipe changes (shared/design/cache-semantics.md, item 1: "so most edits need no search invalidation at
all"). Those writes bump the search generation; the others (steps, servings, nutrition, difficulty, images,
ratings, favorites, deletion) do not.

Ratings change the `rating` sort and the `min_rating` filter; a page sorted by rating may show an order up to the
family's TTL (300 s) old, with each recipe's current rating on it.
"""

from __future__ import annotations

from collections.abc import Iterable

# RecipeUpdate fields that feed the search vector, a search filter or visibility.
SEARCH_FIELDS = frozenset(
    {"title", "description", "cuisine", "prep_minutes", "cook_minutes", "ingredients", "tags", "is_public"}
)


def update_affects_search(fields: Iterable[str]) -> bool:
    """True when an update that sent `fields` may change which recipes a search finds."""
    return not SEARCH_FIELDS.isdisjoint(fields)
