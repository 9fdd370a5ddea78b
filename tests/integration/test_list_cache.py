"""First pages of the recipe lists, cached as ids under `gen:lists` and hydrated through recipe:{id}: the same
answer as the query, right after every write that changes a list, and a bounded number of statements."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from potluck.cache.keys import recipe_key
from tests.integration.conftest import Api
from tests.support.app import container_of
from tests.support.outbox import drain_until_settled

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

LISTS = [{}, {"cuisine": "thai"}, {"tag": "soup"}, {"limit": 5}]


async def _items(client: httpx.AsyncClient, params: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    resp = await client.get("/api/v1/recipes", params=params, headers=headers or {})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_cached_first_pages_answer_like_the_query_and_follow_every_write(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    author = await api.register()
    reader = await api.register()  # signed in with a private recipe: their pages always come from the query
    own = await api.create_recipe(reader, title="Reader's own", cuisine="french", is_public=False)  # the oldest
    recipes = [
        await api.create_recipe(author, title=f"Dish {i}", cuisine="thai" if i % 2 else "italian") for i in range(8)
    ]
    await api.create_recipe(author, title="Hidden", is_public=False)
    await drain_until_settled(container_of(client).relay)

    async def same_as_query() -> None:
        for params in LISTS:
            cached, queried = await _items(client, params), await _items(client, params, reader["headers"])
            queried["items"] = [r for r in queried["items"] if r["id"] != own["id"]]
            assert cached == queried, params

    await same_as_query()
    await same_as_query()  # now from the list cache
    assert "Hidden" not in [r["title"] for r in (await _items(client, {}))["items"]]

    # A warm first page costs no statement at all once its recipes are cached.
    for r in recipes:
        await client.get(f"/api/v1/recipes/{r['id']}")
    await _items(client, {})
    statements.clear()
    assert len((await _items(client, {}))["items"]) == 9 - 1
    assert statements == []

    # Every write that changes a list shows on the next anonymous read.
    url = f"/api/v1/recipes/{recipes[0]['id']}"
    await client.patch(url, json={"title": "Renamed"}, headers=author["headers"])  # no bump: hydrated fresh
    await client.patch(f"/api/v1/recipes/{recipes[1]['id']}", json={"cuisine": "italian"}, headers=author["headers"])
    await client.patch(f"/api/v1/recipes/{recipes[2]['id']}", json={"is_public": False}, headers=author["headers"])
    await client.delete(f"/api/v1/recipes/{recipes[3]['id']}", headers=author["headers"])
    newest = await api.create_recipe(author, title="Newest", cuisine="thai", tags=["soup"])
    await same_as_query()
    titles = [r["title"] for r in (await _items(client, {}))["items"]]
    assert titles[0] == "Newest"
    assert "Renamed" in titles
    assert recipes[2]["title"] not in titles
    assert recipes[3]["title"] not in titles
    thai = [r["id"] for r in (await _items(client, {"cuisine": "thai"}))["items"]]
    assert recipes[1]["id"] not in thai
    assert newest["id"] in thai


async def test_hydration_misses_cost_one_statement_whatever_the_page_size(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    author = await api.register()
    created = [await api.create_recipe(author, title=f"R{i}") for i in range(30)]
    await drain_until_settled(container_of(client).relay)
    cache = container_of(client).cache
    counts = []
    for limit in (3, 30):
        await cache.invalidate_strict([recipe_key(r["id"]) for r in created])  # every card cold
        statements.clear()
        assert len((await _items(client, {"limit": limit}))["items"]) == limit
        counts.append(len(statements))
    assert counts == [2, 2]  # the page's ids (a fill), then the cold cards in one statement
    # ... which filled recipe:{id}: the page again, and every one of its recipes, cost no statement.
    statements.clear()
    page = (await _items(client, {"limit": 30}))["items"]
    for card in page:
        assert (await client.get(f"/api/v1/recipes/{card['id']}")).status_code == 200
    assert statements == []


async def test_signed_in_first_pages_are_cached_unless_the_reader_has_private_recipes(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    author = await api.register()
    reader = await api.register()
    recipes = [await api.create_recipe(author, title=f"Dish {i}") for i in range(5)]
    await drain_until_settled(container_of(client).relay)
    for r in recipes:
        await client.get(f"/api/v1/recipes/{r['id']}")

    async def served_from_the_cache() -> None:
        await _items(client, {}, reader["headers"])  # fills the page and whether the reader has private recipes
        anonymous = await _items(client, {})
        statements.clear()
        assert await _items(client, {}, reader["headers"]) == anonymous
        assert not [s for s in statements if "recipe" in s], statements

    await served_from_the_cache()

    # The reader's own private recipe is on their first page at once (creating it bumps `gen:lists`), never on
    # anyone else's; their pages come from the query while they have one.
    mine = await api.create_recipe(reader, title="Mine", is_public=False)
    statements.clear()
    assert (await _items(client, {}, reader["headers"]))["items"][0]["title"] == "Mine"
    assert [s for s in statements if "recipe" in s]
    assert "Mine" not in [r["title"] for r in (await _items(client, {}))["items"]]
    assert "Mine" not in [r["title"] for r in (await _items(client, {}, author["headers"]))["items"]]

    # Made public, then deleted: the reader has no private recipe left and is served from the cache again.
    await client.patch(f"/api/v1/recipes/{mine['id']}", json={"is_public": True}, headers=reader["headers"])
    assert (await _items(client, {}))["items"][0]["title"] == "Mine"
    await client.delete(f"/api/v1/recipes/{mine['id']}", headers=reader["headers"])
    await served_from_the_cache()
    assert "Mine" not in [r["title"] for r in (await _items(client, {}, reader["headers"]))["items"]]
