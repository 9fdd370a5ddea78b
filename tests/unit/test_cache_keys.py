"""Unit tests for cache key building (potluck.cache.keys) and the family table (potluck.cache.families)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from potluck.cache.families import FAMILIES
from potluck.cache.keys import (
    SEARCH_EPOCH_KEY,
    recipe_key,
    recommend_key,
    scoped_search_key,
    search_key,
    search_scope_key,
    stable_digest,
    trending_key,
    user_key,
)
from potluck.recipe.relevance import MAX_SEARCH_SCOPES, search_scope_keys

RID = uuid.UUID("0192f0c2-0000-7000-8000-000000000001")


def test_key_patterns_match_the_design() -> None:
    assert recipe_key(RID) == f"recipe:{RID}"
    assert recipe_key(str(RID)) == recipe_key(RID)
    assert user_key(RID) == f"user:{RID}"
    assert trending_key("day") == "trending:day"
    assert trending_key("week") == "trending:week"
    assert recommend_key(RID) == f"recommend:{RID}"
    assert search_key(0, {"q": "soup"}).startswith("search:")
    assert search_key(7, {"q": "soup"}).startswith("search:")


def test_key_patterns_agree_with_family_patterns() -> None:
    assert FAMILIES["recipe_detail"].pattern.format(id=RID) == recipe_key(RID)
    assert FAMILIES["user_profile"].pattern.format(id=RID) == user_key(RID)
    assert FAMILIES["trending"].pattern.format(period="day") == trending_key("day")
    assert FAMILIES["recommendations"].pattern.format(user_id=RID) == recommend_key(RID)
    assert FAMILIES["search_results"].pattern.startswith("search:")


def test_families_are_exactly_the_designs() -> None:
    assert {name: (f.ttl_seconds, f.pattern) for name, f in FAMILIES.items()} == {
        "recipe_detail": (3600, "recipe:{id}"),
        "user_profile": (1800, "user:{id}"),
        "search_results": (300, "search:{hash}"),
        "trending": (600, "trending:{period}"),
        "recommendations": (1800, "recommend:{user_id}"),
    }
    for name, family in FAMILIES.items():
        assert family.name == name
        assert 0 < family.negative_ttl_seconds < family.ttl_seconds


def test_search_key_changes_with_generation_and_query() -> None:
    q = {"q": "soup", "tags": ["vegan"], "page": 1}
    assert search_key(1, q) != search_key(2, q)
    assert search_key(1, q) != search_key(1, {**q, "page": 2})
    assert search_key(1, q) == search_key(1, dict(q))


def test_dict_key_order_does_not_change_the_digest() -> None:
    a = {"q": "soup", "tags": ["vegan", "quick"], "page": 1, "filters": {"time": 30, "diet": "vegan"}}
    b = {"filters": {"diet": "vegan", "time": 30}, "page": 1, "tags": ["vegan", "quick"], "q": "soup"}
    assert stable_digest(a) == stable_digest(b)
    assert search_key(3, a) == search_key(3, b)
    # List order is meaningful, though.
    assert stable_digest({"tags": ["quick", "vegan"]}) != stable_digest({"tags": ["vegan", "quick"]})


def test_stable_digest_size() -> None:
    assert len(stable_digest("x")) == 32
    assert len(stable_digest("x", size=8)) == 16
    assert stable_digest("x") != stable_digest("y")


_SUBPROCESS_CODE = """
import json
from potluck.cache.keys import search_key, stable_digest
q = {"q": "soup", "tags": ["vegan", "quick"], "page": 2, "filters": {"diet": "vegan", "time": 30}}
print(json.dumps({
    "digest": stable_digest(q),
    "digest_str": stable_digest("0192f0c2-0000-7000-8000-000000000001"),
    "search": search_key(5, q),
    "search_reordered": search_key(5, dict(reversed(list(q.items())))),
    "hash_str": hash("soup"),
}))
"""


def test_digests_are_identical_under_any_hash_seed() -> None:
    results = []
    for seed in ("0", "1", "4242"):
        proc = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS_CODE],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(proc.stdout))
    # Sanity: the seeds really differ (Python's salted hash() differs), so the check below means something.
    assert len({r["hash_str"] for r in results}) == 3
    for key in ("digest", "digest_str", "search", "search_reordered"):
        assert len({r[key] for r in results}) == 1, key
    assert results[0]["search"] == results[0]["search_reordered"]
    # And they equal this process's values.
    q = {"q": "soup", "tags": ["vegan", "quick"], "page": 2, "filters": {"diet": "vegan", "time": 30}}
    assert results[0]["digest"] == stable_digest(q)
    assert results[0]["search"] == search_key(5, q)


@pytest.mark.parametrize("seed", ["0", "1", "4242"])
def test_key_builders_do_not_depend_on_hash_seed(seed: str) -> None:
    code = (
        "from potluck.cache.keys import recipe_key, user_key, trending_key, recommend_key; "
        f"print(recipe_key({str(RID)!r}), user_key({str(RID)!r}), trending_key('day'), recommend_key({str(RID)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [recipe_key(RID), user_key(RID), trending_key("day"), recommend_key(RID)]


def test_a_scoped_search_key_names_its_generations_not_only_their_values() -> None:
    query = {"q": "butter chicken"}
    butter, chicken = search_scope_key("butter"), search_scope_key("chicken")
    assert butter != chicken
    # Two readers that chose different lexemes for one query, whose generations happen to be equal, never share.
    assert scoped_search_key("x", {butter: 7}, query) != scoped_search_key("x", {chicken: 7}, query)
    assert scoped_search_key("x", {butter: 7}, query) != scoped_search_key("x", {butter: 8}, query)
    assert scoped_search_key("x", {butter: 7}, query) != scoped_search_key("f", {butter: 7}, query)
    assert scoped_search_key("x", {butter: 7}, query) != search_key(7, query)
    assert search_scope_key("butter") == butter  # stable: every process picks the same bucket


def test_a_write_bumps_its_lexemes_or_past_the_cap_the_epoch() -> None:
    few = [f"word{i}" for i in range(10)]
    assert search_scope_keys(few, None) == sorted({search_scope_key(w) for w in few})
    assert search_scope_keys(few[:5], few[5:]) == search_scope_keys(few)
    assert search_scope_keys(None, None) == []
    many = [f"word{i}" for i in range(3 * MAX_SEARCH_SCOPES)]
    assert search_scope_keys(many) == [SEARCH_EPOCH_KEY]
