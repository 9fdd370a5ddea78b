"""Which list generations a recipe write bumps (recipe/relevance.py), checked exhaustively over a small world: every
list whose members a write changes has its scope among the bumps, and the bumps stay narrow where they can."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import pytest

from potluck.cache.keys import LIST_BUCKETS, lists_generation_key
from potluck.recipe.relevance import list_generations, list_scope, private_recipes_scope

AUTHORS = (uuid.UUID(int=1), uuid.UUID(int=2))
CUISINES = (None, "thai", "italian")
TAG_SETS = (frozenset(), frozenset({"soup"}), frozenset({"soup", "quick"}), frozenset({"quick"}))
MINUTES = (10, 50)


@dataclass(frozen=True)
class State:
    """What a list filter reads of one recipe."""

    cuisine: str | None
    tags: frozenset[str]
    minutes: int
    public: bool


@dataclass(frozen=True)
class Filters:
    author: uuid.UUID | None
    tag: str | None
    cuisine: str | None
    max_total_minutes: int | None

    def matches(self, author: uuid.UUID, state: State | None) -> bool:
        """Whether a recipe in `state` (None: absent) is on this list as anyone sees it (public recipes only)."""
        return (
            state is not None
            and state.public
            and self.author in (None, author)
            and (self.tag is None or self.tag in state.tags)
            and self.cuisine in (None, state.cuisine)
            and (self.max_total_minutes is None or state.minutes <= self.max_total_minutes)
        )

    def scope(self) -> str:
        return list_scope(self.author, self.tag, self.cuisine, self.max_total_minutes)


STATES = [State(*values) for values in itertools.product(CUISINES, TAG_SETS, MINUTES, (True, False))]
LISTS = [
    Filters(*values) for values in itertools.product((None, *AUTHORS), (None, "soup", "quick"), CUISINES, (None, 30))
]


def _bumps(author: uuid.UUID, before: State | None, after: State | None, fields: set[str] | None) -> list[str]:
    states = [s for s in (before, after) if s is not None]
    return list_generations(
        author,
        [s.cuisine for s in states],
        [tag for s in states for tag in s.tags],
        fields=fields,
        public=any(s.public for s in states),
    )


def _sent(before: State, after: State) -> set[str]:
    """The RecipeUpdate fields an update from `before` to `after` sends (only those that change)."""
    fields = {"cuisine"} if before.cuisine != after.cuisine else set()
    fields |= {"tags"} if before.tags != after.tags else set()
    fields |= {"cook_minutes"} if before.minutes != after.minutes else set()
    fields |= {"is_public"} if before.public != after.public else set()
    return fields


def test_the_world_has_no_bucket_collisions() -> None:
    """The checks below rely on distinct values having distinct scopes (1 in LIST_BUCKETS collide in general)."""
    keys = {
        *(lists_generation_key("author", a) for a in AUTHORS),
        *(lists_generation_key("tag", t) for t in ("soup", "quick")),
        *(lists_generation_key("cuisine", c) for c in CUISINES if c is not None),
    }
    assert len(keys) == len(AUTHORS) + 2 + 2
    assert all(0 <= int(key.rsplit(":", 1)[1]) < LIST_BUCKETS for key in keys)


def test_every_list_a_creation_or_deletion_changes_has_its_scope_bumped() -> None:
    author = AUTHORS[0]
    for state in STATES:
        for before, after in ((None, state), (state, None)):
            bumps = _bumps(author, before, after, None)
            for filters in LISTS:
                if filters.matches(author, before) != filters.matches(author, after):
                    assert filters.scope() in bumps, (before, after, filters)


def test_every_list_an_update_changes_has_its_scope_bumped() -> None:
    author = AUTHORS[1]
    checked = 0
    for before, after in itertools.product(STATES, STATES):
        bumps = _bumps(author, before, after, _sent(before, after))
        for filters in LISTS:
            if filters.matches(author, before) != filters.matches(author, after):
                assert filters.scope() in bumps, (before, after, filters)
                checked += 1
    assert checked > 1000


def test_a_private_recipe_moves_only_its_authors_scope() -> None:
    """Whether the author has a private recipe is cached under their scope; no shared page holds the recipe."""
    author = AUTHORS[0]
    private = State("thai", frozenset({"soup"}), 10, False)
    assert _bumps(author, None, private, None) == [private_recipes_scope(author)]
    assert _bumps(author, private, None, None) == [private_recipes_scope(author)]
    assert _bumps(author, private, State("italian", frozenset(), 50, False), {"cuisine", "tags", "cook_minutes"}) == [
        private_recipes_scope(author)
    ]


@pytest.mark.parametrize("fields", [{"tags"}, {"cuisine"}, {"cook_minutes"}, {"prep_minutes", "servings"}])
def test_an_edit_that_keeps_the_recipe_public_leaves_the_unfiltered_lists_alone(fields: set[str]) -> None:
    """The newest-first list (and a page after it) changes only by creation, deletion or visibility."""
    bumps = list_generations(AUTHORS[0], ["thai"], ["soup"], fields=fields, public=True)
    assert lists_generation_key("all") not in bumps
    assert (lists_generation_key("minutes") in bumps) == ("cook_minutes" in fields or "prep_minutes" in fields)
    assert lists_generation_key("tag", "soup") in bumps


def test_an_edit_of_nothing_a_list_filters_on_bumps_nothing() -> None:
    assert list_generations(AUTHORS[0], ["thai"], ["soup"], fields={"title", "description"}, public=True) == []


def test_a_list_reads_its_most_selective_filter() -> None:
    a = AUTHORS[0]
    assert list_scope(a, "soup", "thai", 30) == lists_generation_key("author", a)
    assert list_scope(None, "soup", "thai", 30) == lists_generation_key("tag", "soup")
    assert list_scope(None, None, "thai", 30) == lists_generation_key("cuisine", "thai")
    assert list_scope(None, None, None, 30) == lists_generation_key("minutes")
    assert list_scope(None, None, None, None) == lists_generation_key("all")
