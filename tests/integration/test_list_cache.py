"""Pages of the recipe lists, cached as ids under the generation of the list's scope (recipe/relevance.py) and
hydrated through recipe:{id}: the same answer as the query, right after every write that changes a list, a bounded
number of statements, and untouched by writes that change other lists."""

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

    # The reader's own private recipe is on their first page at once (creating it bumps their author scope), never on
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


async def _walk(client: httpx.AsyncClient, params: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
    """Every page of a list, following next_cursor."""
    pages, cursor = [], None
    while True:
        page = await _items(client, {**params, **({"cursor": cursor} if cursor else {})}, headers)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_later_pages_are_cached_too_and_follow_every_write(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """Pages after the first (by cursor) are cached like the first: the same answer as the query, served with no
    statement once warm, and a write that moves a recipe into or out of the list shows on the next walk."""
    author = await api.register()
    reader = await api.register()
    own = await api.create_recipe(reader, title="Reader's own", is_public=False)  # their walks come from the query
    recipes = [await api.create_recipe(author, title=f"Page dish {i}", cuisine="thai") for i in range(7)]
    await drain_until_settled(container_of(client).relay)
    for r in recipes:
        await client.get(f"/api/v1/recipes/{r['id']}")

    async def same_as_query(params: dict[str, Any]) -> list[Any]:
        cached = await _walk(client, params)
        queried = [r for page in await _walk(client, params, reader["headers"]) for r in page["items"]]
        assert [r for page in cached for r in page["items"]] == [r for r in queried if r["id"] != own["id"]]
        return cached

    for params in ({"limit": 3}, {"limit": 3, "cuisine": "thai"}):
        assert len(await same_as_query(params)) == 3  # 7 recipes by 3: three pages
        statements.clear()
        walked = await _walk(client, params)
        assert [len(page["items"]) for page in walked] == [3, 3, 1]
        assert statements == [], params  # every page, the later ones too, from the caches

    # Out of the list (made private, deleted), into it (created): the next walk shows it, on every page.
    await client.patch(f"/api/v1/recipes/{recipes[1]['id']}", json={"is_public": False}, headers=author["headers"])
    await client.delete(f"/api/v1/recipes/{recipes[2]['id']}", headers=author["headers"])
    await client.patch(f"/api/v1/recipes/{recipes[4]['id']}", json={"cuisine": "italian"}, headers=author["headers"])
    newest = await api.create_recipe(author, title="Newest page dish", cuisine="thai")
    titles = [r["title"] for page in await same_as_query({"limit": 3}) for r in page["items"]]
    assert titles[0] == newest["title"]
    assert recipes[1]["title"] not in titles
    assert recipes[2]["title"] not in titles
    assert len(titles) == 7 - 2 + 1
    thai = [r["title"] for page in await same_as_query({"limit": 3, "cuisine": "thai"}) for r in page["items"]]
    assert thai[0] == newest["title"]
    assert recipes[4]["title"] not in thai
    assert len(thai) == 7 - 3 + 1


async def test_a_write_leaves_the_pages_of_lists_it_cannot_change_cached(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """Lists are namespaced by scope, not by one generation for all: a creation in another cuisine, tag and author
    keeps a cuisine's and an author's pages, and an edit of a recipe's time or tags keeps the newest-first pages."""
    author = await api.register()
    other = await api.register()
    recipes = [
        await api.create_recipe(author, title=f"Scoped {i}", cuisine="thai", tags=["soup"], cook_minutes=10)
        for i in range(4)
    ]
    await drain_until_settled(container_of(client).relay)
    for r in recipes:
        await client.get(f"/api/v1/recipes/{r['id']}")
    lists = [{"limit": 2}, {"limit": 2, "cuisine": "thai"}, {"limit": 2, "author": author["id"]}]

    async def warm_and_cached(params: dict[str, Any]) -> list[Any]:
        await _walk(client, params)
        statements.clear()
        walked = await _walk(client, params)
        assert not [s for s in statements if "recipe" in s], (params, statements)
        return walked

    for params in lists:
        await warm_and_cached(params)

    # Another author, cuisine and tag: only the unfiltered list changes.
    elsewhere = await api.create_recipe(other, title="Elsewhere", cuisine="italian", tags=["quick"])
    for params in lists[1:]:
        statements.clear()
        assert elsewhere["title"] not in [r["title"] for p in await _walk(client, params) for r in p["items"]]
        assert not [s for s in statements if "recipe" in s], (params, statements)
    assert (await _items(client, lists[0]))["items"][0]["title"] == "Elsewhere"

    # A new time and new tags move no recipe into or out of the unfiltered list: its pages stay cached.
    await warm_and_cached(lists[0])
    patch = {"cook_minutes": 90, "tags": ["stew"]}
    assert (
        await client.patch(f"/api/v1/recipes/{recipes[0]['id']}", json=patch, headers=author["headers"])
    ).status_code == 200
    await client.get(f"/api/v1/recipes/{recipes[0]['id']}")  # its document again in the recipe cache
    statements.clear()
    await _walk(client, lists[0])
    assert not [s for s in statements if "recipe" in s], statements
    # ... while the lists it does change show it at once.
    assert recipes[0]["id"] not in [r["id"] for r in (await _items(client, {"tag": "soup", "limit": 10}))["items"]]
    quick = await _items(client, {"max_total_minutes": 30, "limit": 10})
    assert recipes[0]["id"] not in [r["id"] for r in quick["items"]]
