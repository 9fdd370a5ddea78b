"""One plausible recipe of a cuisine: dish, ingredient lines, nutrition, times, steps, tags, title, description.

`compose_recipe` is pure given its random stream. The draws happen in a fixed order (dish, ingredients, lines,
times, words, tags, title, description, difficulty), so the same stream always gives the same recipe.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from potluck.seed import recipe_text
from potluck.seed.recipe_text import DAIRY_CATEGORIES, LIQUID_CATEGORIES, Draft, Roles, template_fields
from potluck.seed.vocabulary import CuisineSpec, DishSpec, IngredientSpec, vocabulary

# (ingredient index, quantity, unit, note)
Line = tuple[int, float | None, str | None, str | None]
# Per serving: calories, protein_g, fat_g, carbohydrates_g, fiber_g, sugar_g, sodium_mg.
Nutrition = tuple[float, float, float, float, float, float, float]

_COOK_MINUTES = {
    "simmer": (20, 60, 5),
    "braise": (90, 180, 30),
    "roast": (25, 60, 5),
    "bake": (25, 60, 5),
    "grill": (8, 25, 1),
    "stirfry": (8, 15, 1),
    "saute": (10, 25, 5),
    "fry": (10, 25, 5),
    "panfry": (10, 25, 5),
    "steam": (10, 25, 5),
    "raw": (0, 0, 1),
    "slowcook": (240, 480, 60),
    "chill": (0, 10, 5),
}
_SERVINGS = {
    "main": (2, 4, 4, 4, 6, 6, 8),
    "soup": (4, 4, 6, 8),
    "salad": (2, 4, 4, 6),
    "side": (4, 4, 6),
    "dessert": (6, 8, 8, 10, 12),
    "breakfast": (1, 2, 2, 4, 4),
    "snack": (4, 6, 8, 12),
}


@dataclass(slots=True)
class Composed:
    """One recipe's content, before ids and timestamps."""

    title: str
    description: str
    kind: str
    method: str
    servings: int
    prep_minutes: int
    cook_minutes: int
    difficulty: str
    lines: list[Line]
    steps: list[str]
    tags: list[int]
    nutrition: Nutrition


@cache
def _category_order() -> dict[str, int]:
    """Where an ingredient of each category stands in the ingredient list (others come last, at 12)."""
    return {
        **dict.fromkeys(vocabulary().meat_categories | {"soy", "legume", "pulse", "egg"}, 0),
        **dict.fromkeys(("grain", "fresh_pasta", "bread", "pastry"), 1),
        **dict.fromkeys(("vegetable", "starchy", "avocado", "fruit", "dried_fruit", "olive"), 2),
        "aromatic": 3,
        **dict.fromkeys(DAIRY_CATEGORIES, 4),
        **dict.fromkeys(("nut", "coconut", "chocolate", "cocoa", "sweetener", "baking"), 5),
        "spice": 6,
        **dict.fromkeys(("sauce", "soy_sauce", "vinegar"), 7),
        **dict.fromkeys(LIQUID_CATEGORIES, 8),
        "fat": 9,
        "herb": 10,
        "salt": 11,
    }


def _default_choices(cuisine: CuisineSpec, slot: str) -> tuple[str, ...]:
    return {
        "protein": cuisine.proteins,
        "veg": cuisine.vegetables,
        "veg2": cuisine.vegetables,
        "starch": cuisine.starches,
        "herb": cuisine.herbs,
        "fruit": cuisine.fruits,
    }[slot]


def _pick_slots(rng: random.Random, cuisine: CuisineSpec, dish: DishSpec) -> dict[str, str]:
    """An ingredient for each placeholder of the dish's pattern, none of them twice."""
    placeholders = template_fields(dish.pattern)
    picks: dict[str, str] = {}
    for slot in ("protein", "starch", "veg", "veg2", "fruit", "herb"):
        if slot not in placeholders:
            continue
        choices = dish.slots.get(slot) or _default_choices(cuisine, slot)
        taken = set(picks.values()) | set(dish.fixed)
        picks[slot] = rng.choice([c for c in choices if c not in taken] or list(choices))
    return picks


