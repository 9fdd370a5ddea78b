"""What the model is trained on, as plain arrays: recipes, their content, and who liked what when. Pure, no I/O.

A `Snapshot` is read once by the repository (`TrainingRepository.snapshot`) and then only indexed: items and users
are positions (0..n-1) in `recipe_ids` and `user_ids`. One event per (user, recipe): favorites and ratings are
merged, so a recipe both favorited and rated counts once, by its strongest signal (scoring.like_weight).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
from scipy import sparse

from potluck.recommendation.scoring import LIKED_STARS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def like_strength(favorited: bool, stars: int | None) -> float:
    """A favorite or 5 stars 1, 4 stars 0.5, anything else 0 (scoring.like_weight on plain values)."""
    weight = 1.0 if favorited else 0.0
    if stars is not None and stars >= LIKED_STARS:
        weight = max(weight, (stars - (LIKED_STARS - 1)) / 2)
    return weight


@dataclass(frozen=True, slots=True)
class Events:
    """One row per (user, recipe) the user favorited or rated: `weight` > 0 is a like, 0 a rating below 4.

    `time_ms` is when the like happened (the earliest favorite or liking rating), or, for a non-like, when the
    rating was given: what a time-based split orders by."""

    user: IntArray
    item: IntArray
    weight: FloatArray
    time_ms: IntArray
    stars: IntArray  # 0: not rated

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask: BoolArray | IntArray) -> Events:
        return Events(self.user[mask], self.item[mask], self.weight[mask], self.time_ms[mask], self.stars[mask])

    def matrix(self, n_users: int, n_items: int, *, likes_only: bool = False) -> sparse.csr_matrix:
        """users x items: the like weight (or, without `likes_only`, a tiny weight for a non-like: 'seen')."""
        weight = self.weight if likes_only else np.where(self.weight > 0, self.weight, 1e-6)
        keep = weight > 0
        return sparse.csr_matrix(
            (weight[keep], (self.user[keep], self.item[keep])), shape=(n_users, n_items), dtype=np.float64
        )


@dataclass(frozen=True, slots=True)
class Follows:
    follower: IntArray
    followee: IntArray
    time_ms: IntArray

    def take(self, mask: BoolArray) -> Follows:
        return Follows(self.follower[mask], self.followee[mask], self.time_ms[mask])

    def matrix(self, n_users: int) -> sparse.csr_matrix:
        ones = np.ones(len(self.follower), dtype=np.float64)
        return sparse.csr_matrix((ones, (self.follower, self.followee)), shape=(n_users, n_users))


@dataclass(frozen=True, slots=True)
class Snapshot:
    recipe_ids: Sequence[uuid.UUID]
    user_ids: Sequence[uuid.UUID]
    author: IntArray  # item -> user position
    cuisine: IntArray  # item -> position in `cuisines`, -1 for none
    cuisines: Sequence[str]
    public: BoolArray
    tags: sparse.csr_matrix  # items x tag names (1 where the recipe has the tag)
    tag_names: Sequence[str]
    ingredients: sparse.csr_matrix  # items x ingredients (1 where the recipe uses it)
    events: Events
    follows: Follows
    # user position -> the (cuisine names, tag names) they declared (user_account.tastes), for those who did
    declared: Mapping[int, tuple[Sequence[str], Sequence[str]]] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.recipe_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def cuisine_onehot(cuisine: IntArray, n_cuisines: int) -> sparse.csr_matrix:
    """items x cuisines: 1 at the recipe's cuisine (a row of zeros for none)."""
    has = cuisine >= 0
    rows = np.flatnonzero(has)
    return sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cuisine[has])), shape=(len(cuisine), n_cuisines), dtype=np.float64
    )


def to_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


