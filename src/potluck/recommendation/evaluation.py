"""Offline evaluation: a time-based split per user, ranking metrics, and the loop that scores every method alike.

Pure: the CLI (`potluck recommend evaluate`) reads the Snapshot and prints what `evaluate` returns.

The split: each user's likes (favorites, ratings of 4 or more) ordered by time; the last HOLDOUT of them (at least
one) are held out, and so is everything the user did from the first held-out like on (a later rating below 4
included). Users with fewer than MIN_LIKES likes are not evaluated but train as a whole. Other users' training
events may be later than a user's cutoff: the split is per user, as a deployed model trained nightly sees it.
Follows made at or after a user's cutoff are dropped from that user's training too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import sparse

from potluck.recommendation.dataset import BoolArray, Events, FloatArray, Follows, IntArray, Snapshot

HOLDOUT = 0.2
MIN_LIKES = 2
K = 10
# Ranked lists are cut from this many best-scored candidates (before the diversity re-rank).
POOL = 60


# -- metrics (one user's list, then the whole catalogue) ----------------------------------------------------------


def precision_at_k(recommended: Sequence[int], relevant: Collection[int], k: int = K) -> float:
    """Hits among the first k places, over k (a short list is not rewarded for its shortness)."""
    if k <= 0:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / k


def recall_at_k(recommended: Sequence[int], relevant: Collection[int], k: int = K) -> float:
    """Hits among the first k places, over the number of relevant items (0 when there are none)."""
    if not relevant:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / len(relevant)


def ndcg_at_k(recommended: Sequence[int], relevant: Collection[int], k: int = K) -> float:
    """Binary-relevance NDCG: sum of 1/log2(rank + 1) over hits, over the best possible for min(|relevant|, k)."""
    if not relevant or k <= 0:
        return 0.0
    dcg = sum(1 / math.log2(rank + 2) for rank, item in enumerate(recommended[:k]) if item in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal


def coverage(lists: Iterable[Sequence[int]], catalogue_size: int) -> float:
    """The share of the catalogue that appears in at least one list."""
    if catalogue_size <= 0:
        return 0.0
    shown: set[int] = set()
    for items in lists:
        shown.update(items)
    return len(shown) / catalogue_size


def novelty(lists: Iterable[Sequence[int]], liked_by: Sequence[float] | FloatArray, n_users: int) -> float:
    """Mean self-information -log2 p(i) of recommended items, p(i) = (users who liked i + 1) / (users + 1)."""
    total, count = 0.0, 0
    for items in lists:
        for item in items:
            total += -math.log2((float(liked_by[item]) + 1) / (n_users + 1))
            count += 1
    return total / count if count else 0.0


# -- the split --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Split:
    train: Events
    follows: Follows
    users: IntArray  # evaluated users
    test: dict[int, frozenset[int]]  # evaluated user -> held-out liked items
    cutoff_ms: dict[int, int]  # evaluated user -> time of their first held-out like


def sample_users(split: Split, n: int | None, seed: int = 0) -> Split:
    """The same split, evaluated on `n` of its users drawn at random (all of them when n is None or larger).

    Training is unchanged: only fewer users are ranked and measured, which is most of an evaluation's time."""
    if n is None or n >= len(split.users):
        return split
    chosen = np.sort(np.random.default_rng(seed).choice(split.users, size=n, replace=False))
    kept = {int(u) for u in chosen}
    return Split(
        split.train,
        split.follows,
        chosen.astype(np.int64),
        {u: t for u, t in split.test.items() if u in kept},
        {u: c for u, c in split.cutoff_ms.items() if u in kept},
    )


def time_split(events: Events, follows: Follows, holdout: float = HOLDOUT, min_likes: int = MIN_LIKES) -> Split:
    """Hold out each user's last `holdout` share of likes (and everything from then on); see the module doc."""
    order = np.lexsort((events.item, events.time_ms, events.user))
    keep = np.ones(len(events), dtype=np.bool_)
    test: dict[int, frozenset[int]] = {}
    cutoff: dict[int, int] = {}
    bounds = np.flatnonzero(np.diff(events.user[order])) + 1
    for rows in np.split(order, bounds) if len(order) else []:
        likes = rows[events.weight[rows] > 0]  # already in (time, item) order
        if len(likes) < min_likes:
            continue
        n_test = max(1, round(holdout * len(likes)))
        held = likes[-n_test:]
        user = int(events.user[rows[0]])
        at = int(events.time_ms[held[0]])
        keep[held] = False
        # Anything else the user did from the cutoff on is the future too (a like tied at the cutoff that sorts
        # before the first held-out one stays: it is not held out).
        later = rows[(events.time_ms[rows] >= at) & (events.weight[rows] <= 0)]
        keep[later] = False
        test[user] = frozenset(int(i) for i in events.item[held])
        cutoff[user] = at
    if cutoff:
        limit = np.full(
            int(max(events.user.max(initial=0), follows.follower.max(initial=0))) + 1, np.iinfo(np.int64).max
        )
        for user, at in cutoff.items():
            limit[user] = at
        follow_keep: BoolArray = follows.time_ms < limit[follows.follower]
    else:
        follow_keep = np.ones(len(follows.follower), dtype=np.bool_)
    users = np.array(sorted(test), dtype=np.int64)
    return Split(events.take(keep), follows.take(follow_keep), users, test, cutoff)


