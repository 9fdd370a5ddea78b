"""Who the seeded users are: unique usernames and short bios, drawn from the vocabulary's names and templates."""

from __future__ import annotations

import random
from collections.abc import Sequence

from potluck.seed.vocabulary import vocabulary


def _username(rng: random.Random, first: str, last: str) -> str:
    f = "".join(ch for ch in first.lower() if ch.isalnum())
    last_clean = "".join(ch for ch in last.lower() if ch.isalnum())
    suffixes = vocabulary().username_suffixes
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
        name = f"{f}{rng.choice(suffixes)}"
    elif pattern == 5:
        name = f"{f}_{rng.choice(suffixes)}{rng.randint(1, 99)}"
    else:
        name = f"{last_clean}{f[0]}{rng.randint(1, 999)}"
    return name[:28]


def unique_username(rng: random.Random, first: str, last: str, taken: set[str]) -> str:
    """A username for `first last` that is not in `taken` (it is added to it)."""
    name = _username(rng, first, last)
    if name in taken:
        base, k = name, rng.randint(2, 99)
        while f"{base}{k}" in taken:
            k += 1
        name = f"{base}{k}"
    taken.add(name)
    return name


def bio(rng: random.Random, cuisines: Sequence[str], tag: str) -> str:
    """About a third of users leave their bio empty; the others mention their cuisines and a favourite tag."""
    if rng.random() >= 0.65:
        return ""
    words = tag.replace("-", " ")
    template = rng.choice(vocabulary().bio_templates)
    return template.format(
        c1=cuisines[0], c2=cuisines[-1] if len(cuisines) > 1 else "home", tag=words, Tag=words.capitalize()
    )
