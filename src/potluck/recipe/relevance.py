"""Which recipe changes bump the search generation. Pure.

Cached search pages hold recipe ids and are hydrated through `recipe:{id}` on every read, so a page never shows a
stale title, a deleted recipe or one that went private (hydration skips those): cache-semantics.md item 1, "so
most edits need no search invalidation at all". What a cached page can get wrong is only which ids it holds and
their order, for at most the family's TTL (300 s).

The generation moves for a creation (new recipes are found at once) and for an update of what a result shows and
an exact filter selects: title, cuisine, tags, and visibility (which also decides whether the author's own
searches bypass the shared pages). It does not move for edits of the description, ingredients, times, steps,
servings, nutrition or difficulty, for ratings, favorites or deletions: a cached page may then, for up to 300 s,
still list a recipe whose new description no longer matches (shown as it is now), miss one that now matches, or
keep a `rating` order or `min_rating` cut from before. Bumping for those would empty the whole search cache at
the rate recipes are edited (the load test's edit rate took the search hit rate to 6-17%).
"""

from __future__ import annotations

from collections.abc import Iterable

# RecipeUpdate fields whose change moves the search generation (see above).
SEARCH_FIELDS = frozenset({"title", "cuisine", "tags", "is_public"})


def update_affects_search(fields: Iterable[str]) -> bool:
    """True when an update that sent `fields` must be reflected in cached searches at once."""
    return not SEARCH_FIELDS.isdisjoint(fields)


# RecipeUpdate fields that decide which recipes a list page filter selects (cuisine, tag, total time, author's
# visibility): an update that sends one moves the lists' generation. Ordering is by creation, which never changes;
# everything a page shows comes from recipe:{id} at read time.
LIST_FIELDS = frozenset({"cuisine", "tags", "prep_minutes", "cook_minutes", "is_public"})


def update_affects_lists(fields: Iterable[str]) -> bool:
    """True when an update that sent `fields` may move a recipe into or out of a cached list page."""
    return not LIST_FIELDS.isdisjoint(fields)
