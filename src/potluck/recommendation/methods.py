"""The methods the evaluation compares: "most popular", today's formula (scoring.py) over whole matrices, the model.

The formula here is scoring.score computed for every recipe at once (tests/unit check it agrees with scoring.score
recipe by recipe), from training data only: ratings, likes and follows before each user's cutoff. Two differences
from what GET /recommendations ran: every public recipe is a candidate (the repository's SQL budget keeps at most
500), which can only help the formula; and P counts training likes without views, because views are stored only
as a total per recipe, with no time, so any use of them would leak the held-out period.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from potluck.recommendation.dataset import FloatArray, IntArray, cuisine_onehot
from potluck.recommendation.evaluation import Context, Method
from potluck.recommendation.model import DEFAULT_PARAMS, Model, Params, capped, declared_rows, score, train
from potluck.recommendation.scoring import (
    DEFAULT_WEIGHTS,
    MAX_CUISINE_SHARE,
    MIN_PER_CUISINE,
    POPULAR,
    PRIOR_RATINGS,
    PRIOR_STARS,
    Weights,
    diversify,
)


def popularity_method(ctx: Context) -> Method:
    """The recipes most users liked in training, the same list for everyone (ties: the lower index)."""
    n = ctx.snapshot.n_items
    scores = ctx.liked_by - np.arange(n) / (n + 1)

    def scorer(users: IntArray) -> FloatArray:
        return np.broadcast_to(scores, (len(users), n))

    return Method("popularity", scorer)


def declared_popularity_method(ctx: Context, declared: Declared) -> Method:
    """Popular in the user's declared tastes: recipes of a declared cuisine, then by the share of declared tags
    they carry, each group by training likes (the cold-start list without a model)."""
    snapshot = ctx.snapshot
    n = snapshot.n_items
    popular = ctx.liked_by / (ctx.liked_by.max(initial=0.0) + 1) - np.arange(n) / (n + 1) / (n + 1)
    tags = sparse.csc_matrix(snapshot.tags, dtype=np.float64)

    def scorer(users: IntArray) -> FloatArray:
        out = np.empty((len(users), n))
        for row, user in enumerate(users):
            cuisines, tag_cols = declared.get(int(user), ([], []))
            match = np.isin(snapshot.cuisine, cuisines).astype(np.float64)
            if tag_cols:
                match += np.asarray(tags[:, tag_cols].sum(axis=1)).ravel() / len(tag_cols)
            out[row] = match + popular
        return out

    return Method("popular in declared tastes", scorer)


def shrunk_quality(items: IntArray, stars: IntArray, n_items: int) -> FloatArray:
    """scoring.quality for every recipe from (item, stars) rating rows (stars 0: no rating)."""
    rated = stars > 0
    total = np.bincount(items[rated], weights=stars[rated].astype(np.float64), minlength=n_items)
    count = np.bincount(items[rated], minlength=n_items).astype(np.float64)
    shrunk = (PRIOR_RATINGS * PRIOR_STARS + total) / (PRIOR_RATINGS + count)
    quality: FloatArray = (shrunk - PRIOR_STARS) / 2
    return quality


def formula_scores(
    likes: sparse.csr_matrix,
    followed_likes: sparse.csr_matrix,
    cuisines: sparse.csr_matrix,
    tags: sparse.csr_matrix,
    quality: FloatArray,
    popular: FloatArray,
    weights: Weights = DEFAULT_WEIGHTS,
) -> FloatArray:
    """scoring.score for B viewers x every item: `likes` B x items like weights (the taste profiles),
    `followed_likes` B x items how many followed people liked each, `cuisines`/`tags` items x names (0/1),
    `quality` and `popular` per item (scoring.quality, scoring.popularity)."""
    profile_c = np.asarray((likes @ cuisines).todense())
    profile_t = np.asarray((likes @ tags).todense())
    norm_c = np.linalg.norm(profile_c, axis=1, keepdims=True)
    norm_t = np.linalg.norm(profile_t, axis=1, keepdims=True)
    cuisine_match = np.asarray(cuisines @ (profile_c / np.where(norm_c > 0, norm_c, 1)).T).T
    tag_count = np.asarray(tags.sum(axis=1)).ravel()
    tag_dot = np.asarray(tags @ (profile_t / np.where(norm_t > 0, norm_t, 1)).T).T
    tag_match = tag_dot / np.sqrt(np.where(tag_count > 0, tag_count, 1))
    k = np.asarray(followed_likes.todense())
    scores: FloatArray = (
        weights.cuisine * cuisine_match
        + weights.tags * tag_match
        + weights.social * k / (k + 1)
        + weights.quality * quality
        + weights.popularity * popular
    )
    return scores


def formula_method(ctx: Context, weights: Weights = DEFAULT_WEIGHTS) -> Method:
    """Today's formula, ranked like scoring.rank: only scores above 0, then the cuisine diversity re-rank."""
    snapshot, train = ctx.snapshot, ctx.split.train
    cuisines = cuisine_onehot(snapshot.cuisine, len(snapshot.cuisines))
    tags = snapshot.tags.astype(np.float64)
    quality = shrunk_quality(train.item, train.stars, snapshot.n_items)
    popular = np.minimum(1.0, np.log1p(ctx.liked_by) / np.log1p(POPULAR))
    liked = (ctx.likes > 0).astype(np.float64)

    def scorer(users: IntArray) -> FloatArray:
        followed_likes = ctx.followees[users] @ liked
        scores = formula_scores(ctx.likes[users], followed_likes, cuisines, tags, quality, popular, weights)
        return np.where(scores > 0, scores, -np.inf)

    return Method("formula (today)", scorer, cuisine_rerank(snapshot.cuisine))


def cuisine_rerank(cuisine: IntArray, share: float = MAX_CUISINE_SHARE, minimum: int = MIN_PER_CUISINE):  # type: ignore[no-untyped-def]
    """scoring.diversify over item positions: no cuisine beyond its cap in any prefix."""

    def rerank(ranked: Sequence[int], k: int) -> list[int]:
        return diversify([(i, int(cuisine[i])) for i in ranked], share, minimum)[:k]

    return rerank


def train_on(ctx: Context, params: Params = DEFAULT_PARAMS) -> Model:
    """The model trained on the split's training half."""
    snapshot = ctx.snapshot
    cuisines = cuisine_onehot(snapshot.cuisine, len(snapshot.cuisines))
    return train(ctx.likes, cuisines, snapshot.tags, snapshot.ingredients, params)


Declared = dict[int, tuple[list[int], list[int]]]  # user -> (cuisine positions, tag positions)


def model_method(ctx: Context, model: Model, name: str = "model", declared: Declared | None = None) -> Method:
    """The trained model, ranked as served: the author and cuisine caps applied to each page; with `declared`,
    each user's declared tastes join their profile as they do in serving."""
    snapshot = ctx.snapshot
    p = model.params
    liked = (ctx.likes > 0).astype(np.float64)

    def scorer(users: IntArray) -> FloatArray:
        followed = ctx.followees[users] @ liked if p.social else None
        rows = None
        if declared is not None:
            tastes = [declared.get(int(u), ([], [])) for u in users]
            n_features = model.content.shape[1]
            rows = declared_rows([t[0] for t in tastes], [t[1] for t in tastes], len(snapshot.cuisines), n_features, p)
        return score(model, ctx.likes[users], followed, rows)

    def rerank(ranked: Sequence[int], k: int) -> list[int]:
        return capped(ranked, k, snapshot.author, snapshot.cuisine, p.per_author, p.per_cuisine)

    return Method(name, scorer, rerank)