def _ingredient_names(
    rng: random.Random, cuisine: CuisineSpec, dish: DishSpec, picks: dict[str, str]
) -> dict[str, None]:
    """Every ingredient of the recipe (a dict for its order): the dish's, the cuisine's and the larder's."""
    vocab = vocabulary()
    kind, method = dish.kind, dish.method
    names: dict[str, None] = {}
    for slot in ("protein", "starch"):
        if slot in picks:
            names[picks[slot]] = None
    names.update(dict.fromkeys(dish.fixed))
    names.update(dict.fromkeys(picks.values()))
    if kind == "dessert":
        names.update(dict.fromkeys(vocab.dessert_base if method == "bake" else ("granulated sugar",)))
        names.update(dict.fromkeys(rng.sample(cuisine.sweets, min(2, len(cuisine.sweets)))))
    else:
        extra_veg = {"main": (0, 2), "soup": (1, 3), "salad": (1, 3)}.get(kind, (0, 1))
        names.update(dict.fromkeys(rng.sample(cuisine.vegetables, rng.randint(*extra_veg))))
        n_staples = rng.randint(2, 4) if kind in ("main", "soup") else rng.randint(1, 3)
        names.update(dict.fromkeys(rng.sample(cuisine.staples, min(n_staples, len(cuisine.staples)))))
        if rng.random() < 0.7:
            names[rng.choice(cuisine.herbs)] = None
    if kind != "dessert" or method in ("fry", "panfry", "saute"):
        names[cuisine.fat] = None
    if kind != "dessert":
        names.update(dict.fromkeys(vocab.pantry))
    return names


def _draft(rng: random.Random, cuisine: CuisineSpec) -> Draft:
    vocab = vocabulary()
    dish = rng.choice(cuisine.dishes)
    picks = _pick_slots(rng, cuisine, dish)
    names = _ingredient_names(rng, cuisine, dish, picks)
    cats = {n: vocab.ingredient_by_name[n].category for n in names}
    # Something to simmer in, if the dish is simmered and has no liquid yet.
    if dish.method in ("simmer", "braise", "slowcook") and not any(
        c in LIQUID_CATEGORIES or n == "canned tomatoes" for n, c in cats.items()
    ):
        meaty = any(c in vocab.meat_categories for c in cats.values())
        stock = rng.choice(("chicken stock", "vegetable stock", "water")) if meaty else "vegetable stock"
        names[stock] = None
        cats[stock] = vocab.ingredient_by_name[stock].category
    order = _category_order()
    ordered = sorted(names, key=lambda n: order.get(cats[n], 12))
    return Draft(cuisine=cuisine, dish=dish, picks=picks, names=names, cats=cats, ordered=ordered)


def _quantity(rng: random.Random, spec: IngredientSpec, factor: float) -> float:
    steps = round((spec.high - spec.low) / spec.step)
    q = spec.low + spec.step * rng.randint(0, steps)
    return round(max(spec.step, round(q * factor / spec.step) * spec.step), 2)


def _lines(rng: random.Random, ordered: Sequence[str], servings: int) -> tuple[list[Line], Nutrition]:
    """The ingredient lines, scaled to `servings`, and the nutrition per serving they add up to."""
    vocab = vocabulary()
    factor = servings / 4
    lines: list[Line] = []
    totals = [0.0] * 7
    for name in ordered:
        spec = vocab.ingredient_by_name[name]
        if spec.category == "salt" or name == "black pepper":
            if rng.random() < 0.35:
                lines.append((vocab.ingredient_index[name], None, None, "to taste"))
                continue
        qty = _quantity(rng, spec, factor)
        notes = vocab.notes_by_name.get(name, vocab.notes_by_category.get(spec.category))
        note = rng.choice(notes) if notes and rng.random() < 0.35 else None
        lines.append((vocab.ingredient_index[name], qty, spec.unit, note))
        grams = qty * spec.grams
        for k, per_100g in enumerate(vocab.nutrition_per_100g[spec.category]):
            totals[k] += grams * per_100g / 100
    per = [t / servings for t in totals]
    nutrition = (
        float(round(per[0])),
        round(per[1], 1),
        round(per[2], 1),
        round(per[3], 1),
        round(per[4], 1),
        round(per[5], 1),
        float(round(per[6])),
    )
    return lines, nutrition


