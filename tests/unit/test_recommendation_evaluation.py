"""The offline evaluation: metrics by hand, the time split's no-leakage guarantee, the formula over matrices."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from potluck.recommendation.dataset import Events, Follows, SnapshotBuilder, cuisine_onehot, like_strength
from potluck.recommendation.evaluation import (
    Context,
    Method,
    coverage,
    declared_from_snapshot,
    declared_from_training,
    evaluate,
    first_likes,
    ndcg_at_k,
    novelty,
    only_users,
    precision_at_k,
    recall_at_k,
    sample_users,
    time_split,
    top_candidates,
    with_history,
)
from potluck.recommendation.methods import formula_scores, popularity_method, shrunk_quality
from potluck.recommendation.scoring import Candidate, Interaction, popularity, quality, score, taste_profile

# -- metrics ---------------------------------------------------------------------------------------------------


def test_precision_and_recall_count_hits_in_the_first_k() -> None:
    recommended = [5, 1, 7, 3]
    assert precision_at_k(recommended, {1, 3, 9}, k=4) == 0.5
    assert precision_at_k(recommended, {1, 3, 9}, k=2) == 0.5
    assert precision_at_k([1], {1}, k=10) == 0.1  # a short list is not rewarded
    assert recall_at_k(recommended, {1, 3, 9}, k=4) == pytest.approx(2 / 3)
    assert recall_at_k(recommended, set(), k=4) == 0.0


def test_ndcg_is_one_for_a_perfect_list_and_discounts_by_rank() -> None:
    assert ndcg_at_k([1, 2, 3], {1, 2}, k=3) == 1.0
    assert ndcg_at_k([9, 1], {1}, k=2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k([9, 8], {1}, k=2) == 0.0
    # The ideal counts at most k relevant items.
    assert ndcg_at_k([1, 2], {1, 2, 3, 4}, k=2) == 1.0


@given(
    st.lists(st.integers(0, 30), unique=True, max_size=15),
    st.sets(st.integers(0, 30), max_size=10),
    st.integers(1, 15),
)
def test_metrics_stay_between_zero_and_one(recommended: list[int], relevant: set[int], k: int) -> None:
    for metric in (precision_at_k, recall_at_k, ndcg_at_k):
        assert 0.0 <= metric(recommended, relevant, k) <= 1.0 + 1e-12


def test_coverage_and_novelty() -> None:
    assert coverage([[1, 2], [2, 3]], 10) == 0.3
    assert coverage([], 10) == 0.0
    liked_by = [99.0, 0.0]
    # An item everyone liked says nothing new; one nobody liked says log2(n + 1) bits.
    assert novelty([[0]], liked_by, 99) == pytest.approx(0.0)
    assert novelty([[1]], liked_by, 99) == pytest.approx(math.log2(100))
    assert novelty([[0, 1]], liked_by, 99) == pytest.approx(math.log2(100) / 2)


def test_top_candidates_drops_excluded_and_minus_infinity_and_orders_ties_by_index() -> None:
    scores = np.array([0.5, 2.0, 2.0, -np.inf, 1.0])
    excluded = np.array([False, False, False, False, True])
    assert top_candidates(scores, excluded, 10) == [1, 2, 0]
    assert top_candidates(scores, excluded, 2) == [1, 2]


# -- the split ---------------------------------------------------------------------------------------------------


def _events(rows: list[tuple[int, int, float, int]]) -> Events:
    user, item, weight, time_ms = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Events(
        np.array(user, dtype=np.int64),
        np.array(item, dtype=np.int64),
        np.array(weight, dtype=np.float64),
        np.array(time_ms, dtype=np.int64),
        np.zeros(len(rows), dtype=np.int64),
    )


NO_FOLLOWS = Follows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def test_split_holds_out_each_users_latest_fifth_of_likes_and_everything_after() -> None:
    rows = [(0, item, 1.0, 100 + item) for item in range(10)]  # user 0 likes items 0..9 in order
    rows += [(0, 20, 0.0, 109), (0, 21, 0.0, 50)]  # a dislike after the cutoff, one before
    rows += [(1, 3, 1.0, 500)]  # user 1: one like, too few to evaluate, trains
    split = time_split(_events(rows), NO_FOLLOWS, holdout=0.2, min_likes=2)
    assert split.test == {0: frozenset({8, 9})}
    assert split.cutoff_ms == {0: 108}
    train = set(zip(split.train.user.tolist(), split.train.item.tolist(), strict=True))
    assert train == {(0, i) for i in range(8)} | {(0, 21), (1, 3)}


def test_split_drops_follows_made_from_the_cutoff_on() -> None:
    rows = [(0, 1, 1.0, 10), (0, 2, 1.0, 20)]
    follows = Follows(np.array([0, 0, 1]), np.array([1, 2, 0]), np.array([15, 25, 99]))
    split = time_split(_events(rows), follows, holdout=0.5, min_likes=2)
    assert split.cutoff_ms == {0: 20}
    assert split.follows.followee.tolist() == [1, 0]  # user 0's follow at 25 is the future; user 1 not evaluated


event_rows = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 12), st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 40)),
    max_size=80,
    unique_by=lambda r: (r[0], r[1]),
)


@settings(max_examples=200)
@given(event_rows, st.sampled_from([0.1, 0.2, 0.5]), st.integers(2, 4))
def test_no_held_out_interaction_is_used_in_training(
    rows: list[tuple[int, int, float, int]], holdout: float, min_likes: int
) -> None:
    """No leakage: no held-out (user, item) is in training, and nothing a user did at or after their cutoff."""
    split = time_split(_events(rows), NO_FOLLOWS, holdout, min_likes)
    train = list(zip(split.train.user.tolist(), split.train.item.tolist(), split.train.time_ms.tolist(), strict=True))
    for user, items in split.test.items():
        assert items, "an evaluated user has something held out"
        assert not any(u == user and i in items for u, i, _ in train)
        at = split.cutoff_ms[user]
        assert all(t <= at for u, _, t in train if u == user)
        # Held-out likes are the user's latest likes.
        latest_trained_like = max(
            (t for u, i, t in train if u == user and (u, i) in {(r[0], r[1]) for r in rows if r[2] > 0}), default=-1
        )
        assert latest_trained_like <= at
    # Everything not held out and not after a cutoff still trains: the split loses nothing else.
    held = {(u, i) for u, items in split.test.items() for i in items}
    for u, i, w, t in rows:
        if (u, i) in held:
            continue
        if u in split.cutoff_ms and w <= 0 and t >= split.cutoff_ms[u]:
            continue
        assert (u, i, t) in train


# -- the snapshot ------------------------------------------------------------------------------------------------


def test_snapshot_merges_a_favorite_and_a_rating_into_one_event_at_the_first_like() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    user, author, recipe, other = (uuid.UUID(int=i) for i in (1, 2, 3, 4))
    builder = SnapshotBuilder()
    builder.add_recipe(recipe, author, "thai", True)
    builder.add_recipe(other, author, None, False)
    builder.add_feature("tag", recipe, "spicy")
    builder.add_feature("tag", uuid.UUID(int=99), "unknown recipe: ignored")
    builder.add_rating(user, recipe, 5, at + timedelta(days=2))
    builder.add_favorite(user, recipe, at + timedelta(days=1))
    builder.add_rating(user, other, 2, at)
    snapshot = builder.build()
    assert snapshot.n_items == 2
    assert snapshot.cuisine.tolist() == [0, -1]
    assert snapshot.tags.toarray().tolist() == [[1.0], [0.0]]
    assert len(snapshot.events) == 2
    by_item = dict(zip(snapshot.events.item.tolist(), snapshot.events.weight.tolist(), strict=True))
    assert by_item == {0: 1.0, 1: 0.0}
    first = snapshot.events.item.tolist().index(0)
    assert snapshot.events.time_ms[first] == int((at + timedelta(days=1)).timestamp() * 1000)
    assert like_strength(False, 4) == 0.5


# -- the formula over matrices agrees with scoring.score -------------------------------------------------------


def test_formula_scores_agree_with_scoring_score_recipe_by_recipe() -> None:
    rng = np.random.default_rng(3)
    names = ["italian", "thai", "mexican"]
    tag_names = ["quick", "spicy", "vegan", "soup"]
    n_items = 12
    cuisine = rng.integers(-1, 3, n_items)
    tags = sparse.csr_matrix((rng.random((n_items, 4)) < 0.4).astype(np.float64))
    ratings = rng.integers(0, 6, n_items)  # one rating row per item, 0: none
    quality_v = shrunk_quality(np.arange(n_items), ratings, n_items)
    likers = rng.integers(0, 50, n_items).astype(np.float64)
    popular = np.array([popularity(int(f), 0) for f in likers])
    history = {0: 1.0, 3: 0.5, 5: 1.0}
    likes = sparse.csr_matrix(
        (list(history.values()), ([0] * len(history), list(history))), shape=(1, n_items), dtype=np.float64
    )
    followed = sparse.csr_matrix(rng.integers(0, 3, (1, n_items)).astype(np.float64))
    matrix = formula_scores(likes, followed, cuisine_onehot(cuisine, 3), tags, quality_v, popular)[0]

    def tags_of(i: int) -> tuple[str, ...]:
        return tuple(tag_names[t] for t in tags[i].indices)

    profile = taste_profile(
        Interaction(
            uuid.UUID(int=i),
            names[cuisine[i]] if cuisine[i] >= 0 else None,
            tags_of(i),
            favorited=w == 1.0,
            stars=None if w == 1.0 else 4,
        )
        for i, w in history.items()
    )
    for i in range(n_items):
        candidate = Candidate(
            recipe_id=uuid.UUID(int=1000 + i),
            author_id=uuid.UUID(int=7),
            cuisine=names[cuisine[i]] if cuisine[i] >= 0 else None,
            tags=tags_of(i),
            rating_avg=float(ratings[i]) if ratings[i] else None,
            rating_count=1 if ratings[i] else 0,
            favorites=int(likers[i]),
            views=0,
            followed_likers=int(followed[0, i]),
        )
        assert matrix[i] == pytest.approx(score(candidate, profile)), i
        assert quality_v[i] == pytest.approx(quality(candidate.rating_avg, candidate.rating_count))


# -- the evaluation loop -----------------------------------------------------------------------------------------


def _tiny_snapshot() -> tuple[SnapshotBuilder, list[uuid.UUID]]:
    builder = SnapshotBuilder()
    author = uuid.UUID(int=500)
    recipes = [uuid.UUID(int=100 + i) for i in range(6)]
    for i, recipe in enumerate(recipes):
        builder.add_recipe(recipe, author if i != 5 else uuid.UUID(int=1), "thai", i != 4)  # 4 private, 5 by user 1
    return builder, recipes


def test_evaluate_never_ranks_private_own_or_already_seen_recipes() -> None:
    builder, recipes = _tiny_snapshot()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    viewer = uuid.UUID(int=1)
    for day, j in enumerate((0, 1, 2)):
        builder.add_favorite(viewer, recipes[j], at + timedelta(days=day))
    for u in range(10, 20):  # everyone else likes everything: private and own recipes are the most popular
        for recipe in recipes:
            builder.add_favorite(uuid.UUID(int=u), recipe, at)
    snapshot = builder.build()
    split = time_split(snapshot.events, snapshot.follows, holdout=0.34, min_likes=3)
    ctx = Context.of(snapshot, split)
    viewer_index = snapshot.user_ids.index(viewer)
    assert split.test[viewer_index] == {2}

    shown: dict[int, list[int]] = {}

    def spy(ranked: list[int], k: int) -> list[int]:
        shown[len(shown)] = list(ranked)
        return list(ranked)[:k]

    method = popularity_method(ctx)
    report = evaluate(Method("spy", method.scorer, spy), ctx, k=10)
    viewer_list = shown[split.users.tolist().index(viewer_index)]
    assert 4 not in viewer_list  # private
    assert 5 not in viewer_list  # the viewer's own
    assert 0 not in viewer_list  # already liked in training
    assert 1 not in viewer_list
    assert 2 in viewer_list  # the held-out like is rankable
    assert report.users == len(split.users)


def test_sampling_users_keeps_the_training_half_and_measures_fewer_users() -> None:
    rows = [(u, item, 1.0, 10 * item) for u in range(6) for item in range(5)]
    split = time_split(_events(rows), NO_FOLLOWS)
    fewer = sample_users(split, 2, seed=1)
    assert len(fewer.users) == 2
    assert set(fewer.test) == set(fewer.users.tolist()) == set(fewer.cutoff_ms)
    assert set(fewer.users.tolist()) <= set(split.users.tolist())
    assert fewer.train is split.train
    assert sample_users(split, None) is split
    assert sample_users(split, 2, seed=1).users.tolist() == fewer.users.tolist()  # deterministic


@settings(max_examples=100)
@given(event_rows, st.integers(0, 4))
def test_first_likes_keeps_only_each_users_earliest_training_likes(
    rows: list[tuple[int, int, float, int]], k: int
) -> None:
    """The cold-start curve's cut: each evaluated user keeps their first k training likes (never a held-out one),
    everybody else keeps everything."""
    builder = SnapshotBuilder()
    for item in range(13):
        builder.add_recipe(uuid.UUID(int=1000 + item), uuid.UUID(int=999), "thai", True)
    snapshot = builder.build()
    events = _events(rows)
    split = time_split(events, NO_FOLLOWS, 0.2, 2)
    n_users = max(len(snapshot.user_ids), 7)
    snapshot = replace(snapshot, user_ids=[uuid.UUID(int=i) for i in range(n_users)], events=events)
    ctx = Context.of(snapshot, split)
    cut = first_likes(ctx, k)
    train = split.train
    for user in range(n_users):
        kept = set(cut.likes[user].indices.tolist())
        likes = sorted(
            (t, i)
            for u, i, w, t in zip(train.user, train.item, train.weight, train.time_ms, strict=True)
            if u == user and w > 0
        )
        if user in split.test:
            assert kept == {i for _, i in likes[:k]}
            assert not kept & split.test[user]
        else:
            assert kept == {i for _, i in likes}
    assert cut.seen is ctx.seen  # what counts as seen does not change with the cut


def test_declared_tastes_stand_ins_come_from_training_likes_only() -> None:
    builder = SnapshotBuilder()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    recipes = [uuid.UUID(int=100 + i) for i in range(4)]
    for recipe, cuisine in zip(recipes, ("thai", "thai", "italian", "mexican"), strict=True):
        builder.add_recipe(recipe, uuid.UUID(int=500), cuisine, True)
    viewer = uuid.UUID(int=1)
    for day, j in enumerate((0, 1, 2, 3)):  # the mexican like is the latest: held out
        builder.add_favorite(viewer, recipes[j], at + timedelta(days=day))
    snapshot = builder.build()
    split = time_split(snapshot.events, snapshot.follows, holdout=0.25, min_likes=2)
    ctx = Context.of(snapshot, split)
    declared = declared_from_training(ctx, n_cuisines=3)
    names = [snapshot.cuisines[c] for c in declared[snapshot.user_ids.index(viewer)][0]]
    assert names == ["thai", "italian"]  # most liked first; never the held-out mexican
    assert len(with_history(ctx, 3).split.users) == 1
    assert len(with_history(ctx, 4).split.users) == 0


def test_stored_declarations_map_to_positions_for_evaluated_users_only() -> None:
    builder = SnapshotBuilder()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    recipes = [uuid.UUID(int=100 + i) for i in range(3)]
    for recipe, cuisine in zip(recipes, ("thai", "italian", "thai"), strict=True):
        builder.add_recipe(recipe, uuid.UUID(int=500), cuisine, True)
    viewer, other = uuid.UUID(int=1), uuid.UUID(int=2)
    for day, recipe in enumerate(recipes):
        builder.add_favorite(viewer, recipe, at + timedelta(days=day))
    builder.add_favorite(other, recipes[0], at)  # one like: trains, not evaluated
    builder.add_declared(viewer, {"cuisines": ["italian", "klingon"], "tags": []})
    builder.add_declared(other, {"cuisines": ["thai"], "tags": []})
    builder.add_declared(uuid.UUID(int=3), {"cuisines": [], "tags": []})  # an empty declaration is none
    snapshot = builder.build()
    ctx = Context.of(snapshot, time_split(snapshot.events, snapshot.follows, holdout=0.34, min_likes=2))
    v = snapshot.user_ids.index(viewer)
    assert declared_from_snapshot(ctx) == {v: ([snapshot.cuisines.index("italian")], [])}
    assert len(snapshot.declared) == 2
    assert only_users(ctx, np.array([v])).split.users.tolist() == [v]
