"""Every cache key is built here. Digests are stable (blake2b), never Python's salted hash()."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from potluck.kit.digest import stable_digest

# Keys without a TTL must never be evicted (see deploy/redis/cache.conf): generations live here.
SEARCH_GENERATION_KEY = "gen:search"
# Recipe lists have one generation per scope, not one for all (recipe/relevance.py says which a list reads and
# which a write bumps): `gen:lists:all`, `gen:lists:minutes`, and one per bucket of authors, tags and cuisines.
LISTS_GENERATION_PREFIX = "gen:lists"
# Authors, tags and cuisines share LIST_BUCKETS generations per kind (a stable digest picks one): bounded keys
# that never expire, and a bucket bumped by one author's writes rarely holds another list that is being read.
LIST_BUCKETS = 1024
# Search pages of an exact match are namespaced by the generations of their query's words (search/scope.py): a
# lexeme's generation is one of SEARCH_BUCKETS (a stable digest picks it), bumped by every write that may move a
# recipe holding that lexeme into or out of a result.
SEARCH_SCOPE_PREFIX = "gen:search:lex"
SEARCH_BUCKETS = 4096
# Every exact search page reads it too: a write whose vector holds more lexemes than a write may bump one by one
# (recipe/relevance.py, MAX_SEARCH_SCOPES) bumps this instead.
SEARCH_EPOCH_KEY = f"{SEARCH_SCOPE_PREFIX}:all"
# How long "this event's bump is done" is remembered: far longer than an outbox delivery takes.
GENERATION_MARKER_TTL_MS = 3_600_000


# A generation a write bumps after commit, and the outbox event owing it (None: bumped every time it is asked).
Bump = tuple[str, int | None]


def generation_marker(key: str, event_id: int) -> str:
    """Marks that the bump of generation `key` owed for outbox event `event_id` has happened."""
    return f"{key}:done:{event_id}"


INVALIDATION_CHANNEL = "potluck:invalidate"


def recipe_key(recipe_id: uuid.UUID | str) -> str:
    return f"recipe:{recipe_id}"


def user_key(user_id: uuid.UUID | str) -> str:
    return f"user:{user_id}"


def trending_key(period: str) -> str:
    return f"trending:{period}"


def recommend_key(user_id: uuid.UUID | str) -> str:
    return f"recommend:{user_id}"


def search_key(generation: int, query: Mapping[str, object]) -> str:
    """`search:{hash}` in the design; the generation is part of the hash's namespace, so one INCR invalidates all."""
    return f"search:{generation}:{stable_digest(query)}"


def search_scope_key(lexeme: str) -> str:
    """The generation of the search pages whose query needs `lexeme` (a PostgreSQL text-search lexeme): its
    bucket's, `gen:search:lex:2817`."""
    return f"{SEARCH_SCOPE_PREFIX}:{int(stable_digest(['lexeme', lexeme], 4), 16) % SEARCH_BUCKETS}"


def scoped_search_key(kind: str, scopes: Mapping[str, int], query: Mapping[str, object]) -> str:
    """A search page namespaced by several generations, each named with its value (`scopes`: generation key ->
    value), so two readers that chose different generations for one query never share a page: `kind` `x` (an exact
    match) or `f` (the typo fallback). Never equal to a `search_key`, whose namespace is a number."""
    names = ".".join(f"{key.rsplit(':', 1)[-1]}-{value}" for key, value in scopes.items())
    return f"search:{kind}{names}:{stable_digest(query)}"


def lists_generation_key(scope: str, value: object = None) -> str:
    """The generation of one scope of recipe lists: `gen:lists:all`, `gen:lists:minutes`, or for a value of a
    kind (`author`, `tag`, `cuisine`) its bucket's, `gen:lists:tag:417`."""
    if value is None:
        return f"{LISTS_GENERATION_PREFIX}:{scope}"
    bucket = int(stable_digest([scope, str(value)], 4), 16) % LIST_BUCKETS
    return f"{LISTS_GENERATION_PREFIX}:{scope}:{bucket}"


def list_key(scope: str, generation: int, query: Mapping[str, object]) -> str:
    """A cached page of a recipe list, under the generation of its scope (`lists_generation_key`): one INCR of
    that generation makes every page under it unreachable."""
    return f"list:{scope.removeprefix(LISTS_GENERATION_PREFIX + ':')}:{generation}:{stable_digest(query)}"


def refresh_lock_key(key: str) -> str:
    return f"{key}|refresh"


def ack_key(message_id: str) -> str:
    return f"potluck:ack:{message_id}"
