"""The seed vocabulary, typed: word lists for the demo data, read from the package data in `data/*.json`.

`vocabulary()` reads the files on first use and returns the same frozen `Vocabulary` from then on, so importing the
seeder (every `potluck` command does) costs nothing. Names an entry refers to (a cuisine's proteins, a dish's fixed
ingredients) must exist among the ingredients; the unit tests check that. Order matters wherever a list is a tuple:
the generator draws by position, so reordering a list changes the seeded data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")
Strings = tuple[str, ...]
# One alternative per tuple entry; a step or a title picks one of them.
Phases = tuple[Strings, ...]
# Per 100 g: kcal, protein g, fat g, carbohydrates g, fiber g, sugar g, sodium mg.
Nutrients = tuple[float, float, float, float, float, float, float]


class VocabularyError(ValueError):
    """A data file does not have the shape the loader expects."""


@dataclass(frozen=True, slots=True)
class IngredientSpec:
    name: str
    category: str
    unit: str | None
    low: float
    high: float
    step: float
    # Grams in one unit (for "g" it is 1): how nutrition is estimated.
    grams: float
    # How the ingredient reads in a title ("chicken thighs" -> "Chicken"); None: the name, title-cased.
    label: str | None = None


@dataclass(frozen=True, slots=True)
class DishSpec:
    """A dish a cuisine makes: a title pattern and how it is cooked.

    Placeholders in `pattern`: {protein} {veg} {veg2} {starch} {herb} {fruit}, filled from the cuisine's lists
    unless `slots` names other choices for that placeholder. `fixed` ingredients are always in the recipe.
    """

    pattern: str
    kind: str
    method: str
    fixed: Strings = ()
    slots: Mapping[str, Strings] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class CuisineSpec:
    name: str
    proteins: Strings
    vegetables: Strings
    starches: Strings
    # Aromatics, spices and sauces that give the cuisine its taste.
    staples: Strings
    herbs: Strings
    fruits: Strings
    fat: str
    # Signature sweet ingredients, added to the basic dessert base.
    sweets: Strings
    dishes: tuple[DishSpec, ...]
    tags: Strings
    places: Strings


@dataclass(frozen=True, slots=True)
class Vocabulary:
    # ingredients.json: rounded USDA-style averages per category (see Nutrients).
    nutrition_per_100g: Mapping[str, Nutrients]
    meat_categories: frozenset[str]
    animal_categories: frozenset[str]
    # Not meat by category, yet not for vegetarians (or vegans): a wrong "vegetarian" tag is worse than none.
    not_vegetarian: frozenset[str]
    not_vegan: frozenset[str]
    gluten: frozenset[str]
    spicy: frozenset[str]
    # Herbs that flavour a dish while it cooks and are not scattered over it at the end.
    cooking_herbs: frozenset[str]
    ingredients: tuple[IngredientSpec, ...]
    # Notes on a recipe line by ingredient category, and for particular ingredients ahead of their category's
    # (empty: no note makes sense).
    notes_by_category: Mapping[str, Strings]
    notes_by_name: Mapping[str, Strings]
    # cuisines.json. Cuisines are ordered by how popular they are on the site: preferences and recipe counts
    # follow this order. The bases are the basic larders, on top of the cuisine's own sweets.
    kinds: Strings
    methods: Strings
    dessert_base: Strings
    breakfast_base: Strings
    pantry: Strings
    cuisines: tuple[CuisineSpec, ...]
    # tags.json. Tags are ordered by how often users pick them as a taste; derived tags say something checkable
    # about a recipe, so only the generator's rules may put them on one.
    tags: Strings
    derived_tags: frozenset[str]
    kind_tags: Mapping[str, Strings]
    method_tags: Mapping[str, Strings]
    # wording.json. Title adjectives and description openers: (text, the methods it fits; empty: any).
    title_adjectives: tuple[tuple[str, Strings], ...]
    title_suffixes: Strings
    description_openers: tuple[tuple[str, Strings], ...]
    description_adjectives: Strings
    description_closers: Strings
    kind_words: Mapping[str, Strings]
    # steps.json. Placeholders come from the recipe being written; a template whose placeholders the recipe cannot
    # fill is skipped. Each method is a list of phases.
    prep_phases: Phases
    method_phases: Mapping[str, Phases]
    dessert_bake_phases: Phases
    starch_phases: Strings
    finish_phases: Phases
    serve_phrases: Strings
    # people.json. Review snippets combine with an opener and a closer so reviews do not repeat word for word.
    first_names: Strings
    last_names: Strings
    username_suffixes: Strings
    bio_templates: Strings
    review_openers: Strings
    reviews_by_stars: Mapping[int, Strings]
    review_closers: Strings
    # Derived from the above, for lookups.
    ingredient_by_name: Mapping[str, IngredientSpec] = field(init=False)
    ingredient_index: Mapping[str, int] = field(init=False)
    tag_index: Mapping[str, int] = field(init=False)
    cuisine_by_name: Mapping[str, CuisineSpec] = field(init=False)

    def __post_init__(self) -> None:
        # A frozen dataclass sets its own fields only through object.__setattr__.
        derive = object.__setattr__
        derive(self, "ingredient_by_name", MappingProxyType({spec.name: spec for spec in self.ingredients}))
        derive(self, "ingredient_index", MappingProxyType({spec.name: i for i, spec in enumerate(self.ingredients)}))
        derive(self, "tag_index", MappingProxyType({name: i for i, name in enumerate(self.tags)}))
        derive(self, "cuisine_by_name", MappingProxyType({c.name: c for c in self.cuisines}))


# -- reading the files ----------------------------------------------------------------------------------------


def _read(name: str) -> dict[str, Any]:
    text = (resources.files("potluck.seed") / "data" / name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise VocabularyError(f"{name}: expected an object at the top level")
    return data


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise VocabularyError(f"expected a string, not {value!r:.80}")
    return value


def _optional_string(value: object) -> str | None:
    return None if value is None else _string(value)


def _strings(value: object) -> Strings:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise VocabularyError(f"expected a list of strings, not {value!r:.80}")
    return tuple(value)


def _string_set(value: object) -> frozenset[str]:
    return frozenset(_strings(value))


def _phases(value: object) -> Phases:
    if not isinstance(value, list):
        raise VocabularyError(f"expected a list of lists of strings, not {value!r:.80}")
    return tuple(_strings(phase) for phase in value)


def _mapping(value: object, convert: Callable[[object], T]) -> Mapping[str, T]:
    if not isinstance(value, dict):
        raise VocabularyError(f"expected an object, not {value!r:.80}")
    return MappingProxyType({str(key): convert(item) for key, item in value.items()})


def _with_methods(value: object) -> tuple[tuple[str, Strings], ...]:
    if not isinstance(value, list):
        raise VocabularyError(f"expected a list of [text, [methods]] pairs, not {value!r:.80}")
    pairs: list[tuple[str, Strings]] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise VocabularyError(f"expected [text, [methods]], not {item!r:.80}")
        pairs.append((_string(item[0]), _strings(item[1])))
    return tuple(pairs)


def _number(value: object) -> float:
    # Ints stay ints: a quantity drawn from whole-number bounds is an int in the rows, as it always was.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VocabularyError(f"expected a number, not {value!r:.80}")
    return value


def _nutrients(value: object) -> Nutrients:
    if not isinstance(value, list) or len(value) != 7:
        raise VocabularyError(f"expected 7 nutrient figures, not {value!r:.80}")
    a, b, c, d, e, f, g = (_number(v) for v in value)
    return (a, b, c, d, e, f, g)


def _ingredient(raw: dict[str, Any]) -> IngredientSpec:
    # Any: each value is checked to be a number, which the type checker cannot follow through **.
    numbers: dict[str, Any] = {key: _number(raw[key]) for key in ("low", "high", "step", "grams")}
    return IngredientSpec(
        name=_string(raw["name"]),
        category=_string(raw["category"]),
        unit=_optional_string(raw["unit"]),
        label=_optional_string(raw.get("label")),
        **numbers,
    )


def _dish(raw: dict[str, Any]) -> DishSpec:
    return DishSpec(
        pattern=_string(raw["pattern"]),
        kind=_string(raw["kind"]),
        method=_string(raw["method"]),
        fixed=_strings(raw.get("fixed", [])),
        slots=_mapping(raw.get("slots", {}), _strings),
    )


def _cuisine(raw: dict[str, Any]) -> CuisineSpec:
    keys = ("proteins", "vegetables", "starches", "staples", "herbs", "fruits", "sweets", "tags", "places")
    lists: dict[str, Any] = {key: _strings(raw[key]) for key in keys}
    return CuisineSpec(
        name=_string(raw["name"]),
        fat=_string(raw["fat"]),
        dishes=tuple(_dish(dish) for dish in raw["dishes"]),
        **lists,
    )


def _ingredient_fields(data: dict[str, Any]) -> dict[str, Any]:
    sets = ("meat_categories", "animal_categories", "not_vegetarian", "not_vegan", "gluten", "spicy", "cooking_herbs")
    return {
        "nutrition_per_100g": _mapping(data["nutrition_per_100g"], _nutrients),
        **{key: _string_set(data[key]) for key in sets},
        # Grouped in the file (poultry and meat, dairy, vegetables, ...) for whoever edits it; one list here.
        "ingredients": tuple(_ingredient(item) for group in data["groups"] for item in group["ingredients"]),
        "notes_by_category": _mapping(data["notes_by_category"], _strings),
        "notes_by_name": _mapping(data["notes_by_name"], _strings),
    }


def _cuisine_fields(data: dict[str, Any]) -> dict[str, Any]:
    lists = ("kinds", "methods", "dessert_base", "breakfast_base", "pantry")
    return {
        **{key: _strings(data[key]) for key in lists},
        "cuisines": tuple(_cuisine(item) for item in data["cuisines"]),
    }


def _tag_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "tags": _strings(data["tags"]),
        "derived_tags": _string_set(data["derived_tags"]),
        "kind_tags": _mapping(data["kind_tags"], _strings),
        "method_tags": _mapping(data["method_tags"], _strings),
    }


def _wording_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "title_adjectives": _with_methods(data["title_adjectives"]),
        "title_suffixes": _strings(data["title_suffixes"]),
        "description_openers": _with_methods(data["description_openers"]),
        "description_adjectives": _strings(data["description_adjectives"]),
        "description_closers": _strings(data["description_closers"]),
        "kind_words": _mapping(data["kind_words"], _strings),
    }


def _step_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "prep_phases": _phases(data["prep_phases"]),
        "method_phases": _mapping(data["method_phases"], _phases),
        "dessert_bake_phases": _phases(data["dessert_bake_phases"]),
        "starch_phases": _strings(data["starch_phases"]),
        "finish_phases": _phases(data["finish_phases"]),
        "serve_phrases": _strings(data["serve_phrases"]),
    }


def _people_fields(data: dict[str, Any]) -> dict[str, Any]:
    lists = ("first_names", "last_names", "username_suffixes", "bio_templates", "review_openers", "review_closers")
    by_stars = _mapping(data["reviews_by_stars"], _strings)
    return {
        **{key: _strings(data[key]) for key in lists},
        # JSON object keys are strings; star counts are ints.
        "reviews_by_stars": MappingProxyType({int(stars): texts for stars, texts in by_stars.items()}),
    }


_FILES: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]], ...] = (
    ("ingredients.json", _ingredient_fields),
    ("cuisines.json", _cuisine_fields),
    ("tags.json", _tag_fields),
    ("wording.json", _wording_fields),
    ("steps.json", _step_fields),
    ("people.json", _people_fields),
)


@cache
def vocabulary() -> Vocabulary:
    """The seed vocabulary, read from the package data once per process."""
    fields: dict[str, Any] = {}
    for name, read in _FILES:
        try:
            fields.update(read(_read(name)))
        except (KeyError, TypeError, ValueError) as exc:
            raise VocabularyError(f"seed vocabulary {name}: {exc}") from exc
    return Vocabulary(**fields)