# -- evaluating a method ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """What every method may use: the catalogue and the training half of the split, as matrices."""

    snapshot: Snapshot
    split: Split
    likes: sparse.csr_matrix  # users x items, like weights (training)
    seen: sparse.csr_matrix  # users x items, anything the user favorited or rated (training)
    followees: sparse.csr_matrix  # users x users (training)
    liked_by: FloatArray  # per item: users who liked it in training

    @classmethod
    def of(cls, snapshot: Snapshot, split: Split) -> Context:
        likes = split.train.matrix(snapshot.n_users, snapshot.n_items, likes_only=True)
        seen = split.train.matrix(snapshot.n_users, snapshot.n_items)
        liked_by = np.asarray((likes > 0).sum(axis=0), dtype=np.float64).ravel()
        return cls(snapshot, split, likes, seen, split.follows.matrix(snapshot.n_users), liked_by)


Scorer = Callable[[IntArray], FloatArray]  # users -> users x items scores (higher is better)
Rerank = Callable[[Sequence[int], int], list[int]]  # best-first candidates, k -> the k shown


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    scorer: Scorer
    rerank: Rerank | None = None


@dataclass(slots=True)
class Report:
    name: str
    precision: float = 0.0
    recall: float = 0.0
    ndcg: float = 0.0
    coverage: float = 0.0
    novelty: float = 0.0
    users: int = 0
    # NDCG@K by how many likes the user had in training (the cold-start curve): bucket label -> (users, ndcg)
    by_history: dict[str, tuple[int, float]] = field(default_factory=dict)


HISTORY_BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 4), (5, 9), (10, 19), (20, 10**9))


def bucket_label(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}+" if hi >= 10**9 else f"{lo}-{hi}"


def top_candidates(scores: FloatArray, excluded: BoolArray, pool: int) -> list[int]:
    """The `pool` best items by score, best first, none excluded and none scored -inf (ties: lower index)."""
    masked = np.where(excluded, -np.inf, scores)
    n = min(pool, len(masked))
    if n <= 0:
        return []
    part = np.argpartition(-masked, n - 1)[:n]
    best = part[np.lexsort((part, -masked[part]))]
    return [int(i) for i in best if np.isfinite(masked[i])]


