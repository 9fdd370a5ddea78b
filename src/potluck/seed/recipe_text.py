"""The words of a composed recipe: its steps, title and description, from the vocabulary's templates.

Each function draws from the recipe's own random stream, in the order `compose_recipe` calls them; changing what
they draw, or when, changes every seeded recipe after the first.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from potluck.seed.vocabulary import CuisineSpec, DishSpec, vocabulary

DAIRY_CATEGORIES = frozenset({"cheese", "milk", "cream", "yogurt", "butter", "condensed"})
LIQUID_CATEGORIES = frozenset({"stock", "wine", "water", "coconut"})
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
_OVEN = {"braise": (150, 170), "roast": (200, 220), "bake": (180, 200)}


@dataclass(frozen=True, slots=True)
class Draft:
    """A recipe's dish and ingredients, chosen: what its words can refer to."""

    cuisine: CuisineSpec
    dish: DishSpec
    # Placeholder in the dish's pattern -> the ingredient that fills it.
    picks: dict[str, str]
    # Every ingredient, in the order it was chosen; `ordered` is the order of the ingredient list.
    names: dict[str, None]
    cats: dict[str, str]
    ordered: list[str]


class Roles(NamedTuple):
    """The ingredients that play a part the templates name."""

    protein: str | None
    starch: str | None
    herb: str | None
    acid: str | None
    fat: str | None
    sauces: list[str]


