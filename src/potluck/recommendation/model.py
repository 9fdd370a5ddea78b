"""The trained recommendation model: item-item collaborative filtering blended with content and popularity. Pure.

Training (`train`) turns the like matrix (users x recipes, scoring.like_weight per like) and the recipes' content
into three things, all indexed by item position:

- `similar`: items x items, each row the NEIGHBOURS most similar recipes by who liked them (cosine over users,
  each user's likes damped by their count ** -ACTIVITY_DAMPING so a few heavy users do not make everything
  similar, and shrunk by co-likes / (co-likes + SHRINK) against similarities from one or two shared likers);
- `content`: items x features, a unit vector per recipe: its cuisine, its tags and its ingredients (TF-IDF, so
  salt and oil say nothing), each block weighted;
- `popularity`: log(1 + likers) scaled to 0..1.

Scoring a viewer (`score`) from their likes h (a row of the like matrix):

    s = W_CF * cf / max(cf) + W_CONTENT * cos(profile, content) + W_POPULAR * D / (D + n) * popularity
        + W_SOCIAL * k / (k + 1)

cf = h @ similar (the recipes like the ones they liked), profile = h @ content (what their likes are made of:
this is what carries a recipe nobody has liked yet, and a viewer with one or two likes), k how many of the
people they follow liked the recipe, n how many likes the viewer has. Popularity is a prior that the viewer's own
likes replace: with a constant weight it put the same few popular recipes in everyone's list (catalogue coverage
a third of today's formula's); damped by D / (D + n) it still carries a viewer with no or one like, while a viewer
with a history gets recipes picked for that history.
The weights were chosen on the evaluation (docs/recommendations.md).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import sparse

from potluck.recommendation.dataset import BoolArray, FloatArray, IntArray, Snapshot, cuisine_onehot


@dataclass(frozen=True, slots=True)
class Params:
    neighbours: int = 100
    shrink: float = 5.0
    activity_damping: float = 0.5
    cuisine_block: float = 2.0
    tag_block: float = 1.7
    ingredient_block: float = 1.7
    cf: float = 0.3
    content: float = 1.0
    popular: float = 0.6
    # Popularity is a prior: its weight is popular * d / (d + likes) for a viewer with that many likes.
    popular_damping: float = 4.0
    # Declared tastes (cuisines and tags a user says they like) count as this many likes of a recipe made of them.
    declared: float = 1.0
    social: float = 0.0
    # Diversity in a page of recommendations: at most this many from one author, and one cuisine.
    per_author: int = 2
    per_cuisine: int = 5


DEFAULT_PARAMS = Params()

# Declared tastes: (cuisine names, tag names) a user says they like.
Tastes = tuple[Sequence[str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Model:
    params: Params
    similar: sparse.csr_matrix  # items x items, float32
    content: sparse.csr_matrix  # items x features, unit rows, float32
    popularity: FloatArray  # per item, 0..1


def _row_normalize(m: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.csr_matrix(sparse.diags(scale) @ m)


def content_matrix(
    cuisines: sparse.csr_matrix, tags: sparse.csr_matrix, ingredients: sparse.csr_matrix, params: Params
) -> sparse.csr_matrix:
    """items x (cuisines + tags + ingredients): each block a unit vector times its weight, then the row unit."""
    n = ingredients.shape[0]
    df = np.asarray((ingredients > 0).sum(axis=0)).ravel()
    idf = np.log((n + 1) / (df + 1)) + 1e-3
    tfidf = sparse.csr_matrix((ingredients > 0).astype(np.float64) @ sparse.diags(idf))
    blocks = [
        params.cuisine_block * _row_normalize(cuisines.astype(np.float64)),
        params.tag_block * _row_normalize(tags.astype(np.float64)),
        params.ingredient_block * _row_normalize(tfidf),
    ]
    return _row_normalize(sparse.hstack(blocks, format="csr")).astype(np.float32)


def top_k_rows(m: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep each row's k largest entries (ties: the lower column)."""
    m = sparse.csr_matrix(m)
    m.sort_indices()
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= k:
        return m
    data, indices, indptr = [], [], [0]
    for row in range(m.shape[0]):
        lo, hi = m.indptr[row], m.indptr[row + 1]
        values, cols = m.data[lo:hi], m.indices[lo:hi]
        if hi - lo > k:
            keep = np.lexsort((cols, -values))[:k]
            keep.sort()
            values, cols = values[keep], cols[keep]
        data.append(values)
        indices.append(cols)
        indptr.append(indptr[-1] + len(cols))
    return sparse.csr_matrix(
        (np.concatenate(data) if data else [], np.concatenate(indices) if indices else [], indptr), shape=m.shape
    )


