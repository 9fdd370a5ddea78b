"""Recommendation scores: pure functions, no I/O (the formula and its reasons are in docs/recommendations.md).

    score = w_c * C + w_g * G + w_s * S + w_q * Q + w_p * P

C and G are how well the recipe's cuisine and tags match the viewer's taste profile (cosine similarity, 0..1),
S = k / (k + 1) for the k people the viewer follows who favorited it or rated it 4 or more, Q the recipe's
Bayesian-shrunk average rating mapped to -1..1, P its popularity (log of favorites and views) in 0..1.

The taste profile is built from the viewer's favorites and ratings of 4 or more stars. A viewer without any of
those, who follows nobody who liked anything (cold start), gets Q and P alone: well-rated popular recipes.
The ranked list is then diversified so that no cuisine takes more than a third of any prefix of it.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict, deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

Item = TypeVar("Item")
Group = TypeVar("Group", bound=Hashable)

# Ratings of this many stars or more are liking a recipe.
LIKED_STARS = 4


@dataclass(frozen=True, slots=True)
class Interaction:
    """One of the viewer's own favorites or ratings, with what the profile needs of the recipe."""

    recipe_id: uuid.UUID
    cuisine: str | None
    tags: tuple[str, ...]
    favorited: bool
    stars: int | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A public recipe that might be recommended, with its signals as the repository reads them."""

    recipe_id: uuid.UUID
    author_id: uuid.UUID
    cuisine: str | None
    tags: tuple[str, ...]
    rating_avg: float | None
    rating_count: int
    favorites: int
    views: int
    # People the viewer follows who favorited this recipe or rated it LIKED_STARS or more.
    followed_likers: int = 0


def like_weight(interaction: Interaction) -> float:
    """How much one interaction says about taste: a favorite or 5 stars 1, 4 stars 0.5, anything else 0.

    A recipe both favorited and rated counts once, by its strongest signal: one recipe, one vote."""
    weight = 1.0 if interaction.favorited else 0.0
    if interaction.stars is not None and interaction.stars >= LIKED_STARS:
        weight = max(weight, (interaction.stars - (LIKED_STARS - 1)) / 2)
    return weight


def _norm(vector: Mapping[str, float]) -> float:
    return math.sqrt(sum(v * v for v in vector.values()))


@dataclass(frozen=True, slots=True)
class TasteProfile:
    """The viewer's liked cuisines and tags, each with the summed weight of the liked recipes carrying it."""

    cuisines: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, float] = field(default_factory=dict)
    # Every recipe the viewer favorited or rated, liked or not: never recommended.
    seen: frozenset[uuid.UUID] = frozenset()

    @property
    def is_empty(self) -> bool:
        return not self.cuisines and not self.tags

    def top_cuisines(self, n: int) -> list[str]:
        """The `n` heaviest cuisines, heaviest first (ties by name, so the order is stable)."""
        return [name for name, _ in sorted(self.cuisines.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

    def top_tags(self, n: int) -> list[str]:
        return [name for name, _ in sorted(self.tags.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

    def cuisine_match(self, cuisine: str | None) -> float:
        """Cosine similarity of the recipe's one-hot cuisine and the profile's cuisine vector: 0..1."""
        if cuisine is None or cuisine not in self.cuisines:
            return 0.0
        return self.cuisines[cuisine] / _norm(self.cuisines)

    def tag_match(self, tags: Iterable[str]) -> float:
        """Cosine similarity of the recipe's tag set and the profile's tag vector: 0..1."""
        names = set(tags)
        if not names or not self.tags:
            return 0.0
        dot = sum(self.tags.get(name, 0.0) for name in names)
        return dot / (math.sqrt(len(names)) * _norm(self.tags))


def declared_profile(cuisines: Iterable[str], tags: Iterable[str], seen: frozenset[uuid.UUID]) -> TasteProfile:
    """A profile from declared tastes alone (each name weight 1): for a viewer with no likes yet, the formula then
    ranks the popular, well-rated recipes of those cuisines and tags first."""
    return TasteProfile(dict.fromkeys(cuisines, 1.0), dict.fromkeys(tags, 1.0), seen)


def taste_profile(interactions: Iterable[Interaction]) -> TasteProfile:
    """The viewer's profile: cuisines and tags of what they favorited or rated LIKED_STARS or more, weighted."""
    cuisines: dict[str, float] = defaultdict(float)
    tags: dict[str, float] = defaultdict(float)
    seen: set[uuid.UUID] = set()
    for interaction in interactions:
        seen.add(interaction.recipe_id)
        weight = like_weight(interaction)
        if weight <= 0:
            continue
        if interaction.cuisine is not None:
            cuisines[interaction.cuisine] += weight
        for tag in set(interaction.tags):
            tags[tag] += weight
    return TasteProfile(dict(cuisines), dict(tags), frozenset(seen))


# Bayesian shrinkage: every average starts as PRIOR_RATINGS ratings of PRIOR_STARS (the scale's midpoint), so one
# five-star rating does not beat a hundred 4.8s.
PRIOR_STARS = 3.0
PRIOR_RATINGS = 5


def shrunk_rating(rating_avg: float | None, rating_count: int) -> float:
    """(PRIOR_RATINGS * PRIOR_STARS + n * avg) / (PRIOR_RATINGS + n): PRIOR_STARS for an unrated recipe."""
    n = max(0, rating_count)
    if rating_avg is None or n == 0:
        return PRIOR_STARS
    return (PRIOR_RATINGS * PRIOR_STARS + n * rating_avg) / (PRIOR_RATINGS + n)


def quality(rating_avg: float | None, rating_count: int) -> float:
    """The shrunk rating mapped from 1..5 stars onto -1..1: 0 for unrated, negative for disliked."""
    return (shrunk_rating(rating_avg, rating_count) - PRIOR_STARS) / 2


# A view is worth 1/VIEWS_PER_FAVORITE of a favorite; popularity saturates at POPULAR favorites' worth.
VIEWS_PER_FAVORITE = 20
POPULAR = 1000


def popularity(favorites: int, views: int) -> float:
    """log(1 + F + V / VIEWS_PER_FAVORITE) / log(1 + POPULAR), capped at 1: 0..1."""
    worth = max(0, favorites) + max(0, views) / VIEWS_PER_FAVORITE
    return min(1.0, math.log1p(worth) / math.log1p(POPULAR))


def social(followed_likers: int) -> float:
    """k / (k + 1): the first followed person who liked it counts most, and it never exceeds 1."""
    k = max(0, followed_likers)
    return k / (k + 1)


@dataclass(frozen=True, slots=True)
class Weights:
    cuisine: float = 2.0
    tags: float = 1.0
    social: float = 2.0
    quality: float = 1.0
    popularity: float = 0.5


DEFAULT_WEIGHTS = Weights()


def score(candidate: Candidate, profile: TasteProfile, weights: Weights = DEFAULT_WEIGHTS) -> float:
    return (
        weights.cuisine * profile.cuisine_match(candidate.cuisine)
        + weights.tags * profile.tag_match(candidate.tags)
        + weights.social * social(candidate.followed_likers)
        + weights.quality * quality(candidate.rating_avg, candidate.rating_count)
        + weights.popularity * popularity(candidate.favorites, candidate.views)
    )


# No cuisine holds more than this share of any prefix of the list, except that every cuisine may hold
# MIN_PER_CUISINE places (a third of 1 or 2 places would forbid repeating the best cuisine at all).
MAX_CUISINE_SHARE = 1 / 3
MIN_PER_CUISINE = 2


def cuisine_cap(position: int, share: float = MAX_CUISINE_SHARE, minimum: int = MIN_PER_CUISINE) -> int:
    """How many of the first `position` places one cuisine may hold."""
    return max(minimum, math.ceil(position * share - 1e-9))


def diversify(
    ranked: Sequence[tuple[Item, Group]],
    share: float = MAX_CUISINE_SHARE,
    minimum: int = MIN_PER_CUISINE,
) -> list[Item]:
    """Reorder best-first `(id, cuisine)` pairs so that no cuisine exceeds cuisine_cap(i) of the first i places.

    Greedy: each place goes to the best remaining recipe whose cuisine is under its cap there. The cap never
    shrinks as i grows, so every prefix (every page size) keeps the rule. When only capped cuisines are left the
    rest follow in score order: more of one cuisine beats fewer recommendations. Recipes without a cuisine
    form one group of their own."""
    queues: dict[Group, deque[tuple[int, Item]]] = {}
    for order, (recipe_id, cuisine) in enumerate(ranked):
        queues.setdefault(cuisine, deque()).append((order, recipe_id))
    counts: dict[Group, int] = dict.fromkeys(queues, 0)
    out: list[Item] = []
    while queues:
        cap = cuisine_cap(len(out) + 1, share, minimum)
        allowed = [c for c in queues if counts[c] < cap] or list(queues)
        best = min(allowed, key=lambda c: queues[c][0][0])
        out.append(queues[best].popleft()[1])
        counts[best] += 1
        if not queues[best]:
            del queues[best]
    return out


def rank(
    candidates: Iterable[Candidate],
    profile: TasteProfile,
    viewer_id: uuid.UUID,
    limit: int,
    weights: Weights = DEFAULT_WEIGHTS,
) -> list[uuid.UUID]:
    """The `limit` best recommendations for the viewer, diversified by cuisine, best first.

    Never the viewer's own recipes nor any they favorited or rated. Only scores above 0 are recommended: a
    recipe nothing speaks for (no match, unrated, unseen) or a disliked one without a match stays out. Ties go
    to the newer id; a candidate listed twice counts once."""
    scored: dict[uuid.UUID, tuple[float, str | None]] = {}
    for c in candidates:
        if c.author_id == viewer_id or c.recipe_id in profile.seen or c.recipe_id in scored:
            continue
        value = score(c, profile, weights)
        if value > 0:
            scored[c.recipe_id] = (value, c.cuisine)
    ordered = sorted(scored.items(), key=lambda item: (-item[1][0], -item[0].int))
    return diversify([(recipe_id, cuisine) for recipe_id, (_, cuisine) in ordered])[: max(0, limit)]
