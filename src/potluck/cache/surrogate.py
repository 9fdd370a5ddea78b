"""Surrogate keys: which cached data a shared-cache (edge) response holds, so a write can purge exactly it.

The keys are the cache's own keys (`cache/keys.py`): a write that invalidates `recipe:{id}` in the API's tiers
purges the edge objects tagged `recipe:{id}` with the same call (`Cache.invalidate` → `EdgePurger`). A page of
recipes carries every recipe and author on it plus its own key: the search generation for searches,
`RECIPE_LIST_KEY` for the newest-first lists (every recipe write purges it: membership of a filtered list can
change with any edit). The header's name is a setting: `Surrogate-Key` (Fastly, and what deploy/varnish reads),
`Cache-Tag` (Cloudflare). The edge strips it before the client sees it.

Without an edge (`edge.purge_urls` empty, the embedded default) no header is emitted: nothing would read it, and
it would tell every client the cache's internal key names for nothing (`SurrogateKeys.from_settings`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from potluck.cache.keys import SEARCH_GENERATION_KEY, recipe_key, trending_key, user_key
from potluck.config import EdgeSettings

DEFAULT_HEADER = "Surrogate-Key"
# Purged by every recipe write: the list pages (GET /recipes, any filter) whose membership it may change.
RECIPE_LIST_KEY = "list:recipes"


# A recipe on a page: its id and its author's.
Owned = tuple[uuid.UUID | str, uuid.UUID | str]


def page_keys(own_key: str, items: Iterable[Owned]) -> list[str]:
    """The list's own key, then each recipe on the page and its author (embedded), without repeats."""
    keys = {own_key: None}
    for recipe_id, author_id in items:
        keys[recipe_key(recipe_id)] = None
        keys[user_key(author_id)] = None
    return list(keys)


class SurrogateKeys:
    """The surrogate-key header of each kind of cacheable response (only anonymous reads are cacheable)."""

    def __init__(self, header: str = DEFAULT_HEADER, *, enabled: bool = True) -> None:
        self.header = header
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> SurrogateKeys:
        """Emitting only when edge nodes are configured: the embedded default sends no surrogate keys."""
        return cls(settings.key_header, enabled=bool(settings.purge_urls))

    def headers(self, keys: Iterable[str]) -> dict[str, str]:
        if not self.enabled:
            return {}
        return {self.header: " ".join(keys)}

    def recipe(self, recipe_id: uuid.UUID | str, author_id: uuid.UUID | str) -> dict[str, str]:
        return self.headers((recipe_key(recipe_id), user_key(author_id)))

    def _page(self, own_key: str, items: Iterable[Owned]) -> dict[str, str]:
        # Without an edge, not even built: a page's 40 keys cost more than the rest of its headers.
        return self.headers(page_keys(own_key, items)) if self.enabled else {}

    def recipe_list(self, items: Iterable[Owned]) -> dict[str, str]:
        return self._page(RECIPE_LIST_KEY, items)

    def search(self, items: Iterable[Owned]) -> dict[str, str]:
        return self._page(SEARCH_GENERATION_KEY, items)

    def trending(self, period: str, items: Iterable[Owned]) -> dict[str, str]:
        return self._page(trending_key(period), items)

    def profile(self, user_id: uuid.UUID | str) -> dict[str, str]:
        return self.headers((user_key(user_id),))