def item_similarity(likes: sparse.csr_matrix, params: Params) -> sparse.csr_matrix:
    """items x items: shrunk cosine over damped users, the diagonal removed, NEIGHBOURS kept per row."""
    likes = sparse.csr_matrix(likes, dtype=np.float64)
    per_user = np.asarray((likes > 0).sum(axis=1)).ravel()
    damp = np.power(np.maximum(per_user, 1), -params.activity_damping)
    x = sparse.csr_matrix(sparse.diags(damp) @ likes)
    gram = sparse.csr_matrix(x.T @ x)
    binary = (likes > 0).astype(np.float64)
    co = sparse.csr_matrix(binary.T @ binary)  # same sparsity as gram: how many users liked both
    norms = np.sqrt(gram.diagonal())
    gram.setdiag(0)
    co.setdiag(0)
    gram.eliminate_zeros()
    co.eliminate_zeros()
    coo = gram.tocoo()
    shared = np.asarray(co[coo.row, coo.col]).ravel()
    values = coo.data / (norms[coo.row] * norms[coo.col] + 1e-12) * shared / (shared + params.shrink)
    sim = sparse.csr_matrix((values, (coo.row, coo.col)), shape=gram.shape)
    return top_k_rows(sim, params.neighbours).astype(np.float32)


def train(
    likes: sparse.csr_matrix,
    cuisines: sparse.csr_matrix,
    tags: sparse.csr_matrix,
    ingredients: sparse.csr_matrix,
    params: Params = DEFAULT_PARAMS,
) -> Model:
    """The model from a users x items like matrix and items x names content matrices (see the module doc)."""
    liked_by = np.asarray((likes > 0).sum(axis=0), dtype=np.float64).ravel()
    top = liked_by.max(initial=0.0)
    popularity = np.log1p(liked_by) / np.log1p(top) if top > 0 else np.zeros_like(liked_by)
    return Model(
        params,
        item_similarity(likes, params),
        content_matrix(cuisines, tags, ingredients, params),
        popularity,
    )


def declared_rows(
    cuisines: Sequence[Sequence[int]], tags: Sequence[Sequence[int]], n_cuisines: int, n_features: int, params: Params
) -> sparse.csr_matrix:
    """B x features: each viewer's declared tastes (cuisine positions, tag positions) as the content row of a recipe
    made of them (blocks weighted as in content_matrix, then unit), so a declaration adds to a profile like a like."""
    rows, cols, values = [], [], []
    for row, (cs, ts) in enumerate(zip(cuisines, tags, strict=True)):
        blocks = [(sorted(set(cs)), 0, params.cuisine_block), (sorted(set(ts)), n_cuisines, params.tag_block)]
        entries = [(offset + c, weight / np.sqrt(len(names))) for names, offset, weight in blocks for c in names]
        if not entries:
            continue
        norm = np.sqrt(sum(v * v for _, v in entries))
        for col, value in entries:
            rows.append(row)
            cols.append(col)
            values.append(value / norm)
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(cuisines), n_features), dtype=np.float32)


def score(
    model: Model,
    history: sparse.csr_matrix,
    followed_likes: sparse.csr_matrix | None = None,
    declared: sparse.csr_matrix | None = None,
) -> FloatArray:
    """B x items scores for B viewers' like rows (`history`, B x items), how many followees liked each item, and
    their declared tastes (declared_rows, B x features)."""
    p = model.params
    history = sparse.csr_matrix(history, dtype=np.float32)
    cf = np.asarray((history @ model.similar).todense(), dtype=np.float64)
    top = cf.max(axis=1, keepdims=True)
    cf = cf / np.where(top > 0, top, 1)
    profile = np.asarray((history @ model.content).todense(), dtype=np.float64)
    if declared is not None and p.declared:
        profile = profile + p.declared * np.asarray(declared.todense(), dtype=np.float64)
    norm = np.linalg.norm(profile, axis=1, keepdims=True)
    profile = profile / np.where(norm > 0, norm, 1)
    content = np.asarray(model.content @ profile.T.astype(np.float32), dtype=np.float64).T
    n_likes = np.diff(history.indptr).astype(np.float64)[:, None]
    popular = p.popular * p.popular_damping / (p.popular_damping + n_likes) if p.popular_damping else p.popular
    scores: FloatArray = p.cf * cf + p.content * content + popular * model.popularity
    if followed_likes is not None and p.social:
        k = np.asarray(followed_likes.todense(), dtype=np.float64)
        scores = scores + p.social * k / (k + 1)
    return scores


def similar_items(model: Model, item: int, n: int, content_share: float = 0.3) -> list[tuple[int, float]]:
    """The `n` recipes most like `item`: its CF neighbours, blended with content similarity (a recipe nobody
    has liked yet still has neighbours by what it is made of). Best first, never `item` itself."""
    cf = np.asarray(model.similar[item].todense(), dtype=np.float64).ravel()
    if cf.max(initial=0.0) > 0:
        cf = cf / cf.max()
    content = np.asarray(model.content @ model.content[item].T.todense(), dtype=np.float64).ravel()
    scores = (1 - content_share) * cf + content_share * content + 1e-3 * model.popularity
    scores[item] = -np.inf
    m = min(n, len(scores) - 1)
    if m <= 0:
        return []
    best = np.argpartition(-scores, m - 1)[:m]
    best = best[np.lexsort((best, -scores[best]))]
    return [(int(i), float(scores[i])) for i in best]


