from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from potluck.seed import generate
from potluck.seed.compose import compose_recipe
from potluck.seed.generate import SeedPlan, SeedSpec
from potluck.seed.rows import TABLES, Batch
from potluck.seed.sampling import uuid7_at, zipf_weights
from potluck.seed.vocabulary import IngredientSpec, vocabulary

END = datetime(2026, 1, 1, tzinfo=UTC)
VOCAB = vocabulary()
Rows = dict[str, list[dict[str, Any]]]


def _spec(**overrides: Any) -> SeedSpec:
    args: dict[str, Any] = {
        "users": 50,
        "recipes": 300,
        "seed": 42,
        "password_hash": "hash",
        "end": END,
        "batch_size": 500,
    }
    return SeedSpec(**{**args, **overrides})


def _collect(batches: list[Batch]) -> Rows:
    rows: Rows = {t: [] for t in TABLES}
    for batch in batches:
        rows[batch.table].extend(batch.rows)
    return rows


@pytest.fixture(scope="module")
def plan() -> SeedPlan:
    return SeedPlan(_spec())


@pytest.fixture(scope="module")
def batches(plan: SeedPlan) -> list[Batch]:
    return list(plan.batches())


@pytest.fixture(scope="module")
def rows(batches: list[Batch]) -> Rows:
    return _collect(batches)


def _top_share(values: list[int], fraction: float = 0.1) -> float:
    ordered = sorted(values, reverse=True)
    k = max(1, int(len(ordered) * fraction))
    return sum(ordered[:k]) / sum(ordered)


# -- zipf_weights and uuid7_at --------------------------------------------------------------------------------


@pytest.mark.parametrize("s", [0.5, 1.0, 1.07, 2.0])
def test_zipf_weights_shape(s: float) -> None:
    w = zipf_weights(100, s)
    assert len(w) == 100
    assert math.isclose(sum(w), 1.0, rel_tol=1e-12)
    assert all(a > b for a, b in itertools.pairwise(w))
    assert math.isclose(w[0] / w[1], 2**s, rel_tol=1e-12)
    assert math.isclose(w[1] / w[3], 2**s, rel_tol=1e-12)


def test_zipf_weights_edges() -> None:
    assert zipf_weights(0, 1.0) == []
    assert zipf_weights(1, 1.3) == [1.0]
    with pytest.raises(ValueError, match="negative"):
        zipf_weights(-1, 1.0)


def test_uuid7_at_is_a_v7_uuid_carrying_the_timestamp() -> None:
    ts = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    u = uuid7_at(ts, random.Random(1))
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == int(ts.timestamp() * 1000)
    assert uuid7_at(ts, random.Random(1)) == u
    assert uuid7_at(ts, random.Random(2)) != u


def test_uuid7_at_sorts_by_time() -> None:
    rng = random.Random(3)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    ids = [uuid7_at(base + timedelta(milliseconds=i * 7), rng) for i in range(200)]
    assert ids == sorted(ids)


def test_uuid7_at_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        uuid7_at(datetime(2025, 1, 1), random.Random(0))


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="author"):
        _spec(users=0)
    with pytest.raises(ValueError, match="timezone"):
        _spec(end=datetime(2026, 1, 1))


# -- determinism ----------------------------------------------------------------------------------------------


def test_same_spec_gives_identical_rows(batches: list[Batch]) -> None:
    again = list(SeedPlan(_spec()).batches())
    assert again == batches


def test_different_seed_gives_different_rows(rows: Rows) -> None:
    other = _collect(list(SeedPlan(_spec(seed=43)).batches()))
    assert {r["id"] for r in other["recipe"]}.isdisjoint({r["id"] for r in rows["recipe"]})
    assert [r["title"] for r in other["recipe"]] != [r["title"] for r in rows["recipe"]]
    assert [r["username"] for r in other["user_account"]] != [r["username"] for r in rows["user_account"]]


def _digest_code() -> str:
    return (
        "import hashlib; from datetime import UTC, datetime; "
        "from potluck.seed.generate import SeedPlan, SeedSpec; "
        "spec = SeedSpec(users=20, recipes=60, seed=9, password_hash='h', end=datetime(2026, 1, 1, tzinfo=UTC)); "
        "print(hashlib.sha256(repr(list(SeedPlan(spec).batches())).encode()).hexdigest())"
    )