@cache
def template_fields(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _label(name: str) -> str:
    spec = vocabulary().ingredient_by_name[name]
    return spec.label or name.title()


def _hours_text(minutes: int) -> str:
    whole, half = divmod(minutes, 60)
    if half >= 30:
        return f"{whole}½" if whole else "½"
    return str(max(whole, 1))


@cache
def _title_openers() -> frozenset[str]:
    """Words a title may already start with; it gets no adjective in front of them."""
    return frozenset(
        {adj.split()[0] for adj, _ in vocabulary().title_adjectives}
        | {"Classic", "Slow-Cooker", "Sheet-Pan", "Creamy", "Baked", "Grilled", "Roast", "Slow-Roasted", "Steamed"}
    )


def roles(draft: Draft) -> Roles:
    picks, ordered, cats = draft.picks, draft.ordered, draft.cats
    meat = vocabulary().meat_categories
    fat = draft.cuisine.fat
    return Roles(
        protein=picks.get("protein") or next((n for n in ordered if cats[n] in meat or cats[n] == "soy"), None),
        starch=picks.get("starch")
        or next((n for n in ordered if cats[n] in ("grain", "fresh_pasta", "bread") and n not in _NOT_A_SIDE), None),
        herb=next((n for n in ordered if cats[n] == "herb" and n not in vocabulary().cooking_herbs), None),
        acid=next((n for n in ordered if n in ("lemon", "lime") or cats[n] == "vinegar"), None),
        fat=fat if fat in draft.names else None,
        sauces=[n for n in ordered if cats[n] in ("sauce", "soy_sauce", "vinegar")][:3],
    )


def _mentions(draft: Draft, roles: Roles) -> dict[str, str | None]:
    """The ingredient placeholders of the step templates; None where the recipe has nothing to put there."""
    ordered, cats, starch = draft.ordered, draft.cats, roles.starch
    vegs = [
        n for n in ordered if cats[n] in ("vegetable", "starchy", "avocado") and n != starch and n not in _NOT_A_VEG
    ]
    extras = [
        n
        for n in ordered
        if cats[n] in ("fruit", "dried_fruit", "nut", "cocoa", "chocolate", "water") and n not in ("lemon", "lime")
    ]
    mentions: dict[str, str | None] = {
        "protein": roles.protein,
        "starch": starch,
        "herb": roles.herb,
        "acid": roles.acid,
        "fat": roles.fat,
        "aromatics": _join([n for n in ordered if cats[n] == "aromatic"][:3]),
        "vegs": _join(vegs[:3]),
        "spices": _join([n for n in ordered if cats[n] == "spice" and n != "black pepper"][:3]),
        "sauces": _join(roles.sauces),
        "liquid": next((n for n in ordered if cats[n] in LIQUID_CATEGORIES or n == "canned tomatoes"), None),
        "topping": _join([n for n in ordered if cats[n] == "cheese" or n == "panko breadcrumbs"][:2]),
        "batter": _join([n for n in ordered if n in _BATTER][:3]),
        "base": _join([n for n in ordered if cats[n] in (DAIRY_CATEGORIES | {"egg", "chocolate"})][:3]),
        "extras": _join(extras[:2]),
        "dry": _join([n for n in ordered if cats[n] in ("grain", "baking", "cocoa", "spice")][:4]),
    }
    if roles.fat and (roles.acid or roles.sauces):
        mentions["dressing"] = _join([roles.fat, *([roles.acid] if roles.acid else []), *roles.sauces[:1]])
    return mentions


def step_context(rng: random.Random, draft: Draft, roles: Roles, cook: int) -> dict[str, str]:
    """Everything a step template may refer to: times, temperatures, ingredients and how to serve."""
    kind, method = draft.dish.kind, draft.dish.method
    ctx: dict[str, str] = {
        "short": str(rng.randint(3, 8)),
        "long": str(max(cook, 10)),
        "marinate": str(rng.choice((15, 20, 30, 60))),
        "hours": _hours_text(cook) if method in ("braise", "slowcook") else str(rng.choice((2, 4, 6))),
    }
    if method in _OVEN or (kind == "dessert" and method == "bake"):
        ctx["temp"] = str(5 * (rng.randint(*_OVEN.get(method, (170, 180))) // 5))
    ctx.update({k: v for k, v in _mentions(draft, roles).items() if v})
    serve = [s for s in vocabulary().serve_phrases if "{herb}" not in s or roles.herb]
    starch = roles.starch
    if starch and draft.cats[starch] in ("grain", "bread", "fresh_pasta") and starch not in draft.dish.fixed:
        serve.append("with the {starch}")
    ctx["serve"] = rng.choice(serve).format_map(ctx)
    return ctx


def _fill(rng: random.Random, phase: Sequence[str], ctx: dict[str, str]) -> str | None:
    """One of the phase's templates that `ctx` can fill, filled; None when there is none."""
    usable = [t for t in phase if template_fields(t) <= ctx.keys()]
    return rng.choice(usable).format_map(ctx) if usable else None


def steps(rng: random.Random, draft: Draft, roles: Roles, ctx: dict[str, str]) -> list[str]:
    vocab = vocabulary()
    kind, method = draft.dish.kind, draft.dish.method
    phases: list[tuple[str, ...]]
    if kind == "dessert" and method == "bake":
        phases = list(vocab.dessert_bake_phases)
    else:
        prep_phases = [] if kind == "dessert" else [p for p in vocab.prep_phases if rng.random() < 0.5]
        phases = prep_phases + list(vocab.method_phases[method])
    out = [step for step in (_fill(rng, phase, ctx) for phase in phases) if step is not None]
    if kind != "dessert":
        starch = roles.starch
        if starch and draft.cats[starch] in ("grain", "fresh_pasta") and method not in ("bake", "raw"):
            out.append(rng.choice(vocab.starch_phases).format_map(ctx))
        for phase in vocab.finish_phases:
            usable = [t for t in phase if template_fields(t) <= ctx.keys()]
            if usable and rng.random() < 0.7:
                out.append(rng.choice(usable).format_map(ctx))
    if not out:
        out.append("Combine everything, season to taste and serve.")
    return out


def title(rng: random.Random, draft: Draft, herb: str | None, vegan: bool, servings: int) -> str:
    vocab = vocabulary()
    dish, method = draft.dish, draft.dish.method
    text = dish.pattern.format_map({slot: _label(name) for slot, name in draft.picks.items()})
    # Dishes with a fixed name get dressed up more often, or every Tiramisu would be called just that.
    fixed_name = not template_fields(dish.pattern)
    if text.split()[0] not in _title_openers() and rng.random() < (0.55 if fixed_name else 0.3):
        fitting = [adj for adj, methods in vocab.title_adjectives if not methods or method in methods]
        text = f"{rng.choice(fitting)} {text}"
    if fixed_name and rng.random() < 0.25:
        text = f"{text}{rng.choice(vocab.title_suffixes)}"
    if herb and " with " not in text and rng.random() < 0.15:
        text = f"{text} with {_label(herb)}"
    if vegan and rng.random() < 0.2:
        text = f"{text} (Vegan)"
    elif servings == 2 and dish.kind == "main" and rng.random() < 0.3:
        text = f"{text} for Two"
    return text[:200]


def description(rng: random.Random, draft: Draft, roles: Roles, total: int, servings: int) -> str:
    vocab = vocabulary()
    cuisine, dish, picks = draft.cuisine, draft.dish, draft.picks
    adjectives = rng.sample(vocab.description_adjectives, 2)
    main = roles.protein or picks.get("veg") or next(iter(dish.fixed), None) or draft.ordered[0]
    veg = picks.get("veg") if picks.get("veg") != main else None
    words = {
        "adj": adjectives[0],
        "Adj": adjectives[0].capitalize(),
        "adj2": adjectives[1],
        "cuisine": cuisine.name,
        "kind": rng.choice(vocab.kind_words[dish.kind]),
        "main": main,
        "with_veg": f" and {veg}" if veg else "",
        "total": str(total),
        "place": rng.choice(cuisine.places),
        "servings": str(servings),
        "herb": roles.herb or "",
    }
    openers = [t for t, methods in vocab.description_openers if not methods or dish.method in methods]
    text = rng.choice(openers).format_map(words)
    closers = [c for c in vocab.description_closers if "{herb}" not in c or roles.herb]
    if rng.random() < 0.7:
        text = f"{text} {rng.choice(closers).format_map(words)}"
    return text