def capped(
    ranked: Sequence[int], k: int, author: IntArray, cuisine: IntArray, per_author: int, per_cuisine: int
) -> list[int]:
    """The first k of `ranked` with at most `per_author` from one author and `per_cuisine` from one cuisine;
    if the caps leave the page short, the skipped ones fill it in order (fewer recommendations is worse)."""
    out: list[int] = []
    skipped: list[int] = []
    authors: dict[int, int] = {}
    cuisines: dict[int, int] = {}
    for item in ranked:
        if len(out) >= k:
            break
        a, c = int(author[item]), int(cuisine[item])
        if authors.get(a, 0) >= per_author or (c >= 0 and cuisines.get(c, 0) >= per_cuisine):
            skipped.append(item)
            continue
        out.append(item)
        authors[a] = authors.get(a, 0) + 1
        cuisines[c] = cuisines.get(c, 0) + 1
    return out + skipped[: max(0, k - len(out))]


# -- the artefact ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Artefact:
    """A model with what serving needs beside it: which recipe each position is, its author and cuisine."""

    version: str
    model: Model
    recipe_ids: Sequence[uuid.UUID]
    author_ids: Sequence[uuid.UUID]
    cuisine: IntArray
    public: BoolArray
    # The content matrix's first columns: these cuisines, then these tags (declared tastes are matched by name).
    cuisine_names: Sequence[str] = ()
    tag_names: Sequence[str] = ()


def _put(arrays: dict[str, Any], name: str, m: sparse.csr_matrix) -> None:
    arrays[f"{name}_data"] = m.data
    arrays[f"{name}_indices"] = m.indices.astype(np.int32)
    arrays[f"{name}_indptr"] = m.indptr.astype(np.int64)
    arrays[f"{name}_shape"] = np.asarray(m.shape, dtype=np.int64)


def _get(arrays: np.lib.npyio.NpzFile, name: str) -> sparse.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{name}_shape"])
    return sparse.csr_matrix((arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]), shape=shape)


def dumps(artefact: Artefact) -> bytes:
    """The artefact as one compressed .npz (no pickle: loading it runs no code)."""
    arrays: dict[str, Any] = {}
    _put(arrays, "similar", artefact.model.similar)
    _put(arrays, "content", artefact.model.content)
    arrays["popularity"] = artefact.model.popularity.astype(np.float32)
    arrays["recipe_ids"] = np.frombuffer(b"".join(u.bytes for u in artefact.recipe_ids), dtype=np.uint8)
    arrays["author_ids"] = np.frombuffer(b"".join(u.bytes for u in artefact.author_ids), dtype=np.uint8)
    arrays["cuisine"] = artefact.cuisine.astype(np.int32)
    arrays["public"] = np.asarray(artefact.public, dtype=np.bool_)
    meta = {
        "version": artefact.version,
        "params": asdict(artefact.model.params),
        "cuisine_names": list(artefact.cuisine_names),
        "tag_names": list(artefact.tag_names),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def loads(data: bytes) -> Artefact:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        meta = json.loads(arrays["meta"].tobytes())
        model = Model(
            Params(**meta["params"]),
            _get(arrays, "similar"),
            _get(arrays, "content"),
            arrays["popularity"].astype(np.float64),
        )
        raw_ids, raw_authors = arrays["recipe_ids"].tobytes(), arrays["author_ids"].tobytes()
        return Artefact(
            version=meta["version"],
            model=model,
            recipe_ids=[uuid.UUID(bytes=raw_ids[i : i + 16]) for i in range(0, len(raw_ids), 16)],
            author_ids=[uuid.UUID(bytes=raw_authors[i : i + 16]) for i in range(0, len(raw_authors), 16)],
            cuisine=arrays["cuisine"].astype(np.int64),
            public=arrays["public"].astype(np.bool_),
            cuisine_names=meta.get("cuisine_names", []),
            tag_names=meta.get("tag_names", []),
        )


def build_artefact(snapshot: Snapshot, version: str, params: Params = DEFAULT_PARAMS) -> Artefact:
    """Train on every like in `snapshot`, then keep public recipes only: what may be recommended, and nothing
    private ends up in the stored file (not even a private recipe's id)."""
    likes = snapshot.events.matrix(snapshot.n_users, snapshot.n_items, likes_only=True)
    cuisines = cuisine_onehot(snapshot.cuisine, len(snapshot.cuisines))
    full = train(likes, cuisines, snapshot.tags, snapshot.ingredients, params)
    public = np.flatnonzero(snapshot.public)
    model = Model(
        params,
        sparse.csr_matrix(full.similar[public][:, public]),
        sparse.csr_matrix(full.content[public]),
        full.popularity[public],
    )
    return Artefact(
        version=version,
        model=model,
        recipe_ids=[snapshot.recipe_ids[int(i)] for i in public],
        author_ids=[snapshot.user_ids[int(snapshot.author[i])] for i in public],
        cuisine=snapshot.cuisine[public],
        public=np.ones(len(public), dtype=np.bool_),
        cuisine_names=list(snapshot.cuisines),
        tag_names=list(snapshot.tag_names),
    )
