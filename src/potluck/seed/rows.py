"""A SeedPlan's rows, as a loader inserts them: dicts keyed by column, in batches, parents before children."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from potluck.seed.compose import compose_recipe
from potluck.seed.sampling import from_ms
from potluck.seed.vocabulary import vocabulary

if TYPE_CHECKING:
    from potluck.seed.generate import SeedPlan

Row = dict[str, Any]

# Insertion order that satisfies every foreign key; `batches()` yields tables in this order, except that follows,
# ratings and favorites (whose parents all exist by then) are interleaved.
TABLES = (
    "user_account",
    "ingredient",
    "tag",
    "recipe",
    "recipe_ingredient",
    "step",
    "recipe_tag",
    "nutrition",
    "follow",
    "rating",
    "favorite",
)


class Batch(NamedTuple):
    table: str
    rows: list[Row]


def batches(plan: SeedPlan) -> Iterator[Batch]:
    """Every row, in batches of at most `spec.batch_size`, parents before children."""
    yield from user_batches(plan)
    yield from catalog_batches(plan)
    yield from recipe_batches(plan)
    yield from activity_batches(plan)


def _chunked(size: int, table: str, rows: Iterable[Row]) -> Iterator[Batch]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield Batch(table, chunk)


def user_batches(plan: SeedPlan) -> Iterator[Batch]:
    domains = ("example.com", "example.org", "example.net")
    rows = (
        {
            "id": plan.user_ids[i],
            "email": f"{plan.usernames[i]}@{domains[i % 3]}",
            "username": plan.usernames[i],
            "password_hash": plan.spec.password_hash,
            "display_name": plan.display_names[i],
            "bio": plan.bios[i],
            "tastes": plan.declared[i],
            "avatar_image_key": None,
            "created_at": from_ms(plan.user_ms[i]),
            "updated_at": from_ms(plan.user_ms[i]),
            "version": 1,
        }
        for i in range(plan.spec.users)
    )
    return _chunked(plan.spec.batch_size, "user_account", rows)


def catalog_batches(plan: SeedPlan) -> Iterator[Batch]:
    vocab = vocabulary()
    size = plan.spec.batch_size
    yield from _chunked(
        size,
        "ingredient",
        ({"id": plan.ingredient_ids[i], "name": s.name} for i, s in enumerate(vocab.ingredients)),
    )
    yield from _chunked(size, "tag", ({"id": plan.tag_ids[i], "name": name} for i, name in enumerate(vocab.tags)))


def recipe_batches(plan: SeedPlan) -> Iterator[Batch]:
    """Recipes in chunks of `batch_size`, each chunk followed by its children."""
    size = plan.spec.batch_size
    for first in range(0, plan.spec.recipes, size):
        recipes: list[Row] = []
        children: dict[str, list[Row]] = {"recipe_ingredient": [], "step": [], "recipe_tag": [], "nutrition": []}
        for j in range(first, min(first + size, plan.spec.recipes)):
            _recipe_rows(plan, j, recipes, children)
        yield Batch("recipe", recipes)
        for table, rows in children.items():
            for start in range(0, len(rows), size):
                yield Batch(table, rows[start : start + size])


def _recipe_rows(plan: SeedPlan, j: int, recipes: list[Row], children: dict[str, list[Row]]) -> None:
    cuisine = vocabulary().cuisines[plan.recipe_cuisine[j]]
    c = compose_recipe(plan.recipe_rng(j), cuisine, plan.author_tags(plan.recipe_author[j]))
    rid = plan.recipe_ids[j]
    count = plan.rating_count[j]
    updated_ms = plan.recipe_updated_ms[j]
    recipes.append(
        {
            "id": rid,
            "author_id": plan.user_ids[plan.recipe_author[j]],
            "title": c.title,
            "description": c.description,
            "cuisine": cuisine.name.lower(),  # the API stores cuisines lower-cased
            "prep_minutes": c.prep_minutes,
            "cook_minutes": c.cook_minutes,
            "servings": c.servings,
            "difficulty": c.difficulty,
            "is_public": plan.recipe_public[j],
            "image_key": None,
            "rating_avg": plan.rating_sum[j] / count if count else None,
            "rating_count": count,
            "view_count": plan.view_count[j],
            "favorite_count": plan.favorite_count[j],
            "created_at": from_ms(plan.recipe_ms[j]),
            "updated_at": from_ms(updated_ms),
            "version": 1 if updated_ms == plan.recipe_ms[j] else 2,
        }
    )
    children["recipe_ingredient"].extend(
        {
            "recipe_id": rid,
            "position": pos,
            "ingredient_id": plan.ingredient_ids[ing],
            "quantity": qty,
            "unit": unit,
            "note": note,
        }
        for pos, (ing, qty, unit, note) in enumerate(c.lines, start=1)
    )
    children["step"].extend(
        {"recipe_id": rid, "position": pos, "text": text} for pos, text in enumerate(c.steps, start=1)
    )
    children["recipe_tag"].extend({"recipe_id": rid, "tag_id": plan.tag_ids[t]} for t in c.tags)
    nutrients = ("calories", "protein_g", "fat_g", "carbohydrates_g", "fiber_g", "sugar_g", "sodium_mg")
    children["nutrition"].append({"recipe_id": rid, **dict(zip(nutrients, c.nutrition, strict=True))})


def _activity_rows(plan: SeedPlan, u: int) -> dict[str, list[Row]]:
    """User u's follows, ratings and favorites, as rows."""
    acts = plan.interactions(u)
    uid = plan.user_ids[u]
    ids = plan.recipe_ids
    return {
        "follow": [
            {"follower_id": uid, "followee_id": plan.user_ids[v], "created_at": from_ms(ms)} for v, ms in acts.follows
        ],
        "rating": [
            {
                "user_id": uid,
                "recipe_id": ids[j],
                "stars": stars,
                "review": review,
                "created_at": from_ms(created),
                "updated_at": from_ms(updated),
            }
            for j, stars, review, created, updated in acts.ratings
        ],
        "favorite": [{"user_id": uid, "recipe_id": ids[j], "created_at": from_ms(ms)} for j, ms in acts.favorites],
    }


def activity_batches(plan: SeedPlan) -> Iterator[Batch]:
    """Follows, ratings and favorites, user by user; each table's batches are full except its last."""
    size = plan.spec.batch_size
    buffers: dict[str, list[Row]] = {"follow": [], "rating": [], "favorite": []}
    for u in range(plan.spec.users):
        for table, rows in _activity_rows(plan, u).items():
            buffers[table].extend(rows)
        for table, rows in buffers.items():
            while len(rows) >= size:
                yield Batch(table, rows[:size])
                del rows[:size]
    for table, rows in buffers.items():
        for start in range(0, len(rows), size):
            yield Batch(table, rows[start : start + size])