def test_rows_do_not_depend_on_the_hash_seed() -> None:
    spec = SeedSpec(users=20, recipes=60, seed=9, password_hash="h", end=END)
    local = hashlib.sha256(repr(list(SeedPlan(spec).batches())).encode()).hexdigest()
    outs = {
        subprocess.run(
            [sys.executable, "-c", _digest_code()],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("0", "12345")
    }
    assert outs == {local}


def test_compose_recipe_is_pure_given_the_rng() -> None:
    cuisine = VOCAB.cuisines[3]
    a = compose_recipe(random.Random(5), cuisine, ["weeknight"])
    b = compose_recipe(random.Random(5), cuisine, ["weeknight"])
    assert a == b


# -- shape of the stream --------------------------------------------------------------------------------------


def test_row_counts_are_exact(plan: SeedPlan, rows: Rows) -> None:
    assert plan.row_counts() == {t: len(rows[t]) for t in TABLES}
    assert len(rows["user_account"]) == 50
    assert len(rows["recipe"]) == len(rows["nutrition"]) == 300


def test_batches_are_bounded_and_parents_come_first(batches: list[Batch]) -> None:
    seen: dict[str, set[uuid.UUID]] = defaultdict(set)
    foreign = {
        "recipe": [("author_id", "user_account")],
        "recipe_ingredient": [("recipe_id", "recipe"), ("ingredient_id", "ingredient")],
        "step": [("recipe_id", "recipe")],
        "recipe_tag": [("recipe_id", "recipe"), ("tag_id", "tag")],
        "nutrition": [("recipe_id", "recipe")],
        "follow": [("follower_id", "user_account"), ("followee_id", "user_account")],
        "rating": [("user_id", "user_account"), ("recipe_id", "recipe")],
        "favorite": [("user_id", "user_account"), ("recipe_id", "recipe")],
    }
    for batch in batches:
        assert 0 < len(batch.rows) <= 500
        assert len({tuple(r) for r in batch.rows}) == 1, "one set of columns per batch"
        for column, parent in foreign.get(batch.table, []):
            assert {r[column] for r in batch.rows} <= seen[parent], (batch.table, column)
        if "id" in batch.rows[0]:
            seen[batch.table].update(r["id"] for r in batch.rows)


# -- consistency ----------------------------------------------------------------------------------------------


def test_recipe_aggregates_match_child_rows(rows: Rows) -> None:
    stars: dict[uuid.UUID, list[int]] = defaultdict(list)
    for r in rows["rating"]:
        stars[r["recipe_id"]].append(r["stars"])
    favorites = Counter(f["recipe_id"] for f in rows["favorite"])
    assert rows["rating"]
    assert rows["favorite"]
    for recipe in rows["recipe"]:
        s = stars.get(recipe["id"], [])
        assert recipe["rating_count"] == len(s)
        assert recipe["rating_avg"] == (sum(s) / len(s) if s else None)
        assert recipe["favorite_count"] == favorites[recipe["id"]]
        assert recipe["view_count"] >= max(recipe["rating_count"], recipe["favorite_count"])
        if not recipe["is_public"]:
            assert not s
            assert not favorites[recipe["id"]]


def test_uniqueness(rows: Rows) -> None:
    def unique(values: list[Any]) -> bool:
        return len(values) == len(set(values))

    users = rows["user_account"]
    assert unique([u["username"].lower() for u in users])
    assert unique([u["email"].lower() for u in users])
    assert unique([i["name"] for i in rows["ingredient"]])
    assert unique([t["name"] for t in rows["tag"]])
    for table in TABLES:
        if rows[table] and "id" in rows[table][0]:
            assert unique([r["id"] for r in rows[table]]), table
    assert unique([(r["user_id"], r["recipe_id"]) for r in rows["rating"]])
    assert unique([(r["user_id"], r["recipe_id"]) for r in rows["favorite"]])
    assert unique([(r["follower_id"], r["followee_id"]) for r in rows["follow"]])
    assert all(r["follower_id"] != r["followee_id"] for r in rows["follow"])
    assert unique([(r["recipe_id"], r["position"]) for r in rows["recipe_ingredient"]])
    assert unique([(r["recipe_id"], r["position"]) for r in rows["step"]])
    assert unique([(r["recipe_id"], r["tag_id"]) for r in rows["recipe_tag"]])


def test_nobody_rates_or_favorites_their_own_recipe(rows: Rows) -> None:
    author = {r["id"]: r["author_id"] for r in rows["recipe"]}
    assert all(author[r["recipe_id"]] != r["user_id"] for r in rows["rating"])
    assert all(author[r["recipe_id"]] != r["user_id"] for r in rows["favorite"])


def test_lengths_and_domains(rows: Rows) -> None:
    for u in rows["user_account"]:
        assert 0 < len(u["username"]) <= 32
        assert len(u["email"]) <= 254
        assert len(u["display_name"]) <= 100
        assert u["password_hash"] == "hash"
    for r in rows["recipe"]:
        assert 0 < len(r["title"]) <= 200
        assert r["cuisine"] in {name.lower() for name in VOCAB.cuisine_by_name}
        assert len(r["cuisine"]) <= 50
        assert r["difficulty"] in {"easy", "medium", "hard"}
        assert r["servings"] >= 1
        assert r["prep_minutes"] >= 0
        assert r["cook_minutes"] >= 0
        assert r["description"]
    assert all(len(t["name"]) <= 40 for t in rows["tag"])
    assert all(len(i["name"]) <= 100 for i in rows["ingredient"])
    for line in rows["recipe_ingredient"]:
        assert line["unit"] is None or len(line["unit"]) <= 30
        assert line["note"] is None or len(line["note"]) <= 200
        assert line["quantity"] is None or line["quantity"] > 0
    assert all(1 <= r["stars"] <= 5 for r in rows["rating"])
    assert all(s["text"] for s in rows["step"])


def test_recipes_look_like_recipes(rows: Rows) -> None:
    n = len(rows["recipe"])
    assert 8 <= len(rows["recipe_ingredient"]) / n <= 13
    assert 4 <= len(rows["step"]) / n <= 8
    assert 2 <= len(rows["recipe_tag"]) / n <= 7
    assert len({r["cuisine"] for r in rows["recipe"]}) >= 8
    reviews = [r["review"] for r in rows["rating"] if r["review"]]
    assert 0.15 < len(reviews) / len(rows["rating"]) < 0.7
    private = sum(not r["is_public"] for r in rows["recipe"]) / n
    assert 0.01 <= private <= 0.12


def test_derived_tags_are_true(rows: Rows) -> None:
    ingredient = {i["id"]: VOCAB.ingredient_by_name[i["name"]] for i in rows["ingredient"]}
    tag = {t["id"]: t["name"] for t in rows["tag"]}
    lines: dict[uuid.UUID, list[IngredientSpec]] = defaultdict(list)
    for line in rows["recipe_ingredient"]:
        lines[line["recipe_id"]].append(ingredient[line["ingredient_id"]])
    for rt in rows["recipe_tag"]:
        specs = lines[rt["recipe_id"]]
        name = tag[rt["tag_id"]]
        if name in ("vegetarian", "vegan"):
            assert not any(s.category in VOCAB.meat_categories or s.name in VOCAB.not_vegetarian for s in specs)
        if name == "vegan":
            assert not any(s.category in VOCAB.animal_categories or s.name in VOCAB.not_vegan for s in specs)
        if name == "gluten-free":
            assert not any(s.name in VOCAB.gluten for s in specs)


# -- time -----------------------------------------------------------------------------------------------------


def test_ids_sort_like_created_at(rows: Rows) -> None:
    for table in ("user_account", "recipe"):
        records = rows[table]
        by_id = sorted(records, key=lambda r: r["id"])
        assert by_id == records
        stamps = [r["created_at"] for r in records]
        assert all(a < b for a, b in itertools.pairwise(stamps)), "strictly increasing"
        for r in records:
            assert r["id"].int >> 80 == int(r["created_at"].timestamp() * 1000)


def test_timestamps_are_utc_within_the_window_and_causal(rows: Rows) -> None:
    start = END - timedelta(days=730)
    users = {u["id"]: u["created_at"] for u in rows["user_account"]}
    recipes = {r["id"]: r["created_at"] for r in rows["recipe"]}
    for table in TABLES:
        for r in rows[table]:
            for key in ("created_at", "updated_at"):
                if key in r:
                    assert r[key].tzinfo is UTC
                    assert start <= r[key] <= END
    for r in rows["recipe"]:
        assert users[r["author_id"]] < r["created_at"] <= r["updated_at"]
    for r in rows["rating"]:
        assert max(users[r["user_id"]], recipes[r["recipe_id"]]) <= r["created_at"] <= r["updated_at"]
    for r in rows["favorite"]:
        assert max(users[r["user_id"]], recipes[r["recipe_id"]]) <= r["created_at"]
    for r in rows["follow"]:
        assert max(users[r["follower_id"]], users[r["followee_id"]]) <= r["created_at"]


def test_recent_activity_exists_for_trending(rows: Rows) -> None:
    last_month = END - timedelta(days=30)
    recent = sum(r["created_at"] >= last_month for r in rows["rating"])
    assert recent / len(rows["rating"]) > 0.05


# -- popularity and taste ---------------------------------------------------------------------------------------


def test_popularity_is_concentrated(rows: Rows) -> None:
    public = [r for r in rows["recipe"] if r["is_public"]]
    assert _top_share([r["view_count"] for r in public]) > 0.4
    assert _top_share([r["rating_count"] for r in public]) > 0.4
    follows = Counter(f["followee_id"] for f in rows["follow"])
    assert _top_share([follows[u["id"]] for u in rows["user_account"]]) > 0.3


def test_users_rate_mostly_what_they_like(plan: SeedPlan, rows: Rows) -> None:
    index = {uid: i for i, uid in enumerate(plan.user_ids)}
    cuisine = {r["id"]: r["cuisine"] for r in rows["recipe"]}
    per_user: dict[int, list[bool]] = defaultdict(list)
    for r in rows["rating"]:
        u = index[r["user_id"]]
        per_user[u].append(cuisine[r["recipe_id"]] in {c.lower() for c in plan.taste(u).cuisines})
    matches = [m for ms in per_user.values() for m in ms]
    assert sum(matches) / len(matches) > 0.6
    regulars = [ms for ms in per_user.values() if len(ms) >= 4]
    assert regulars
    assert sum(sum(ms) / len(ms) > 0.5 for ms in regulars) / len(regulars) > 0.7


def test_favorites_follow_taste_and_stars(plan: SeedPlan, rows: Rows) -> None:
    stars = {(r["user_id"], r["recipe_id"]): r["stars"] for r in rows["rating"]}
    rated_favorites = [stars[k] for k in ((f["user_id"], f["recipe_id"]) for f in rows["favorite"]) if k in stars]
    assert rated_favorites
    assert sum(rated_favorites) / len(rated_favorites) > 4.0


def test_authors_cook_their_own_cuisines(plan: SeedPlan, rows: Rows) -> None:
    index = {uid: i for i, uid in enumerate(plan.user_ids)}
    hits = [r["cuisine"] in {c.lower() for c in plan.taste(index[r["author_id"]]).cuisines} for r in rows["recipe"]]
    assert sum(hits) / len(hits) > 0.7


# -- vocabulary -----------------------------------------------------------------------------------------------


def test_vocabulary_is_consistent() -> None:
    assert vocabulary() is VOCAB, "read once per process"
    names = VOCAB.ingredient_by_name.keys()
    assert len(names) == len(VOCAB.ingredients)
    assert 18 <= len(VOCAB.cuisines) <= 25
    assert 35 <= len(VOCAB.tags) <= 50
    assert len(set(VOCAB.tags)) == len(VOCAB.tags)
    assert all(len(t) <= 40 and t == t.lower() for t in VOCAB.tags)
    assert VOCAB.derived_tags <= set(VOCAB.tags)
    assert {s.category for s in VOCAB.ingredients} <= VOCAB.nutrition_per_100g.keys()
    assert all(s.low <= s.high and s.step > 0 and s.grams > 0 for s in VOCAB.ingredients)
    assert VOCAB.meat_categories <= VOCAB.animal_categories
    assert set(VOCAB.reviews_by_stars) == {1, 2, 3, 4, 5}
    listed = VOCAB.gluten | VOCAB.spicy | VOCAB.not_vegan | VOCAB.not_vegetarian | VOCAB.cooking_herbs
    assert listed <= names
    assert set(VOCAB.dessert_base) | set(VOCAB.breakfast_base) | set(VOCAB.pantry) <= names
    for c in VOCAB.cuisines:
        used = {*c.proteins, *c.vegetables, *c.starches, *c.staples, *c.herbs, *c.fruits, *c.sweets, c.fat}
        for dish in c.dishes:
            used |= set(dish.fixed)
            for choices in dish.slots.values():
                used |= set(choices)
            assert dish.kind in VOCAB.kinds
            assert dish.method in VOCAB.methods
        assert used <= names, (c.name, used - names)
        assert {d.kind for d in c.dishes} >= {"main", "dessert"}, c.name
    assert set(VOCAB.methods) == set(VOCAB.method_phases) == set(VOCAB.method_tags)
    assert set(VOCAB.kinds) == set(VOCAB.kind_tags) == set(VOCAB.kind_words)


def test_about_half_the_users_declare_part_of_their_planned_taste(
    plan: SeedPlan, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Declared tastes (user_account.tastes) are a subset of what drives the user's activity, stored as the API
    stores them (lower-cased), and drawn from their own stream: the rest of the plan does not depend on them."""
    declared = [u["tastes"] for u in rows["user_account"]]
    assert 0.3 <= sum(d is not None for d in declared) / len(declared) <= 0.7
    for u, tastes in enumerate(declared):
        if tastes is None:
            continue
        taste = plan.taste(u)
        assert tastes["cuisines"]
        assert tastes["tags"]
        assert set(tastes["cuisines"]) <= {c.lower() for c in taste.cuisines}
        assert set(tastes["tags"]) <= {t.lower() for t in taste.tags}
    monkeypatch.setattr(generate, "DECLARED_SHARE", 0.0)
    undeclared = _collect(list(SeedPlan(_spec()).batches()))
    assert all(u["tastes"] is None for u in undeclared["user_account"])
    for table in rows:
        strip = [{k: v for k, v in r.items() if k != "tastes"} for r in rows[table]]
        assert strip == [{k: v for k, v in r.items() if k != "tastes"} for r in undeclared[table]], table