def evaluate(
    method: Method,
    ctx: Context,
    k: int = K,
    batch: int = 256,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Rank for every evaluated user, from training data only, and measure against their held-out likes."""
    snapshot, split = ctx.snapshot, ctx.split
    private = ~snapshot.public
    lists: list[list[int]] = []
    per_user: list[tuple[float, float, float, int]] = []
    history = np.asarray((ctx.likes > 0).sum(axis=1)).ravel()
    for start in range(0, len(split.users), batch):
        users = split.users[start : start + batch]
        scores = method.scorer(users)
        seen = ctx.seen[users]
        for row, user in enumerate(users):
            excluded = private.copy()
            excluded[seen.indices[seen.indptr[row] : seen.indptr[row + 1]]] = True
            excluded[snapshot.author == user] = True
            ranked = top_candidates(scores[row], excluded, max(POOL, k))
            shown = method.rerank(ranked, k) if method.rerank is not None else ranked[:k]
            relevant = split.test[int(user)]
            lists.append(shown)
            per_user.append(
                (
                    precision_at_k(shown, relevant, k),
                    recall_at_k(shown, relevant, k),
                    ndcg_at_k(shown, relevant, k),
                    int(history[user]),
                )
            )
        if progress is not None:
            progress(len(users))
    report = Report(method.name, users=len(per_user))
    if per_user:
        values = np.array(per_user, dtype=np.float64)
        report.precision, report.recall, report.ndcg = (float(v) for v in values[:, :3].mean(axis=0))
        for lo, hi in HISTORY_BUCKETS:
            in_bucket = (values[:, 3] >= lo) & (values[:, 3] <= hi)
            if in_bucket.any():
                report.by_history[bucket_label(lo, hi)] = (int(in_bucket.sum()), float(values[in_bucket, 2].mean()))
    report.coverage = coverage(lists, int(snapshot.public.sum()))
    report.novelty = novelty(lists, ctx.liked_by, snapshot.n_users)
    return report


# -- cold start: the same users with only their first likes ------------------------------------------------------

COLD_START_LIKES = (0, 1, 2, 3, 5)


def first_likes(ctx: Context, k: int) -> Context:
    """The context as if each evaluated user had only their first `k` training likes (by time): what the model
    knew of them after k likes. Everything else stays (other users, the held-out likes, what is excluded as seen),
    so the curve over k measures only how much a user's own likes are worth."""
    train = ctx.split.train
    evaluated = np.zeros(ctx.snapshot.n_users, dtype=np.bool_)
    evaluated[ctx.split.users] = True
    likes = np.flatnonzero((train.weight > 0) & evaluated[train.user])
    order = likes[np.lexsort((train.item[likes], train.time_ms[likes], train.user[likes]))]
    users = train.user[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1] if len(order) else np.zeros(0, dtype=np.int64)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    drop = order[rank >= k]
    keep = np.ones(len(train), dtype=np.bool_)
    keep[drop] = False
    kept = train.take(keep)
    return replace(ctx, likes=kept.matrix(ctx.snapshot.n_users, ctx.snapshot.n_items, likes_only=True))


def declared_from_training(
    ctx: Context, n_cuisines: int = 2, n_tags: int = 3
) -> dict[int, tuple[list[int], list[int]]]:
    """What each evaluated user would declare at sign-up, stood in for by the most liked cuisines and tags of their
    training likes (the seeded data has no declarations): user -> (cuisine positions, tag positions)."""
    snapshot = ctx.snapshot
    out: dict[int, tuple[list[int], list[int]]] = {}
    rows = ctx.likes[ctx.split.users]
    for row, user in enumerate(ctx.split.users):
        items = rows.indices[rows.indptr[row] : rows.indptr[row + 1]]
        cuisines = snapshot.cuisine[items]
        counts = np.bincount(cuisines[cuisines >= 0], minlength=len(snapshot.cuisines))
        tag_counts = np.asarray(snapshot.tags[items].sum(axis=0)).ravel()
        out[int(user)] = (_top(counts, n_cuisines), _top(tag_counts, n_tags))
    return out


def _top(counts: FloatArray | IntArray, n: int) -> list[int]:
    order = np.lexsort((np.arange(len(counts)), -counts))[:n]
    return [int(i) for i in order if counts[i] > 0]


def with_history(ctx: Context, minimum: int) -> Context:
    """The context evaluated only on users with at least `minimum` training likes (the cold-start curve's users:
    each of them can be cut to any k up to `minimum`)."""
    history = np.asarray((ctx.likes > 0).sum(axis=1)).ravel()
    return only_users(ctx, ctx.split.users[history[ctx.split.users] >= minimum])


def only_users(ctx: Context, users: IntArray) -> Context:
    """The context evaluated on `users` only (a subset of its evaluated users); training unchanged."""
    kept = {int(u) for u in users}
    split = replace(
        ctx.split,
        users=np.array(sorted(kept), dtype=np.int64),
        test={u: t for u, t in ctx.split.test.items() if u in kept},
        cutoff_ms={u: c for u, c in ctx.split.cutoff_ms.items() if u in kept},
    )
    return replace(ctx, split=split)


def declared_from_snapshot(ctx: Context) -> dict[int, tuple[list[int], list[int]]]:
    """What evaluated users declared (user_account.tastes, e.g. as seeded), as positions; names no recipe has are
    dropped. Declarations are not timed (a sign-up form), so they are not part of the split."""
    snapshot = ctx.snapshot
    cuisine_at = {name: i for i, name in enumerate(snapshot.cuisines)}
    tag_at = {name: i for i, name in enumerate(snapshot.tag_names)}
    out: dict[int, tuple[list[int], list[int]]] = {}
    for user in ctx.split.users:
        cuisines, tags = snapshot.declared.get(int(user), ((), ()))
        positions = ([cuisine_at[c] for c in cuisines if c in cuisine_at], [tag_at[t] for t in tags if t in tag_at])
        if positions[0] or positions[1]:
            out[int(user)] = positions
    return out
