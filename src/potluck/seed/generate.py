"""Deterministic demo data as plain rows: pure functions, no I/O.

`SeedPlan(spec)` first decides what must be known before the first row is written: when each user joined and
what they like, each recipe's author, cuisine and tags, and every user's views, ratings, favorites and follows,
so that each recipe row carries aggregates that match its child rows exactly. `SeedPlan.batches()` then streams
rows in an order a loader can insert as is (parents before children; see `rows`).

Memory stays small: per recipe the plan keeps a handful of numbers; recipe text (`compose`) and the users'
interactions are generated twice (once to count, once to emit) from per-recipe and per-user random streams, which
is what makes a second generation produce the same rows.

Popularity follows a Zipf law: each public recipe gets a random popularity rank and weight `rank ** -s`, and all
views, ratings and favorites are drawn with those weights, mostly from the pools of recipes that match the user's
cuisines and tags.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from potluck.seed import people, rows
from potluck.seed.compose import compose_recipe
from potluck.seed.rows import Batch
from potluck.seed.sampling import (
    DAY_MS,
    Pool,
    after,
    from_ms,
    spread_ms,
    to_ms,
    uuid7_at,
    weighted_sample,
    zipf_weights,
)
from potluck.seed.vocabulary import vocabulary

# Shape of the data set; the tests pin the properties these produce, not the numbers themselves.
RECIPE_ZIPF_S = 1.07
CUISINE_ZIPF_S = 0.6
TAG_ZIPF_S = 0.5
AUTHOR_ZIPF_S = 0.6
AUTHOR_SHARE = 0.3
TASTE_CUISINE_SHARE = 0.7
TASTE_TAG_SHARE = 0.15
ANONYMOUS_VIEWS_PER_RECIPE = 30
# Users who declared tastes at sign-up (user_account.tastes).
DECLARED_SHARE = 0.5


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


@dataclass(frozen=True, slots=True)
class Taste:
    cuisines: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(slots=True)
class Interactions:
    """One user's activity. Ratings: (recipe, stars, review, created_ms, updated_ms)."""

    views: dict[int, int] = field(default_factory=dict)
    ratings: list[tuple[int, int, str | None, int, int]] = field(default_factory=list)
    favorites: list[tuple[int, int]] = field(default_factory=list)
    follows: list[tuple[int, int]] = field(default_factory=list)


