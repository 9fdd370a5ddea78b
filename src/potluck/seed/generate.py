"""Deterministic demo data as plain rows: pure functions, no I/O.

`SeedPlan(spec)` first decides what must be known before the first row is written: when each user joined and
what they like, each recipe's author, cuisine and tags, and every user's views, ratings, favorites and follows,
so that each recipe row carries aggregates that match its child rows exactly. `SeedPlan.batches()` then streams
rows in an order a loader can insert as is (parents before children).

Memory stays small: per recipe the plan keeps a handful of numbers; recipe text and the users' interactions are
generated twice (once to count, once to emit) from per-recipe and per-user random streams, which is what makes a
second generation produce the same rows.

Popularity follows a Zipf law: each public recipe gets a random popularity rank and weight `rank ** -s`, and all
views, ratings and favorites are drawn with those weights, mostly from the pools of recipes that match the user's
cuisines and tags.
"""

from __future__ import annotations

import itertools
import math
import random
import string
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, TypeVar

from potluck.seed import vocabulary as vocab

Row = dict[str, Any]
T = TypeVar("T")

# Insertion order that satisfies every foreign key; `SeedPlan.batches()` yields tables in this order, except that
# follows, ratings and favorites (whose parents all exist by then) are interleaved.
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DAY_MS = 86_400_000

# Shape of the data set; the tests pin the properties these produce, not the numbers themselves.
RECIPE_ZIPF_S = 1.07
CUISINE_ZIPF_S = 0.6
TAG_ZIPF_S = 0.5
AUTHOR_ZIPF_S = 0.6
AUTHOR_SHARE = 0.3
TASTE_CUISINE_SHARE = 0.7
TASTE_TAG_SHARE = 0.15
ANONYMOUS_VIEWS_PER_RECIPE = 30


def zipf_weights(n: int, s: float) -> list[float]:
    """Weights proportional to 1/k**s for ranks k = 1..n, normalised to sum to 1."""
    if n < 0:
        raise ValueError("n must not be negative")
    raw = [k**-s for k in range(1, n + 1)]
    total = math.fsum(raw)
    return [w / total for w in raw]


