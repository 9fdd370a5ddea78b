"""Surrogate-key headers: emitted only when an edge is configured (the embedded default sends none)."""

from __future__ import annotations

import uuid

from potluck.cache.surrogate import SurrogateKeys
from potluck.config import EdgeSettings

RECIPE = uuid.UUID(int=1)
AUTHOR = uuid.UUID(int=2)
DOCS = [(RECIPE, AUTHOR)]


def test_no_edge_nodes_no_header_on_any_kind_of_response() -> None:
    keys = SurrogateKeys.from_settings(EdgeSettings())
    assert keys.recipe(RECIPE, AUTHOR) == {}
    assert keys.recipe_list(DOCS) == {}
    assert keys.search(DOCS) == {}
    assert keys.trending("week", DOCS) == {}
    assert keys.profile(AUTHOR) == {}


def test_edge_nodes_configured_every_kind_carries_its_keys_in_the_configured_header() -> None:
    keys = SurrogateKeys.from_settings(EdgeSettings(purge_urls=["http://127.0.0.1:1/"], key_header="Cache-Tag"))
    assert keys.recipe(RECIPE, AUTHOR) == {"Cache-Tag": f"recipe:{RECIPE} user:{AUTHOR}"}
    assert keys.recipe_list(DOCS)["Cache-Tag"].split() == ["list:recipes", f"recipe:{RECIPE}", f"user:{AUTHOR}"]
    assert keys.profile(AUTHOR) == {"Cache-Tag": f"user:{AUTHOR}"}
    assert keys.trending("week", DOCS)["Cache-Tag"].split()[1:] == [f"recipe:{RECIPE}", f"user:{AUTHOR}"]