class SeedPlan:
    """Everything decided up front; `batches()` streams the rows."""

    def __init__(self, spec: SeedSpec) -> None:
        self.spec = spec
        self.end_ms = to_ms(spec.end)
        self.start_ms = self.end_ms - spec.days * DAY_MS
        self._plan_users()
        self._plan_declared()
        self._plan_catalog()
        self._plan_recipes()
        self._plan_activity()

    # -- planning ------------------------------------------------------------------------------------------

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"potluck-seed:{self.spec.seed}:{stream}")

    def _plan_users(self) -> None:
        vocab = vocabulary()
        rng = self._rng("users")
        n = self.spec.users
        # User 0 is there from the first day so the earliest recipes have an author.
        self.user_ms = [self.start_ms, *spread_ms(rng, n - 1, self.start_ms + 1, self.end_ms - 1, 0.8)][:n]
        self.user_ids = [uuid7_at(from_ms(ms), rng) for ms in self.user_ms]
        cuisine_w = zipf_weights(len(vocab.cuisines), CUISINE_ZIPF_S)
        tag_w = zipf_weights(len(vocab.tags), TAG_ZIPF_S)
        self.user_cuisines: list[tuple[int, ...]] = []
        self.user_tags: list[tuple[int, ...]] = []
        self.user_activity: list[float] = []
        self.user_rater: list[float] = []
        self.usernames: list[str] = []
        self.display_names: list[str] = []
        self.bios: list[str] = []
        taken: set[str] = set()
        for _ in range(n):
            self._plan_user(rng, cuisine_w, tag_w, taken)
        self._plan_authors(rng)

    def _plan_declared(self) -> None:
        """What a share of users declared at sign-up (user_account.tastes): part of their planned taste, as a
        form gets it (one or more of their cuisines, one or two of their tags). Its own random stream, so the
        rest of the plan is the same with or without it."""
        vocab = vocabulary()
        rng = self._rng("declared")
        self.declared: list[dict[str, list[str]] | None] = []
        for cuisines, tags in zip(self.user_cuisines, self.user_tags, strict=True):
            if rng.random() >= DECLARED_SHARE:
                self.declared.append(None)
                continue
            chosen_cuisines = rng.sample(cuisines, rng.randint(1, len(cuisines)))
            chosen_tags = rng.sample(tags, rng.randint(1, min(2, len(tags))))
            self.declared.append(
                {
                    # As the API stores them: lower-cased, like recipes' cuisines.
                    "cuisines": [vocab.cuisines[c].name.lower() for c in chosen_cuisines],
                    "tags": [vocab.tags[t].lower() for t in chosen_tags],
                }
            )

    def _plan_user(self, rng: random.Random, cuisine_w: list[float], tag_w: list[float], taken: set[str]) -> None:
        vocab = vocabulary()
        cuisines = tuple(weighted_sample(rng, range(len(vocab.cuisines)), cuisine_w, rng.choice((1, 2, 2, 3, 3, 3))))
        tags = tuple(weighted_sample(rng, range(len(vocab.tags)), tag_w, rng.choice((2, 3, 3, 4))))
        self.user_cuisines.append(cuisines)
        self.user_tags.append(tags)
        self.user_activity.append(rng.lognormvariate(-0.405, 0.9))  # mean 1
        self.user_rater.append(rng.uniform(0.08, 0.5))
        first, last = rng.choice(vocab.first_names), rng.choice(vocab.last_names)
        self.usernames.append(people.unique_username(rng, first, last, taken))
        self.display_names.append(f"{first} {last}")
        self.bios.append(people.bio(rng, [vocab.cuisines[c].name for c in cuisines], vocab.tags[tags[0]]))

    def _plan_authors(self, rng: random.Random) -> None:
        """Who writes recipes, and how much: a minority of users, prolific ones rare (Zipf over a random order)."""
        n = self.spec.users
        authors = [i for i in range(n) if i == 0 or rng.random() < AUTHOR_SHARE]
        ranks = list(range(len(authors)))
        rng.shuffle(ranks)
        author_w = zipf_weights(len(authors), AUTHOR_ZIPF_S)
        weight = [0.0] * n
        for a, r in zip(authors, ranks, strict=True):
            weight[a] = author_w[r]
        self._author_cum = list(itertools.accumulate(weight))

    def _plan_catalog(self) -> None:
        vocab = vocabulary()
        rng = self._rng("catalog")
        at = from_ms(self.start_ms)
        self.ingredient_ids = [uuid7_at(at, rng) for _ in vocab.ingredients]
        self.tag_ids = [uuid7_at(at, rng) for _ in vocab.tags]

    def recipe_rng(self, j: int) -> random.Random:
        """Recipe j's own stream: its text is the same whenever it is composed."""
        return self._rng(f"recipe:{j}")

    def author_tags(self, author: int) -> list[str]:
        tags = vocabulary().tags
        return [tags[t] for t in self.user_tags[author]]

    def _plan_recipes(self) -> None:
        rng = self._rng("recipes")
        m = self.spec.recipes
        self.recipe_ms = spread_ms(rng, m, self.start_ms + DAY_MS, self.end_ms, 0.7)
        self.recipe_ids = [uuid7_at(from_ms(ms), rng) for ms in self.recipe_ms]
        cuisine_w = zipf_weights(len(vocabulary().cuisines), CUISINE_ZIPF_S)
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
            while k < len(self.user_ms) and self.user_ms[k] < self.recipe_ms[j]:
                k += 1
            self._plan_recipe(rng, j, k, ranks[j], zipf, cuisine_w)
        # Views by visitors who are not users: the Zipf weight with a little noise, plus a small trickle.
        anonymous_total = ANONYMOUS_VIEWS_PER_RECIPE * m
        self.anonymous_views = [
            int(anonymous_total * w * rng.lognormvariate(0, 0.3) + rng.expovariate(1 / 8))
            if public
            else rng.randint(0, 3)
            for w, public in zip(self.recipe_weight, self.recipe_public, strict=True)
        ]
        self._plan_pools()

    def _plan_recipe(
        self, rng: random.Random, j: int, k: int, rank: int, zipf: list[float], cuisine_w: list[float]
    ) -> None:
        """Recipe j's author (one of the first k users), cuisine, visibility, popularity, quality and tags."""
        cuisines = vocabulary().cuisines
        m = self.spec.recipes
        t = self.recipe_ms[j]
        x = rng.random() * self._author_cum[k - 1]
        author = min(bisect_right(self._author_cum, x, 0, k), k - 1)
        prefs = self.user_cuisines[author]
        if rng.random() < 0.8:
            cuisine = rng.choices(prefs, weights=(5, 3, 2)[: len(prefs)])[0]
        else:
            cuisine = rng.choices(range(len(cuisines)), weights=cuisine_w)[0]
        self.recipe_author.append(author)
        self.recipe_cuisine.append(cuisine)
        self.recipe_public.append(rng.random() >= self.spec.private_share)
        self.recipe_weight.append(zipf[rank])
        # Better recipes are a little more popular, and popular ones a little better rated.
        self.recipe_quality.append(3.2 + 0.7 * (1 - rank / max(m, 1)) + rng.gauss(0, 0.5))
        edited = rng.random() < 0.2
        self.recipe_updated_ms.append(after(rng, t, self.end_ms, 10) if edited else t)
        composed = compose_recipe(self.recipe_rng(j), cuisines[cuisine], self.author_tags(author))
        self.recipe_tags.append(tuple(composed.tags))
        self.child_counts["recipe_ingredient"] += len(composed.lines)
        self.child_counts["step"] += len(composed.steps)
        self.child_counts["recipe_tag"] += len(composed.tags)

    def _plan_pools(self) -> None:
        """What users draw from: public recipes by weight (overall, per cuisine, per tag) and whom to follow."""
        vocab = vocabulary()
        public = [j for j in range(self.spec.recipes) if self.recipe_public[j]]
        self.n_public = len(public)
        self._global_pool = Pool(public, (self.recipe_weight[j] for j in public))
        by_cuisine: list[list[int]] = [[] for _ in vocab.cuisines]
        by_tag: list[list[int]] = [[] for _ in vocab.tags]
        for j in public:
            by_cuisine[self.recipe_cuisine[j]].append(j)
            for tag in self.recipe_tags[j]:
                by_tag[tag].append(j)
        self._cuisine_pools = [Pool(js, (self.recipe_weight[j] for j in js)) for js in by_cuisine]
        self._tag_pools = [Pool(js, (self.recipe_weight[j] for j in js)) for js in by_tag]
        # Whom to follow: authors, weighted by how much they publish (overall and per cuisine).
        self.recipes_by_author = [0] * self.spec.users
        per_cuisine: list[dict[int, int]] = [{} for _ in vocab.cuisines]
        for j in public:
            a = self.recipe_author[j]
            self.recipes_by_author[a] += 1
            counts = per_cuisine[self.recipe_cuisine[j]]
            counts[a] = counts.get(a, 0) + 1
        self._author_pools = [Pool(list(c), c.values()) for c in per_cuisine]
        self._people_pool = Pool(list(range(self.spec.users)), (0.3 + c for c in self.recipes_by_author))

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

    # -- one user's activity -------------------------------------------------------------------------------

    def interactions(self, u: int) -> Interactions:
        """User u's views, ratings, favorites and follows: the same every time for the same spec."""
        rng = self._rng(f"user:{u}")
        acts = Interactions()
        if self.n_public:
            self._view(rng, u, acts)
        liked_authors = self._react(rng, u, acts)
        if self.spec.users > 1:
            self._follow(rng, u, acts, liked_authors)
        return acts

    def _view(self, rng: random.Random, u: int, acts: Interactions) -> None:
        """Views: more for active and long-standing users, mostly of recipes that match their taste."""
        tenure = (self.end_ms - self.user_ms[u]) / (self.end_ms - self.start_ms)
        my_cuisines = self.user_cuisines[u]
        my_tags = self.user_tags[u]
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

    def _react(self, rng: random.Random, u: int, acts: Interactions) -> list[int]:
        """Ratings and favorites of what u viewed (never of u's own recipes); returns the authors u liked."""
        u_ms = self.user_ms[u]
        rater = self.user_rater[u]
        bias = rng.gauss(0, 0.35)
        liked_authors: list[int] = []
        for j in acts.views:
            if self.recipe_author[j] == u:
                continue
            cuisine_match = self.recipe_cuisine[j] in self.user_cuisines[u]
            tag_match = any(t in self.user_tags[u] for t in self.recipe_tags[j])
            lo = max(u_ms, self.recipe_ms[j])
            p_rate = rater * (1.5 if cuisine_match else 0.5) * (1.2 if tag_match else 1.0)
            stars = 0
            rated_ms = lo
            if rng.random() < p_rate:
                taste = (0.35 if cuisine_match else -0.3) + (0.15 if tag_match else 0.0)
                raw = self.recipe_quality[j] + taste + bias + rng.gauss(0, 0.8)
                stars = min(5, max(1, round(raw)))
                review = self._review(rng, stars) if rng.random() < (0.5 if stars in (1, 5) else 0.3) else None
                rated_ms = after(rng, lo, self.end_ms, 20)
                updated_ms = after(rng, rated_ms, self.end_ms, 15) if rng.random() < 0.1 else rated_ms
                acts.ratings.append((j, stars, review, rated_ms, updated_ms))
            p_fav = {5: 0.45, 4: 0.2, 3: 0.04}.get(stars, 0.01) if stars else (0.06 if cuisine_match else 0.02)
            if rng.random() < p_fav:
                fav_ms = after(rng, rated_ms, self.end_ms, 2) if stars else after(rng, lo, self.end_ms, 20)
                acts.favorites.append((j, fav_ms))
                liked_authors.append(self.recipe_author[j])
            elif stars >= 4:
                liked_authors.append(self.recipe_author[j])
        return liked_authors

    def _follow(self, rng: random.Random, u: int, acts: Interactions, liked_authors: list[int]) -> None:
        """Follows: authors u liked, prolific authors of u's cuisines, and people at large."""
        n = self.spec.users
        u_ms = self.user_ms[u]
        my_cuisines = self.user_cuisines[u]
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
            acts.follows.append((v, after(rng, max(u_ms, self.user_ms[v]), self.end_ms, 60)))

    @staticmethod
    def _review(rng: random.Random, stars: int) -> str:
        vocab = vocabulary()
        text = rng.choice(vocab.review_openers) + rng.choice(vocab.reviews_by_stars[stars])
        return text + rng.choice(vocab.review_closers)

    # -- reading the plan ----------------------------------------------------------------------------------

    def taste(self, u: int) -> Taste:
        vocab = vocabulary()
        return Taste(
            tuple(vocab.cuisines[c].name for c in self.user_cuisines[u]),
            tuple(vocab.tags[t] for t in self.user_tags[u]),
        )

    def row_counts(self) -> dict[str, int]:
        """Exactly how many rows `batches()` yields per table."""
        m = self.spec.recipes
        vocab = vocabulary()
        return {
            "user_account": self.spec.users,
            "ingredient": len(vocab.ingredients),
            "tag": len(vocab.tags),
            "recipe": m,
            **self.child_counts,
            "nutrition": m,
            "follow": self.follow_total,
            "rating": sum(self.rating_count),
            "favorite": sum(self.favorite_count),
        }

    def batches(self) -> Iterator[Batch]:
        """Every row, in batches of at most `spec.batch_size`, parents before children."""
        return rows.batches(self)


def generate(spec: SeedSpec) -> Iterator[Batch]:
    """All rows for `spec`, in insertable order."""
    return SeedPlan(spec).batches()