def to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("naive datetime: seed timestamps are timezone-aware UTC")
    return (ts - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def uuid7_at(ts: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 (RFC 9562) whose 48-bit time field is `ts` in milliseconds and whose random bits come from `rng`."""
    ms = to_ms(ts)
    if not 0 <= ms < 1 << 48:
        raise ValueError("timestamp outside the UUIDv7 range")
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


@dataclass(frozen=True, slots=True)
class SeedSpec:
    users: int
    recipes: int
    seed: int
    password_hash: str
    # The data set's "now": everything happens in the `days` before it. Same spec, same rows (ids included).
    end: datetime
    days: int = 730
    private_share: float = 0.05
    batch_size: int = 2000

    def __post_init__(self) -> None:
        if self.users < 0 or self.recipes < 0:
            raise ValueError("users and recipes must not be negative")
        if self.recipes and not self.users:
            raise ValueError("recipes need at least one user to author them")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        if self.days < 2 or self.batch_size < 1:
            raise ValueError("days must be at least 2 and batch_size at least 1")
        if not 0.0 <= self.private_share <= 1.0:
            raise ValueError("private_share must be between 0 and 1")


class Batch(NamedTuple):
    table: str
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class Taste:
    cuisines: tuple[str, ...]
    tags: tuple[str, ...]


class _Pool:
    """Weighted draws with replacement: O(log n) each."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, items: list[int], weights: Iterable[float]) -> None:
        self.items = items
        self.cum = list(itertools.accumulate(weights))
        self.total = self.cum[-1] if self.cum else 0.0

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: random.Random) -> int:
        i = bisect_right(self.cum, rng.random() * self.total)
        return self.items[min(i, len(self.items) - 1)]


def _weighted_sample(rng: random.Random, items: Sequence[T], weights: Sequence[float], k: int) -> list[T]:
    """k distinct items, drawn one by one with the given weights (small lists only)."""
    idx = list(range(len(items)))
    w = list(weights)
    out: list[T] = []
    for _ in range(min(k, len(items))):
        i = rng.choices(range(len(idx)), weights=w)[0]
        out.append(items[idx.pop(i)])
        w.pop(i)
    return out


def _spread_ms(rng: random.Random, n: int, lo: int, hi: int, shape: float) -> list[int]:
    """n strictly increasing instants in [lo, hi], denser towards hi when shape < 1 (the site grows)."""
    times = sorted(lo + int((hi - lo) * rng.random() ** shape) for _ in range(n))
    for i in range(1, n):
        if times[i] <= times[i - 1]:
            times[i] = times[i - 1] + 1
    for i in range(n - 1, -1, -1):  # only if bumping ran past hi: pull back, still strictly increasing
        cap = hi if i == n - 1 else times[i + 1] - 1
        if times[i] > cap:
            times[i] = cap
    return times


def _after(rng: random.Random, lo: int, hi: int, mean_days: float) -> int:
    """An instant in [lo, hi], usually soon after lo: activity clusters right after a recipe is published."""
    if hi <= lo:
        return lo
    t = lo + int(rng.expovariate(1.0 / (mean_days * _DAY_MS)))
    return t if t <= hi else lo + int(rng.random() * (hi - lo))


@cache
def _fields(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _label(name: str) -> str:
    spec = vocab.INGREDIENT_BY_NAME[name]
    return spec.label or name.title()


_INGREDIENT_INDEX = {spec.name: i for i, spec in enumerate(vocab.INGREDIENTS)}
_TAG_INDEX = {name: i for i, name in enumerate(vocab.TAGS)}
_PROTEIN_CATEGORIES = vocab.MEAT_CATEGORIES | {"soy"}
_DAIRY_CATEGORIES = frozenset({"cheese", "milk", "cream", "yogurt", "butter", "condensed"})
_LIQUID_CATEGORIES = frozenset({"stock", "wine", "water", "coconut"})
_NOT_A_SIDE = frozenset({"all-purpose flour", "bread flour", "cornstarch", "masa harina", "panko breadcrumbs"})
_NOT_A_VEG = frozenset({"tomato paste", "canned tomatoes", "salsa"})
_BATTER = (
    "all-purpose flour",
    "bread flour",
    "masa harina",
    "cornstarch",
    "eggs",
    "milk",
    "lager",
    "panko breadcrumbs",
)
_CATEGORY_ORDER = {
    **dict.fromkeys(vocab.MEAT_CATEGORIES | {"soy", "legume", "pulse", "egg"}, 0),
    **dict.fromkeys(("grain", "fresh_pasta", "bread", "pastry"), 1),
    **dict.fromkeys(("vegetable", "starchy", "avocado", "fruit", "dried_fruit", "olive"), 2),
    "aromatic": 3,
    **dict.fromkeys(_DAIRY_CATEGORIES, 4),
    **dict.fromkeys(("nut", "coconut", "chocolate", "cocoa", "sweetener", "baking"), 5),
    "spice": 6,
    **dict.fromkeys(("sauce", "soy_sauce", "vinegar"), 7),
    **dict.fromkeys(_LIQUID_CATEGORIES, 8),
    "fat": 9,
    "herb": 10,
    "salt": 11,
}
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
_OVEN = {"braise": (150, 170), "roast": (200, 220), "bake": (180, 200)}
_SERVINGS = {
    "main": (2, 4, 4, 4, 6, 6, 8),
    "soup": (4, 4, 6, 8),
    "salad": (2, 4, 4, 6),
    "side": (4, 4, 6),
    "dessert": (6, 8, 8, 10, 12),
    "breakfast": (1, 2, 2, 4, 4),
    "snack": (4, 6, 8, 12),
}
_TITLE_OPENERS = frozenset(
    {adj.split()[0] for adj, _ in vocab.TITLE_ADJECTIVES}
    | {"Classic", "Slow-Cooker", "Sheet-Pan", "Creamy", "Baked", "Grilled", "Roast", "Slow-Roasted", "Steamed"}
)


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
    # (ingredient index, quantity, unit, note)
    lines: list[tuple[int, float | None, str | None, str | None]]
    steps: list[str]
    tags: list[int]
    # per serving: calories, protein_g, fat_g, carbohydrates_g, fiber_g, sugar_g, sodium_mg
    nutrition: tuple[float, float, float, float, float, float, float]


def _default_choices(cuisine: vocab.CuisineSpec, slot: str) -> tuple[str, ...]:
    return {
        "protein": cuisine.proteins,
        "veg": cuisine.vegetables,
        "veg2": cuisine.vegetables,
        "starch": cuisine.starches,
        "herb": cuisine.herbs,
        "fruit": cuisine.fruits,
    }[slot]


def _quantity(rng: random.Random, spec: vocab.IngredientSpec, factor: float) -> float:
    steps = round((spec.high - spec.low) / spec.step)
    q = spec.low + spec.step * rng.randint(0, steps)
    return round(max(spec.step, round(q * factor / spec.step) * spec.step), 2)


def _hours_text(minutes: int) -> str:
    whole, half = divmod(minutes, 60)
    if half >= 30:
        return f"{whole}½" if whole else "½"
    return str(max(whole, 1))


def compose_recipe(rng: random.Random, cuisine: vocab.CuisineSpec, author_tags: Sequence[str]) -> Composed:
    """A plausible recipe of `cuisine`; `author_tags` are tags the author likes to add. Pure given `rng`."""
    dish = rng.choice(cuisine.dishes)
    kind, method = dish.kind, dish.method
    placeholders = _fields(dish.pattern)
    picks: dict[str, str] = {}
    for slot in ("protein", "starch", "veg", "veg2", "fruit", "herb"):
        if slot not in placeholders:
            continue
        choices = dish.slots.get(slot) or _default_choices(cuisine, slot)
        taken = set(picks.values()) | set(dish.fixed)
        picks[slot] = rng.choice([c for c in choices if c not in taken] or list(choices))

    names: dict[str, None] = {}
    for slot in ("protein", "starch"):
        if slot in picks:
            names[picks[slot]] = None
    names.update(dict.fromkeys(dish.fixed))
    names.update(dict.fromkeys(picks.values()))
    if kind == "dessert":
        names.update(dict.fromkeys(vocab.DESSERT_BASE if method == "bake" else ("granulated sugar",)))
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
        names.update(dict.fromkeys(vocab.PANTRY))
    cats = {n: vocab.INGREDIENT_BY_NAME[n].category for n in names}
    if method in ("simmer", "braise", "slowcook") and not any(
        c in _LIQUID_CATEGORIES or n == "canned tomatoes" for n, c in cats.items()
    ):
        meaty = any(c in vocab.MEAT_CATEGORIES for c in cats.values())
        stock = rng.choice(("chicken stock", "vegetable stock", "water")) if meaty else "vegetable stock"
        names[stock] = None
        cats[stock] = vocab.INGREDIENT_BY_NAME[stock].category
    ordered = sorted(names, key=lambda n: _CATEGORY_ORDER.get(cats[n], 12))

    servings = rng.choice(_SERVINGS[kind])
    factor = servings / 4
    lines: list[tuple[int, float | None, str | None, str | None]] = []
    totals = [0.0] * 7
    for name in ordered:
        spec = vocab.INGREDIENT_BY_NAME[name]
        if spec.category == "salt" or name == "black pepper":
            if rng.random() < 0.35:
                lines.append((_INGREDIENT_INDEX[name], None, None, "to taste"))
                continue
        qty = _quantity(rng, spec, factor)
        notes = vocab.NOTES_BY_NAME.get(name, vocab.NOTES_BY_CATEGORY.get(spec.category))
        note = rng.choice(notes) if notes and rng.random() < 0.35 else None
        lines.append((_INGREDIENT_INDEX[name], qty, spec.unit, note))
        grams = qty * spec.grams
        for k, per_100g in enumerate(vocab.NUTRITION_PER_100G[spec.category]):
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

    lo, hi, step = _COOK_MINUTES[method]
    cook = step * rng.randint(lo // step, hi // step) if hi else 0
    prep = max(5, 5 * round((5 + 1.6 * len(lines) + rng.gauss(0, 4) + (5 if method == "raw" else 0)) / 5))
    total = prep + cook

    # What the step templates can refer to.
    protein = picks.get("protein") or next((n for n in ordered if cats[n] in _PROTEIN_CATEGORIES), None)
    starch = picks.get("starch") or next(
        (n for n in ordered if cats[n] in ("grain", "fresh_pasta", "bread") and n not in _NOT_A_SIDE), None
    )
    herb = next((n for n in ordered if cats[n] == "herb" and n not in vocab.COOKING_HERBS), None)
    acid = next((n for n in ordered if n in ("lemon", "lime") or cats[n] == "vinegar"), None)
    fat = cuisine.fat if cuisine.fat in names else None
    sauces = [n for n in ordered if cats[n] in ("sauce", "soy_sauce", "vinegar")][:3]
    ctx: dict[str, str] = {
        "short": str(rng.randint(3, 8)),
        "long": str(max(cook, 10)),
        "marinate": str(rng.choice((15, 20, 30, 60))),
        "hours": _hours_text(cook) if method in ("braise", "slowcook") else str(rng.choice((2, 4, 6))),
    }
    if method in _OVEN or (kind == "dessert" and method == "bake"):
        ctx["temp"] = str(5 * (rng.randint(*_OVEN.get(method, (170, 180))) // 5))
    options: dict[str, str | None] = {
        "protein": protein,
        "starch": starch,
        "herb": herb,
        "acid": acid,
        "fat": fat,
        "aromatics": _join([n for n in ordered if cats[n] == "aromatic"][:3]),
        "vegs": _join(
            [
                n
                for n in ordered
                if cats[n] in ("vegetable", "starchy", "avocado") and n != starch and n not in _NOT_A_VEG
            ][:3]
        ),
        "spices": _join([n for n in ordered if cats[n] == "spice" and n != "black pepper"][:3]),
        "sauces": _join(sauces),
        "liquid": next((n for n in ordered if cats[n] in _LIQUID_CATEGORIES or n == "canned tomatoes"), None),
        "topping": _join([n for n in ordered if cats[n] == "cheese" or n == "panko breadcrumbs"][:2]),
        "batter": _join([n for n in ordered if n in _BATTER][:3]),
        "base": _join([n for n in ordered if cats[n] in (_DAIRY_CATEGORIES | {"egg", "chocolate"})][:3]),
        "extras": _join(
            [
                n
                for n in ordered
                if cats[n] in ("fruit", "dried_fruit", "nut", "cocoa", "chocolate", "water")
                and n not in ("lemon", "lime")
            ][:2]
        ),
        "dry": _join([n for n in ordered if cats[n] in ("grain", "baking", "cocoa", "spice")][:4]),
    }
    if fat and (acid or sauces):
        options["dressing"] = _join([fat, *([acid] if acid else []), *sauces[:1]])
    ctx.update({k: v for k, v in options.items() if v})
    serve = [s for s in vocab.SERVE_PHRASES if "{herb}" not in s or herb]
    if starch and cats[starch] in ("grain", "bread", "fresh_pasta") and starch not in dish.fixed:
        serve.append("with the {starch}")
    ctx["serve"] = rng.choice(serve).format_map(ctx)

    phases: list[tuple[str, ...]]
    if kind == "dessert" and method == "bake":
        phases = list(vocab.DESSERT_BAKE_PHASES)
    else:
        prep_phases = [] if kind == "dessert" else [p for p in vocab.PREP_PHASES if rng.random() < 0.5]
        phases = prep_phases + list(vocab.METHOD_PHASES[method])
    steps: list[str] = []
    for phase in phases:
        usable = [t for t in phase if _fields(t) <= ctx.keys()]
        if usable:
            steps.append(rng.choice(usable).format_map(ctx))
    if kind != "dessert":
        if starch and cats[starch] in ("grain", "fresh_pasta") and method not in ("bake", "raw"):
            steps.append(rng.choice(vocab.STARCH_PHASES).format_map(ctx))
        for phase in vocab.FINISH_PHASES:
            usable = [t for t in phase if _fields(t) <= ctx.keys()]
            if usable and rng.random() < 0.7:
                steps.append(rng.choice(usable).format_map(ctx))
    if not steps:
        steps.append("Combine everything, season to taste and serve.")

    # Tags that must be true of the recipe, each added with a probability (real authors tag unevenly) ...
    name_set = names.keys()
    vegetarian = not any(c in vocab.MEAT_CATEGORIES for c in cats.values()) and not (name_set & vocab.NOT_VEGETARIAN)
    vegan = (
        vegetarian and not any(c in vocab.ANIMAL_CATEGORIES for c in cats.values()) and not (name_set & vocab.NOT_VEGAN)
    )
    checks = (
        ("vegetarian", vegetarian and not vegan, 0.85),
        ("vegan", vegan, 0.9),
        ("vegetarian", vegan, 0.5),
        ("gluten-free", not (name_set & vocab.GLUTEN), 0.5),
        ("dairy-free", not any(c in _DAIRY_CATEGORIES for c in cats.values()) and "ghee" not in name_set, 0.3),
        ("high-protein", nutrition[1] >= 30, 0.6),
        ("low-carb", nutrition[3] <= 15 and kind != "dessert", 0.5),
        ("quick", total <= 30, 0.8),
        ("spicy", bool(name_set & vocab.SPICY), 0.8),
        ("seafood", protein is not None and cats[protein] in ("fish", "shellfish"), 0.8),
    )
    tag_names: dict[str, None] = {name: None for name, ok, p in checks if ok and rng.random() < p}
    tag_names.update(dict.fromkeys(t for t in vocab.KIND_TAGS[kind] if rng.random() < 0.7))
    for tag in vocab.METHOD_TAGS[method]:
        if rng.random() < 0.5 and (tag != "quick" or total <= 30):
            tag_names[tag] = None
    # ... and tags that are a matter of taste: the cuisine's usual ones and the author's favourites.
    free_cuisine = [t for t in cuisine.tags if t not in vocab.DERIVED_TAGS]
    if free_cuisine and rng.random() < 0.5:
        tag_names[rng.choice(free_cuisine)] = None
    for tag in author_tags:
        if tag not in vocab.DERIVED_TAGS and rng.random() < 0.5:
            tag_names[tag] = None
    tags = [_TAG_INDEX[t] for t in list(tag_names)[:7]]

    title = dish.pattern.format_map({slot: _label(name) for slot, name in picks.items()})
    # Dishes with a fixed name get dressed up more often, or every Tiramisu would be called just that.
    fixed_name = not placeholders
    if title.split()[0] not in _TITLE_OPENERS and rng.random() < (0.55 if fixed_name else 0.3):
        fitting = [adj for adj, methods in vocab.TITLE_ADJECTIVES if not methods or method in methods]
        title = f"{rng.choice(fitting)} {title}"
    if fixed_name and rng.random() < 0.25:
        title = f"{title}{rng.choice(vocab.TITLE_SUFFIXES)}"
    if herb and " with " not in title and rng.random() < 0.15:
        title = f"{title} with {_label(herb)}"
    if vegan and rng.random() < 0.2:
        title = f"{title} (Vegan)"
    elif servings == 2 and kind == "main" and rng.random() < 0.3:
        title = f"{title} for Two"

    adjectives = rng.sample(vocab.DESCRIPTION_ADJECTIVES, 2)
    main = protein or picks.get("veg") or next(iter(dish.fixed), None) or ordered[0]
    veg = picks.get("veg") if picks.get("veg") != main else None
    words = {
        "adj": adjectives[0],
        "Adj": adjectives[0].capitalize(),
        "adj2": adjectives[1],
        "cuisine": cuisine.name,
        "kind": rng.choice(vocab.KIND_WORDS[kind]),
        "main": main,
        "with_veg": f" and {veg}" if veg else "",
        "total": str(total),
        "place": rng.choice(cuisine.places),
        "servings": str(servings),
        "herb": herb or "",
    }
    openers = [t for t, methods in vocab.DESCRIPTION_OPENERS if not methods or method in methods]
    description = rng.choice(openers).format_map(words)
    closers = [c for c in vocab.DESCRIPTION_CLOSERS if "{herb}" not in c or herb]
    if rng.random() < 0.7:
        description = f"{description} {rng.choice(closers).format_map(words)}"

    score = len(lines) / 5 + len(steps) / 3 + total / 60 + rng.gauss(0, 0.5)
    score += 1.0 if method in ("braise", "fry", "bake") else 0.0
    difficulty = "easy" if score < 4.2 else "medium" if score < 6.2 else "hard"

    return Composed(
        title=title[:200],
        description=description,
        kind=kind,
        method=method,
        servings=servings,
        prep_minutes=prep,
        cook_minutes=cook,
        difficulty=difficulty,
        lines=lines,
        steps=steps,
        tags=tags,
        nutrition=nutrition,
    )


@dataclass(slots=True)
class Interactions:
    """One user's activity. Ratings: (recipe, stars, review, created_ms, updated_ms)."""

    views: dict[int, int] = field(default_factory=dict)
    ratings: list[tuple[int, int, str | None, int, int]] = field(default_factory=list)
    favorites: list[tuple[int, int]] = field(default_factory=list)
    follows: list[tuple[int, int]] = field(default_factory=list)


def _username(rng: random.Random, first: str, last: str) -> str:
    f = "".join(ch for ch in first.lower() if ch.isalnum())
    last_clean = "".join(ch for ch in last.lower() if ch.isalnum())
    pattern = rng.randrange(7)
    if pattern == 0:
        name = f"{f}{last_clean}"
    elif pattern == 1:
        name = f"{f}.{last_clean}"
    elif pattern == 2:
        name = f"{f}_{last_clean}"
    elif pattern == 3:
        name = f"{f[0]}{last_clean}"
    elif pattern == 4:
        name = f"{f}{rng.choice(vocab.USERNAME_SUFFIXES)}"
    elif pattern == 5:
        name = f"{f}_{rng.choice(vocab.USERNAME_SUFFIXES)}{rng.randint(1, 99)}"
    else:
        name = f"{last_clean}{f[0]}{rng.randint(1, 999)}"
    return name[:28]


class SeedPlan:
    """Everything decided up front; `batches()` streams the rows."""

    def __init__(self, spec: SeedSpec) -> None:
        self.spec = spec
        self.end_ms = to_ms(spec.end)
        self.start_ms = self.end_ms - spec.days * _DAY_MS
        self._plan_users()
        self._plan_catalog()
        self._plan_recipes()
        self._plan_activity()

    # -- planning ------------------------------------------------------------------------------------------

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"potluck-seed:{self.spec.seed}:{stream}")

    def _plan_users(self) -> None:
        rng = self._rng("users")
        n = self.spec.users
        # User 0 is there from the first day so the earliest recipes have an author.
        self.user_ms = [self.start_ms, *_spread_ms(rng, n - 1, self.start_ms + 1, self.end_ms - 1, 0.8)][:n]
        self.user_ids = [uuid7_at(from_ms(ms), rng) for ms in self.user_ms]
        cuisine_w = zipf_weights(len(vocab.CUISINES), CUISINE_ZIPF_S)
        tag_w = zipf_weights(len(vocab.TAGS), TAG_ZIPF_S)
        self.user_cuisines: list[tuple[int, ...]] = []
        self.user_tags: list[tuple[int, ...]] = []
        self.user_activity: list[float] = []
        self.user_rater: list[float] = []
        self.usernames: list[str] = []
        self.display_names: list[str] = []
        self.bios: list[str] = []
        taken: set[str] = set()
        for _ in range(n):
            cuisines = tuple(
                _weighted_sample(rng, range(len(vocab.CUISINES)), cuisine_w, rng.choice((1, 2, 2, 3, 3, 3)))
            )
            tags = tuple(_weighted_sample(rng, range(len(vocab.TAGS)), tag_w, rng.choice((2, 3, 3, 4))))
            self.user_cuisines.append(cuisines)
            self.user_tags.append(tags)
            self.user_activity.append(rng.lognormvariate(-0.405, 0.9))  # mean 1
            self.user_rater.append(rng.uniform(0.08, 0.5))
            first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
            name = _username(rng, first, last)
            if name in taken:
                base, k = name, rng.randint(2, 99)
                while f"{base}{k}" in taken:
                    k += 1
                name = f"{base}{k}"
            taken.add(name)
            self.usernames.append(name)
            self.display_names.append(f"{first} {last}")
            if rng.random() < 0.65:
                c_names = [vocab.CUISINES[c].name for c in cuisines]
                tag = vocab.TAGS[tags[0]].replace("-", " ")
                bio = rng.choice(vocab.BIO_TEMPLATES).format(
                    c1=c_names[0], c2=c_names[-1] if len(c_names) > 1 else "home", tag=tag, Tag=tag.capitalize()
                )
            else:
                bio = ""
            self.bios.append(bio)
        # Who writes recipes, and how much: a minority of users, prolific ones rare (Zipf over a random order).
        authors = [i for i in range(n) if i == 0 or rng.random() < AUTHOR_SHARE]
        ranks = list(range(len(authors)))
        rng.shuffle(ranks)
        author_w = zipf_weights(len(authors), AUTHOR_ZIPF_S)
        weight = [0.0] * n
        for a, r in zip(authors, ranks, strict=True):
            weight[a] = author_w[r]
        self._author_cum = list(itertools.accumulate(weight))

    def _plan_catalog(self) -> None:
        rng = self._rng("catalog")
        at = from_ms(self.start_ms)
        self.ingredient_ids = [uuid7_at(at, rng) for _ in vocab.INGREDIENTS]
        self.tag_ids = [uuid7_at(at, rng) for _ in vocab.TAGS]

    def _recipe_rng(self, j: int) -> random.Random:
        return self._rng(f"recipe:{j}")

    def _author_tags(self, author: int) -> list[str]:
        return [vocab.TAGS[t] for t in self.user_tags[author]]

    def _plan_recipes(self) -> None:
        spec = self.spec
        rng = self._rng("recipes")
        m = spec.recipes
        self.recipe_ms = _spread_ms(rng, m, self.start_ms + _DAY_MS, self.end_ms, 0.7)
        self.recipe_ids = [uuid7_at(from_ms(ms), rng) for ms in self.recipe_ms]
        cuisine_w = zipf_weights(len(vocab.CUISINES), CUISINE_ZIPF_S)
        self.recipe_author: list[int] = []
        self.recipe_cuisine: list[int] = []
        self.recipe_public: list[bool] = []
        self.recipe_tags: list[tuple[int, ...]] = []
        self.recipe_weight: list[float] = []
        self.recipe_quality: list[float] = []
        self.recipe_updated_ms: list[int] = []
        self.child_counts = {"recipe_ingredient": 0, "step": 0, "recipe_tag": 0}
        ranks = list(range(m))
        rng.shuffle(ranks)
        zipf = zipf_weights(m, RECIPE_ZIPF_S)
        k = 0  # users[:k] exist when the current recipe is written
        for j in range(m):
            t = self.recipe_ms[j]
            while k < len(self.user_ms) and self.user_ms[k] < t:
                k += 1
            x = rng.random() * self._author_cum[k - 1]
            author = min(bisect_right(self._author_cum, x, 0, k), k - 1)
            prefs = self.user_cuisines[author]
            if rng.random() < 0.8:
                cuisine = rng.choices(prefs, weights=(5, 3, 2)[: len(prefs)])[0]
            else:
                cuisine = rng.choices(range(len(vocab.CUISINES)), weights=cuisine_w)[0]
            self.recipe_author.append(author)
            self.recipe_cuisine.append(cuisine)
            self.recipe_public.append(rng.random() >= spec.private_share)
            rank = ranks[j]
            self.recipe_weight.append(zipf[rank])
            # Better recipes are a little more popular, and popular ones a little better rated.
            self.recipe_quality.append(3.2 + 0.7 * (1 - rank / max(m, 1)) + rng.gauss(0, 0.5))
            edited = rng.random() < 0.2
            self.recipe_updated_ms.append(_after(rng, t, self.end_ms, 10) if edited else t)
            composed = compose_recipe(self._recipe_rng(j), vocab.CUISINES[cuisine], self._author_tags(author))
            self.recipe_tags.append(tuple(composed.tags))
            self.child_counts["recipe_ingredient"] += len(composed.lines)
            self.child_counts["step"] += len(composed.steps)
            self.child_counts["recipe_tag"] += len(composed.tags)
        # Views by visitors who are not users: the Zipf weight with a little noise, plus a small trickle.
        anonymous_total = ANONYMOUS_VIEWS_PER_RECIPE * m
        self.anonymous_views = [
            int(anonymous_total * w * rng.lognormvariate(0, 0.3) + rng.expovariate(1 / 8))
            if public
            else rng.randint(0, 3)
            for w, public in zip(self.recipe_weight, self.recipe_public, strict=True)
        ]
        public = [j for j in range(m) if self.recipe_public[j]]
        self.n_public = len(public)
        self._global_pool = _Pool(public, (self.recipe_weight[j] for j in public))
        by_cuisine: list[list[int]] = [[] for _ in vocab.CUISINES]
        by_tag: list[list[int]] = [[] for _ in vocab.TAGS]
        for j in public:
            by_cuisine[self.recipe_cuisine[j]].append(j)
            for tag in self.recipe_tags[j]:
                by_tag[tag].append(j)
        self._cuisine_pools = [_Pool(js, (self.recipe_weight[j] for j in js)) for js in by_cuisine]
        self._tag_pools = [_Pool(js, (self.recipe_weight[j] for j in js)) for js in by_tag]
        # Whom to follow: authors, weighted by how much they publish (overall and per cuisine).
        self.recipes_by_author = [0] * self.spec.users
        per_cuisine: list[dict[int, int]] = [{} for _ in vocab.CUISINES]
        for j in public:
            a = self.recipe_author[j]
            self.recipes_by_author[a] += 1
            counts = per_cuisine[self.recipe_cuisine[j]]
            counts[a] = counts.get(a, 0) + 1
        self._author_pools = [_Pool(list(c), c.values()) for c in per_cuisine]
        self._people_pool = _Pool(list(range(self.spec.users)), (0.3 + c for c in self.recipes_by_author))

    def _plan_activity(self) -> None:
        m = self.spec.recipes
        self.rating_sum = [0] * m
        self.rating_count = [0] * m
        self.favorite_count = [0] * m
        self.view_count = list(self.anonymous_views) if m else []
        self.follow_total = 0
        for u in range(self.spec.users):
            acts = self.interactions(u)
            for j, n in acts.views.items():
                self.view_count[j] += n
            for j, stars, _, _, _ in acts.ratings:
                self.rating_sum[j] += stars
                self.rating_count[j] += 1
            for j, _ in acts.favorites:
                self.favorite_count[j] += 1
            self.follow_total += len(acts.follows)

    def interactions(self, u: int) -> Interactions:
        """User u's views, ratings, favorites and follows: the same every time for the same spec."""
        rng = self._rng(f"user:{u}")
        acts = Interactions()
        u_ms = self.user_ms[u]
        span = self.end_ms - self.start_ms
        tenure = (self.end_ms - u_ms) / span
        my_cuisines = self.user_cuisines[u]
        my_tags = self.user_tags[u]
        if self.n_public:
            base = min(80.0, max(3.0, 0.08 * self.n_public))
            draws = round(base * self.user_activity[u] * (0.3 + 0.7 * tenure))
            draws = max(1, min(draws, round(4 * base)))
            cuisine_pick = (5, 3, 2)[: len(my_cuisines)]
            for _ in range(draws):
                r = rng.random()
                if r < TASTE_CUISINE_SHARE:
                    pool = self._cuisine_pools[rng.choices(my_cuisines, weights=cuisine_pick)[0]]
                elif r < TASTE_CUISINE_SHARE + TASTE_TAG_SHARE:
                    pool = self._tag_pools[rng.choice(my_tags)]
                else:
                    pool = self._global_pool
                if not pool:
                    pool = self._global_pool
                j = pool.draw(rng)
                acts.views[j] = acts.views.get(j, 0) + 1
        rater = self.user_rater[u]
        bias = rng.gauss(0, 0.35)
        liked_authors: list[int] = []
        for j in acts.views:
            if self.recipe_author[j] == u:
                continue
            cuisine_match = self.recipe_cuisine[j] in my_cuisines
            tag_match = any(t in my_tags for t in self.recipe_tags[j])
            lo = max(u_ms, self.recipe_ms[j])
            p_rate = rater * (1.5 if cuisine_match else 0.5) * (1.2 if tag_match else 1.0)
            stars = 0
            rated_ms = lo
            if rng.random() < p_rate:
                taste = (0.35 if cuisine_match else -0.3) + (0.15 if tag_match else 0.0)
                raw = self.recipe_quality[j] + taste + bias + rng.gauss(0, 0.8)
                stars = min(5, max(1, round(raw)))
                review = self._review(rng, stars) if rng.random() < (0.5 if stars in (1, 5) else 0.3) else None
                rated_ms = _after(rng, lo, self.end_ms, 20)
                updated_ms = _after(rng, rated_ms, self.end_ms, 15) if rng.random() < 0.1 else rated_ms
                acts.ratings.append((j, stars, review, rated_ms, updated_ms))
            p_fav = {5: 0.45, 4: 0.2, 3: 0.04}.get(stars, 0.01) if stars else (0.06 if cuisine_match else 0.02)
            if rng.random() < p_fav:
                fav_ms = _after(rng, rated_ms, self.end_ms, 2) if stars else _after(rng, lo, self.end_ms, 20)
                acts.favorites.append((j, fav_ms))
                liked_authors.append(self.recipe_author[j])
            elif stars >= 4:
                liked_authors.append(self.recipe_author[j])
        n = self.spec.users
        if n > 1:
            wanted = min(n - 1, round(rng.lognormvariate(1.3, 0.9) * (0.5 + self.user_activity[u] / 2)))
            followed: dict[int, None] = {}
            for _ in range(wanted * 4):
                if len(followed) >= wanted:
                    break
                r = rng.random()
                if r < 0.45 and liked_authors:
                    v = rng.choice(liked_authors)
                elif r < 0.8 and self._author_pools[c := rng.choice(my_cuisines)]:
                    v = self._author_pools[c].draw(rng)
                else:
                    v = self._people_pool.draw(rng)
                if v == u or v in followed:
                    continue
                followed[v] = None
                acts.follows.append((v, _after(rng, max(u_ms, self.user_ms[v]), self.end_ms, 60)))
        return acts

    @staticmethod
    def _review(rng: random.Random, stars: int) -> str:
        text = rng.choice(vocab.REVIEW_OPENERS) + rng.choice(vocab.REVIEWS_BY_STARS[stars])
        return text + rng.choice(vocab.REVIEW_CLOSERS)

    # -- reading the plan ----------------------------------------------------------------------------------

    def taste(self, u: int) -> Taste:
        return Taste(
            tuple(vocab.CUISINES[c].name for c in self.user_cuisines[u]),
            tuple(vocab.TAGS[t] for t in self.user_tags[u]),
        )

    def row_counts(self) -> dict[str, int]:
        """Exactly how many rows `batches()` yields per table."""
        m = self.spec.recipes
        return {
            "user_account": self.spec.users,
            "ingredient": len(vocab.INGREDIENTS),
            "tag": len(vocab.TAGS),
            "recipe": m,
            **self.child_counts,
            "nutrition": m,
            "follow": self.follow_total,
            "rating": sum(self.rating_count),
            "favorite": sum(self.favorite_count),
        }

    # -- rows ----------------------------------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """Every row, in batches of at most `spec.batch_size`, parents before children."""
        yield from self.user_batches()
        yield from self.catalog_batches()
        yield from self.recipe_batches()
        yield from self.activity_batches()

    def _chunked(self, table: str, rows: Iterable[Row]) -> Iterator[Batch]:
        size = self.spec.batch_size
        it = iter(rows)
        while chunk := list(itertools.islice(it, size)):
            yield Batch(table, chunk)

    def user_batches(self) -> Iterator[Batch]:
        domains = ("example.com", "example.org", "example.net")
        rows = (
            {
                "id": self.user_ids[i],
                "email": f"{self.usernames[i]}@{domains[i % 3]}",
                "username": self.usernames[i],
                "password_hash": self.spec.password_hash,
                "display_name": self.display_names[i],
                "bio": self.bios[i],
                "avatar_image_key": None,
                "created_at": from_ms(self.user_ms[i]),
                "updated_at": from_ms(self.user_ms[i]),
                "version": 1,
            }
            for i in range(self.spec.users)
        )
        return self._chunked("user_account", rows)

    def catalog_batches(self) -> Iterator[Batch]:
        yield from self._chunked(
            "ingredient",
            ({"id": self.ingredient_ids[i], "name": s.name} for i, s in enumerate(vocab.INGREDIENTS)),
        )
        yield from self._chunked("tag", ({"id": self.tag_ids[i], "name": name} for i, name in enumerate(vocab.TAGS)))

    def recipe_batches(self) -> Iterator[Batch]:
        """Recipes in chunks of `batch_size`, each chunk followed by its children."""
        size = self.spec.batch_size
        for first in range(0, self.spec.recipes, size):
            recipes: list[Row] = []
            children: dict[str, list[Row]] = {"recipe_ingredient": [], "step": [], "recipe_tag": [], "nutrition": []}
            for j in range(first, min(first + size, self.spec.recipes)):
                self._recipe_rows(j, recipes, children)
            yield Batch("recipe", recipes)
            for table, rows in children.items():
                for start in range(0, len(rows), size):
                    yield Batch(table, rows[start : start + size])

    def _recipe_rows(self, j: int, recipes: list[Row], children: dict[str, list[Row]]) -> None:
        author = self.recipe_author[j]
        c = compose_recipe(self._recipe_rng(j), vocab.CUISINES[self.recipe_cuisine[j]], self._author_tags(author))
        rid = self.recipe_ids[j]
        count = self.rating_count[j]
        updated_ms = self.recipe_updated_ms[j]
        recipes.append(
            {
                "id": rid,
                "author_id": self.user_ids[author],
                "title": c.title,
                "description": c.description,
                "cuisine": vocab.CUISINES[self.recipe_cuisine[j]].name.lower(),  # the API stores cuisines lower-cased
                "prep_minutes": c.prep_minutes,
                "cook_minutes": c.cook_minutes,
                "servings": c.servings,
                "difficulty": c.difficulty,
                "is_public": self.recipe_public[j],
                "image_key": None,
                "rating_avg": self.rating_sum[j] / count if count else None,
                "rating_count": count,
                "view_count": self.view_count[j],
                "favorite_count": self.favorite_count[j],
                "created_at": from_ms(self.recipe_ms[j]),
                "updated_at": from_ms(updated_ms),
                "version": 1 if updated_ms == self.recipe_ms[j] else 2,
            }
        )
        children["recipe_ingredient"].extend(
            {
                "recipe_id": rid,
                "position": pos,
                "ingredient_id": self.ingredient_ids[ing],
                "quantity": qty,
                "unit": unit,
                "note": note,
            }
            for pos, (ing, qty, unit, note) in enumerate(c.lines, start=1)
        )
        children["step"].extend(
            {"recipe_id": rid, "position": pos, "text": text} for pos, text in enumerate(c.steps, start=1)
        )
        children["recipe_tag"].extend({"recipe_id": rid, "tag_id": self.tag_ids[t]} for t in c.tags)
        n = c.nutrition
        children["nutrition"].append(
            {
                "recipe_id": rid,
                "calories": n[0],
                "protein_g": n[1],
                "fat_g": n[2],
                "carbohydrates_g": n[3],
                "fiber_g": n[4],
                "sugar_g": n[5],
                "sodium_mg": n[6],
            }
        )

    def activity_batches(self) -> Iterator[Batch]:
        """Follows, ratings and favorites, user by user; each table's batches are full except its last."""
        size = self.spec.batch_size
        buffers: dict[str, list[Row]] = {"follow": [], "rating": [], "favorite": []}
        for u in range(self.spec.users):
            acts = self.interactions(u)
            uid = self.user_ids[u]
            buffers["follow"].extend(
                {"follower_id": uid, "followee_id": self.user_ids[v], "created_at": from_ms(ms)}
                for v, ms in acts.follows
            )
            buffers["rating"].extend(
                {
                    "user_id": uid,
                    "recipe_id": self.recipe_ids[j],
                    "stars": stars,
                    "review": review,
                    "created_at": from_ms(created),
                    "updated_at": from_ms(updated),
                }
                for j, stars, review, created, updated in acts.ratings
            )
            buffers["favorite"].extend(
                {"user_id": uid, "recipe_id": self.recipe_ids[j], "created_at": from_ms(ms)} for j, ms in acts.favorites
            )
            for table, rows in buffers.items():
                while len(rows) >= size:
                    yield Batch(table, rows[:size])
                    del rows[:size]
        for table, rows in buffers.items():
            for start in range(0, len(rows), size):
                yield Batch(table, rows[start : start + size])


def generate(spec: SeedSpec) -> Iterator[Batch]:
    """All rows for `spec`, in insertable order."""
    return SeedPlan(spec).batches()
