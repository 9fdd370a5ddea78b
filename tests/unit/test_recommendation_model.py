"""The trained model: similarity, content, scoring, the diversity caps and the artefact's round trip."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest
from scipy import sparse

from potluck.recommendation.model import (
    DEFAULT_PARAMS,
    Artefact,
    build_artefact,
    capped,
    content_matrix,
    declared_rows,
    dumps,
    item_similarity,
    loads,
    score,
    similar_items,
    top_k_rows,
    train,
)


def _likes(rows: list[list[int]], n_items: int) -> sparse.csr_matrix:
    data, r, c = [], [], []
    for user, items in enumerate(rows):
        for item in items:
            data.append(1.0)
            r.append(user)
            c.append(item)
    return sparse.csr_matrix((data, (r, c)), shape=(len(rows), n_items))


# Items 0-2 are liked together, 3-4 together, 5 by nobody.
LIKES = _likes([[0, 1, 2], [0, 1], [1, 2], [0, 2], [3, 4], [3, 4], [0, 3]], 6)
CUISINES = sparse.csr_matrix(np.eye(2)[[0, 0, 0, 1, 1, 1]])
TAGS = sparse.csr_matrix(np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float64))
INGREDIENTS = sparse.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 1], [1, 0, 1]]))


def test_items_liked_by_the_same_people_are_neighbours_and_no_item_is_its_own() -> None:
    sim = item_similarity(LIKES, DEFAULT_PARAMS).toarray()
    assert np.all(np.diag(sim) == 0)
    assert sim[0, 1] > sim[0, 3] > 0  # 0 and 3 share one liker, 0 and 1 share two
    assert sim[3, 4] > sim[3, 0]
    assert np.all(sim[5] == 0)
    assert np.all(sim[:, 5] == 0)


def test_shrinkage_discounts_similarity_from_few_shared_likers() -> None:
    loose = item_similarity(LIKES, replace(DEFAULT_PARAMS, shrink=0.0)).toarray()
    shrunk = item_similarity(LIKES, replace(DEFAULT_PARAMS, shrink=5.0)).toarray()
    assert shrunk[0, 3] < loose[0, 3]
    # One shared liker is shrunk by 1/6, two by 2/7: the pair with more evidence loses less.
    assert shrunk[0, 3] / loose[0, 3] < shrunk[0, 1] / loose[0, 1]


def test_top_k_rows_keeps_the_largest_per_row() -> None:
    m = sparse.csr_matrix(np.array([[0.1, 0.5, 0.3, 0.0], [0.0, 0.0, 0.2, 0.0]]))
    kept = top_k_rows(m, 2).toarray()
    assert kept.tolist() == [[0.0, 0.5, 0.3, 0.0], [0.0, 0.0, 0.2, 0.0]]


def test_content_rows_are_unit_vectors_and_a_shared_pantry_ingredient_says_little() -> None:
    content = content_matrix(CUISINES, TAGS, INGREDIENTS, DEFAULT_PARAMS)
    norms = np.sqrt(np.asarray(content.multiply(content).sum(axis=1)).ravel())
    assert norms == pytest.approx(np.ones(6), abs=1e-6)
    sims = (content @ content.T).toarray()
    assert sims[0, 1] > sims[0, 2] > sims[0, 3]  # same cuisine and tags, then fewer shared ingredients
    assert sims[0, 3] < 0.05  # only ingredient 0, which every recipe uses: TF-IDF gives it almost no weight


def test_score_prefers_what_goes_with_the_viewers_likes_and_reaches_unliked_items_by_content() -> None:
    model = train(LIKES, CUISINES, TAGS, INGREDIENTS)
    viewer = _likes([[3]], 6)
    scores = score(model, viewer)[0]
    assert scores[4] > scores[0]  # liked with 3 by the same people
    assert scores[5] > scores[1]  # nobody liked 5, but it is made like 3
    cold = score(model, _likes([[]], 6))[0]
    # No history: popularity alone, the most liked first.
    assert np.argmax(cold) == 0


def test_social_signal_adds_followed_likes_only_when_weighted() -> None:
    model = train(LIKES, CUISINES, TAGS, INGREDIENTS)
    viewer = _likes([[0]], 6)
    followed = sparse.csr_matrix(([2.0], ([0], [5])), shape=(1, 6))
    plain = score(model, viewer, followed)[0]
    social_model = replace(model, params=replace(model.params, social=0.5))
    with_social = score(social_model, viewer, followed)[0]
    assert with_social[5] - plain[5] == pytest.approx(0.5 * 2 / 3)
    assert np.delete(with_social, 5) == pytest.approx(np.delete(plain, 5))


def test_caps_limit_each_author_and_cuisine_and_fill_the_page_when_nothing_else_is_left() -> None:
    author = np.array([1, 1, 1, 2, 3, 4])
    cuisine = np.array([0, 0, 0, 0, 1, -1])
    assert capped([0, 1, 2, 3, 4, 5], 4, author, cuisine, per_author=2, per_cuisine=5) == [0, 1, 3, 4]
    assert capped([0, 1, 2, 3, 4, 5], 4, author, cuisine, per_author=5, per_cuisine=2) == [0, 1, 4, 5]
    # Only capped items remain: more of one author beats a short page.
    assert capped([0, 1, 2], 3, author, cuisine, per_author=1, per_cuisine=5) == [0, 1, 2]


def test_similar_items_never_include_the_item_and_reach_an_unliked_one_by_content() -> None:
    model = train(LIKES, CUISINES, TAGS, INGREDIENTS)
    similar = [i for i, _ in similar_items(model, 3, 5)]
    assert 3 not in similar
    assert similar[0] == 4
    cold = [i for i, _ in similar_items(model, 5, 2)]
    assert set(cold) == {3, 4}


def test_the_artefact_round_trips_without_pickle() -> None:
    model = train(LIKES, CUISINES, TAGS, INGREDIENTS)
    artefact = Artefact(
        version="20260101T000000Z",
        model=model,
        recipe_ids=[uuid.UUID(int=i + 1) for i in range(6)],
        author_ids=[uuid.UUID(int=100 + i) for i in range(6)],
        cuisine=np.array([0, 0, 0, 1, 1, 1]),
        public=np.array([True] * 5 + [False]),
        cuisine_names=["thai", "italian"],
        tag_names=["curry", "pasta"],
    )
    back = loads(dumps(artefact))
    assert list(back.cuisine_names) == ["thai", "italian"]
    assert list(back.tag_names) == ["curry", "pasta"]
    assert back.version == artefact.version
    assert back.recipe_ids == artefact.recipe_ids
    assert back.author_ids == artefact.author_ids
    assert back.public.tolist() == artefact.public.tolist()
    assert back.model.params == model.params
    assert (back.model.similar != model.similar).nnz == 0
    assert back.model.popularity == pytest.approx(model.popularity)
    viewer = _likes([[0, 3]], 6)
    assert score(back.model, viewer) == pytest.approx(score(model, viewer), rel=1e-5)


def test_the_artefact_holds_public_recipes_only() -> None:
    from datetime import UTC, datetime

    from potluck.recommendation.dataset import SnapshotBuilder

    builder = SnapshotBuilder()
    author = uuid.UUID(int=9)
    ids = [uuid.UUID(int=100 + i) for i in range(3)]
    for i, recipe in enumerate(ids):
        builder.add_recipe(recipe, author, "thai", public=i != 1)
    for u in range(3):
        for recipe in ids:
            builder.add_favorite(uuid.UUID(int=u + 1), recipe, datetime(2026, 1, 1, tzinfo=UTC))
    artefact = build_artefact(builder.build(), "v1")
    assert list(artefact.recipe_ids) == [ids[0], ids[2]]
    assert artefact.model.similar.shape == (2, 2)
    assert artefact.model.content.shape[0] == 2
    assert len(artefact.model.popularity) == 2
    stored = loads(dumps(artefact))
    assert ids[1] not in stored.recipe_ids  # not even the private recipe's id is stored
    assert len(stored.author_ids) == 2


def test_declared_tastes_alone_rank_the_popular_recipes_of_those_tastes() -> None:
    model = train(LIKES, CUISINES, TAGS, INGREDIENTS)
    n_features = model.content.shape[1]
    declared = declared_rows([[1]], [[1]], 2, n_features, model.params)
    assert np.linalg.norm(declared.toarray()) == pytest.approx(1.0)
    scores = score(model, _likes([[]], 6), declared=declared)[0]
    assert int(np.argmax(scores)) == 3  # cuisine 1's most liked recipe, not item 0, the most liked overall
    assert min(scores[3:]) > max(scores[:3])
    nothing = declared_rows([[]], [[]], 2, n_features, model.params)
    assert nothing.nnz == 0
    assert score(model, _likes([[]], 6), declared=nothing) == pytest.approx(score(model, _likes([[]], 6)))


def test_popularity_weighs_less_the_more_the_viewer_has_liked() -> None:
    model = train(LIKES, CUISINES, TAGS, INGREDIENTS)
    flat = replace(model, params=replace(model.params, popular=0.0))

    def popularity_share(history: list[int]) -> float:
        viewer = _likes([history], 6)
        return float((score(model, viewer) - score(flat, viewer))[0, 0] / model.popularity[0])

    d = model.params.popular_damping
    assert popularity_share([]) == pytest.approx(model.params.popular)
    assert popularity_share([3, 4]) == pytest.approx(model.params.popular * d / (d + 2))
    assert popularity_share([1, 2, 3, 4]) < popularity_share([3, 4])