class SnapshotBuilder:
    """Collects rows as the repository reads them and indexes them into a Snapshot."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, int] = {}
        self.items: dict[uuid.UUID, int] = {}
        self._author: list[int] = []
        self._cuisine: list[int] = []
        self._public: list[bool] = []
        self._cuisines: dict[str, int] = {}
        self._pairs: dict[str, dict[str, int]] = {"tag": {}, "ingredient": {}}
        self._pair_rows: dict[str, tuple[list[int], list[int]]] = {"tag": ([], []), "ingredient": ([], [])}
        # (user, item) -> [favorited, stars, like time, seen time]
        self._events: dict[tuple[int, int], list[object]] = {}
        self._follows: list[tuple[int, int, int]] = []
        self.declared: dict[int, tuple[Sequence[str], Sequence[str]]] = {}

    def user(self, user_id: uuid.UUID) -> int:
        return self.users.setdefault(user_id, len(self.users))

    def add_declared(self, user_id: uuid.UUID, tastes: Mapping[str, Sequence[str]] | None) -> None:
        if tastes and (tastes.get("cuisines") or tastes.get("tags")):
            self.declared[self.user(user_id)] = (list(tastes.get("cuisines", ())), list(tastes.get("tags", ())))

    def add_recipe(self, recipe_id: uuid.UUID, author_id: uuid.UUID, cuisine: str | None, public: bool) -> None:
        self.items[recipe_id] = len(self._author)
        self._author.append(self.user(author_id))
        self._cuisine.append(-1 if cuisine is None else self._cuisines.setdefault(cuisine, len(self._cuisines)))
        self._public.append(public)

    def add_feature(self, kind: str, recipe_id: uuid.UUID, name: str) -> None:
        """A tag or ingredient of a recipe already added (others are ignored)."""
        item = self.items.get(recipe_id)
        if item is None:
            return
        names = self._pairs[kind]
        rows, cols = self._pair_rows[kind]
        rows.append(item)
        cols.append(names.setdefault(name, len(names)))

    def _event(self, user_id: uuid.UUID, recipe_id: uuid.UUID) -> list[object] | None:
        item = self.items.get(recipe_id)
        if item is None:
            return None
        return self._events.setdefault((self.user(user_id), item), [False, None, None, None])

    def add_favorite(self, user_id: uuid.UUID, recipe_id: uuid.UUID, at: datetime) -> None:
        event = self._event(user_id, recipe_id)
        if event is not None:
            event[0] = True
            _earliest(event, 2, to_ms(at))
            _earliest(event, 3, to_ms(at))

    def add_rating(self, user_id: uuid.UUID, recipe_id: uuid.UUID, stars: int, at: datetime) -> None:
        event = self._event(user_id, recipe_id)
        if event is not None:
            event[1] = stars
            if stars >= LIKED_STARS:
                _earliest(event, 2, to_ms(at))
            _earliest(event, 3, to_ms(at))

    def add_follow(self, follower_id: uuid.UUID, followee_id: uuid.UUID, at: datetime) -> None:
        self._follows.append((self.user(follower_id), self.user(followee_id), to_ms(at)))

    def add_users(self, user_ids: Iterable[uuid.UUID]) -> None:
        for user_id in user_ids:
            self.user(user_id)

    def build(self) -> Snapshot:
        n_items = len(self._author)
        features = {}
        for kind, names in self._pairs.items():
            rows, cols = self._pair_rows[kind]
            m = sparse.csr_matrix(
                (np.ones(len(rows)), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                shape=(n_items, len(names)),
            )
            m.data[:] = 1.0  # a duplicate row counts once
            features[kind] = (m, sorted(names, key=names.__getitem__))
        keys = list(self._events)
        values = [self._events[k] for k in keys]
        weight = np.array([like_strength(bool(v[0]), v[1]) for v in values], dtype=np.float64)  # type: ignore[arg-type]
        time_ms = np.array([v[2] if w > 0 else v[3] for v, w in zip(values, weight, strict=True)], dtype=np.int64)
        events = Events(
            np.array([k[0] for k in keys], dtype=np.int64),
            np.array([k[1] for k in keys], dtype=np.int64),
            weight,
            time_ms,
            np.array([v[1] or 0 for v in values], dtype=np.int64),
        )
        follows = Follows(
            np.array([f[0] for f in self._follows], dtype=np.int64),
            np.array([f[1] for f in self._follows], dtype=np.int64),
            np.array([f[2] for f in self._follows], dtype=np.int64),
        )
        return Snapshot(
            recipe_ids=list(self.items),
            user_ids=list(self.users),
            author=np.asarray(self._author, dtype=np.int64),
            cuisine=np.asarray(self._cuisine, dtype=np.int64),
            cuisines=sorted(self._cuisines, key=self._cuisines.__getitem__),
            public=np.asarray(self._public, dtype=np.bool_),
            tags=features["tag"][0],
            tag_names=features["tag"][1],
            ingredients=features["ingredient"][0],
            events=events,
            follows=follows,
            declared=dict(self.declared),
        )


def _earliest(event: list[object], index: int, ms: int) -> None:
    current = event[index]
    if current is None or ms < current:  # type: ignore[operator]
        event[index] = ms