def _minutes(rng: random.Random, method: str, n_lines: int) -> tuple[int, int]:
    """(prep, cook) minutes: cooking by method, preparation by how much there is to get ready."""
    lo, hi, step = _COOK_MINUTES[method]
    cook = step * rng.randint(lo // step, hi // step) if hi else 0
    prep = max(5, 5 * round((5 + 1.6 * n_lines + rng.gauss(0, 4) + (5 if method == "raw" else 0)) / 5))
    return prep, cook


def _diet(draft: Draft) -> tuple[bool, bool]:
    """(vegetarian, vegan), judged by category and by the lists of exceptions."""
    vocab = vocabulary()
    names, cats = draft.names.keys(), draft.cats.values()
    vegetarian = not any(c in vocab.meat_categories for c in cats) and not (names & vocab.not_vegetarian)
    vegan = vegetarian and not any(c in vocab.animal_categories for c in cats) and not (names & vocab.not_vegan)
    return vegetarian, vegan


def _tags(
    rng: random.Random, draft: Draft, roles: Roles, nutrition: Nutrition, total: int, author_tags: Sequence[str]
) -> tuple[list[int], bool]:
    """The recipe's tags (at most 7, as tag indexes) and whether it is vegan."""
    vocab = vocabulary()
    kind, method, cats = draft.dish.kind, draft.dish.method, draft.cats
    name_set = draft.names.keys()
    vegetarian, vegan = _diet(draft)
    # Tags that must be true of the recipe, each added with a probability (real authors tag unevenly) ...
    checks = (
        ("vegetarian", vegetarian and not vegan, 0.85),
        ("vegan", vegan, 0.9),
        ("vegetarian", vegan, 0.5),
        ("gluten-free", not (name_set & vocab.gluten), 0.5),
        ("dairy-free", not any(c in DAIRY_CATEGORIES for c in cats.values()) and "ghee" not in name_set, 0.3),
        ("high-protein", nutrition[1] >= 30, 0.6),
        ("low-carb", nutrition[3] <= 15 and kind != "dessert", 0.5),
        ("quick", total <= 30, 0.8),
        ("spicy", bool(name_set & vocab.spicy), 0.8),
        ("seafood", roles.protein is not None and cats[roles.protein] in ("fish", "shellfish"), 0.8),
    )
    tag_names: dict[str, None] = {name: None for name, ok, p in checks if ok and rng.random() < p}
    tag_names.update(dict.fromkeys(t for t in vocab.kind_tags[kind] if rng.random() < 0.7))
    for tag in vocab.method_tags[method]:
        if rng.random() < 0.5 and (tag != "quick" or total <= 30):
            tag_names[tag] = None
    # ... and tags that are a matter of taste: the cuisine's usual ones and the author's favourites.
    free_cuisine = [t for t in draft.cuisine.tags if t not in vocab.derived_tags]
    if free_cuisine and rng.random() < 0.5:
        tag_names[rng.choice(free_cuisine)] = None
    for tag in author_tags:
        if tag not in vocab.derived_tags and rng.random() < 0.5:
            tag_names[tag] = None
    return [vocab.tag_index[t] for t in list(tag_names)[:7]], vegan


def _difficulty(rng: random.Random, method: str, n_lines: int, n_steps: int, total: int) -> str:
    score = n_lines / 5 + n_steps / 3 + total / 60 + rng.gauss(0, 0.5)
    score += 1.0 if method in ("braise", "fry", "bake") else 0.0
    return "easy" if score < 4.2 else "medium" if score < 6.2 else "hard"


def compose_recipe(rng: random.Random, cuisine: CuisineSpec, author_tags: Sequence[str]) -> Composed:
    """A plausible recipe of `cuisine`; `author_tags` are tags the author likes to add. Pure given `rng`."""
    draft = _draft(rng, cuisine)
    kind, method = draft.dish.kind, draft.dish.method
    servings = rng.choice(_SERVINGS[kind])
    lines, nutrition = _lines(rng, draft.ordered, servings)
    prep, cook = _minutes(rng, method, len(lines))
    total = prep + cook
    roles = recipe_text.roles(draft)
    ctx = recipe_text.step_context(rng, draft, roles, cook)
    steps = recipe_text.steps(rng, draft, roles, ctx)
    tags, vegan = _tags(rng, draft, roles, nutrition, total, author_tags)
    return Composed(
        title=recipe_text.title(rng, draft, roles.herb, vegan, servings),
        description=recipe_text.description(rng, draft, roles, total, servings),
        kind=kind,
        method=method,
        servings=servings,
        prep_minutes=prep,
        cook_minutes=cook,
        difficulty=_difficulty(rng, method, len(lines), len(steps), total),
        lines=lines,
        steps=steps,
        tags=tags,
        nutrition=nutrition,
    )
