"""Which recipe changes bump the search and list generations. Pure.

Cached search pages hold recipe ids and are hydrated through `recipe:{id}` on every read, so a page never shows a
stale title, a deleted recipe or one that went private (hydration skips those): cache-semantics.md item 1, "so
most edits need no search invalidation at all". What a cached page can get wrong is only which ids it holds and
their order, for at most the family's TTL (300 s).

The generations move for a creation (new recipes are found at once) and for an update of what a result shows and
an exact filter selects: title, cuisine, tags, and visibility, of a recipe public before or after the write (one
private throughout is in no shared page; whether its author's own searches bypass the shared pages is cached under
their author scope, below). On PostgreSQL they are `gen:search` (the typo fallback's, type-ahead's) and the
generation of every lexeme of the recipe's search vector before and after the write (`search_scope_keys`: the
exact matches', search/scope.py). They do not move for edits of the description, ingredients, times, steps,
servings, nutrition or difficulty, for ratings, favorites or deletions: a cached page may then, for up to 300 s,
still list a recipe whose new description no longer matches (shown as it is now), miss one that now matches, or
keep a `rating` order or `min_rating` cut from before. Bumping for those would empty the whole search cache at
the rate recipes are edited (the load test's edit rate took the search hit rate to 6-17%).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Set

from potluck.cache.keys import SEARCH_EPOCH_KEY, lists_generation_key, search_scope_key

# RecipeUpdate fields whose change moves the search generation (see above).
SEARCH_FIELDS = frozenset({"title", "cuisine", "tags", "is_public"})


# RecipeUpdate fields that change a recipe's search vector (title A, description B, ingredient names C).
VECTOR_FIELDS = frozenset({"title", "description", "ingredients"})


def update_affects_search(fields: Iterable[str]) -> bool:
    """True when an update that sent `fields` must be reflected in cached searches at once."""
    return not SEARCH_FIELDS.isdisjoint(fields)


# A write bumps at most this many lexeme generations; one whose vector holds more (a long description of varied
# words: up to ~1,500 lexemes) bumps the epoch every exact page reads instead, which empties them all once rather
# than a third of them one by one (and keeps its events small).
MAX_SEARCH_SCOPES = 256


def search_scope_keys(*lexemes: Iterable[str] | None) -> list[str]:
    """The lexeme generations a search-moving write of a public recipe bumps: those of every lexeme of its search
    vector before and after the write (None: SQLite, which has none), or past MAX_SEARCH_SCOPES the epoch's."""
    keys = sorted({search_scope_key(lexeme) for found in lexemes if found for lexeme in found})
    return [SEARCH_EPOCH_KEY] if len(keys) > MAX_SEARCH_SCOPES else keys


# RecipeUpdate fields that decide which recipes a list page filter selects (cuisine, tag, total time, author's
# visibility): an update that sends one moves the generations of the lists it may enter or leave. Ordering is by
# creation, which never changes; everything a page shows comes from recipe:{id} at read time.
LIST_FIELDS = frozenset({"cuisine", "tags", "prep_minutes", "cook_minutes", "is_public"})
MINUTES_FIELDS = frozenset({"prep_minutes", "cook_minutes"})

# Cached list pages (RecipeService.list_page) are namespaced by the generation of one scope, not one generation for
# all lists: with one, every creation anywhere emptied every cached page, and pages after the first were filled far
# more often than read (docs/benchmarks.md, issue 15 part 10). A list reads the generation of its most selective
# filter: its author's, else its tag's, else its cuisine's (each a bucket of LIST_BUCKETS), else `minutes` (only a
# total-time filter), else `all`. A write bumps the scopes of every list the recipe may enter or leave
# (`list_generations`): every list containing it filters on its author, its tags and its cuisine, so whichever of
# those a list reads, the write reaches it.

# How many pages of a list the cache keeps: the first and the ones after it by cursor, up to this one (cursors count
# the page they open, kit/cursor.py). Deeper pages are read from a replica: a walk through a whole list (a crawler,
# an export) would otherwise fill one key per page on the primary, each read once before the next bump.
LIST_CACHE_PAGES = 5


def page_is_cached(page: int | None) -> bool:
    """Whether the list page numbered `page` (1: the first; None: a cursor that does not count) is kept in the list
    cache."""
    return page is not None and page <= LIST_CACHE_PAGES


def list_scope(author: uuid.UUID | None, tag: str | None, cuisine: str | None, max_total_minutes: int | None) -> str:
    """The generation key that namespaces the cached pages of the list with these filters (values as the list's
    query compares them: tag and cuisine stripped and lower-cased)."""
    if author is not None:
        return lists_generation_key("author", author)
    if tag is not None:
        return lists_generation_key("tag", tag)
    if cuisine is not None:
        return lists_generation_key("cuisine", cuisine)
    if max_total_minutes is not None:
        return lists_generation_key("minutes")
    return lists_generation_key("all")


def private_recipes_scope(author: uuid.UUID) -> str:
    """The generation under which whether `author` has a private recipe is cached: their author scope, which every
    creation, deletion and visibility change of their recipes bumps."""
    return lists_generation_key("author", author)


def list_generations(
    author: uuid.UUID,
    cuisines: Iterable[str | None],
    tags: Iterable[str],
    *,
    fields: Set[str] | None,
    public: bool,
) -> list[str]:
    """The list generations a write of one recipe bumps after commit. `cuisines` and `tags`: its values before and
    after the write; `fields`: the fields an update sent (None: the recipe was created or deleted); `public`: it
    was public before or after.

    A recipe private throughout is in no shared page: only its author's scope moves (whether they have a private
    recipe is cached there). An update that sends no LIST_FIELDS moves nothing. Otherwise the author's, each tag's
    and each cuisine's scope move; `minutes` too when the total time may have changed; `all` only when the recipe
    enters or leaves every list (created, deleted, visibility sent): an unfiltered list's members change by nothing
    else."""
    if fields is not None and LIST_FIELDS.isdisjoint(fields):
        return []
    keys = [private_recipes_scope(author)]
    if not public:
        return keys
    keys += [lists_generation_key("tag", tag) for tag in tags]
    keys += [lists_generation_key("cuisine", cuisine) for cuisine in cuisines if cuisine is not None]
    membership = fields is None or "is_public" in fields
    if membership or not MINUTES_FIELDS.isdisjoint(fields or ()):
        keys.append(lists_generation_key("minutes"))
    if membership:
        keys.append(lists_generation_key("all"))
    return list(dict.fromkeys(keys))


def update_affects_lists(fields: Iterable[str]) -> bool:
    """True when an update that sent `fields` may move a recipe into or out of a cached list page."""
    return not LIST_FIELDS.isdisjoint(fields)
