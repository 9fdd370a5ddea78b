"""Pages of the recipe lists, cached as ids under the generation of the list's scope (recipe/relevance.py) and
hydrated through recipe:{id}: the same answer as the query, right after every write that changes a list, a bounded
number of statements, and untouched by writes that change other lists."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from potluck.cache.keys import lists_generation_key, recipe_key
from potluck.kit.cursor import decode_cursor, encode_cursor
from potluck.recipe.relevance import LIST_CACHE_PAGES, list_generations
from tests.harness import RedisServer
from tests.integration.conftest import Api
from tests.support.app import container_of
from tests.support.eventually import eventually
from tests.support.outbox import drain_until_settled

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

LISTS: list[dict[str, Any]] = [{}, {"cuisine": "thai"}, {"tag": "soup"}, {"limit": 5}]


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
    statement once warm, and each write that moves a recipe into or out of a list shows on the next walk, page by
    page (a page left cached under the old generation would be short or hold a recipe it no longer should)."""
    author = await api.register()
    reader = await api.register()
    own = await api.create_recipe(reader, title="Reader's own", is_public=False)  # their walks come from the query
    hidden = await api.create_recipe(author, title="Hidden page dish", cuisine="thai", is_public=False)
    recipes = [await api.create_recipe(author, title=f"Page dish {i}", cuisine="thai") for i in range(7)]
    await drain_until_settled(container_of(client).relay)
    for r in recipes:
        await client.get(f"/api/v1/recipes/{r['id']}")
    every, thai = {"limit": 3}, {"limit": 3, "cuisine": "thai"}

    async def walks_as(params: dict[str, Any], newest_first: list[dict[str, Any]]) -> None:
        """The walk is `newest_first` in pages of 3, and the same as the query's (a viewer with a private recipe)."""
        ids = [r["id"] for r in newest_first]
        pages = [[r["id"] for r in page["items"]] for page in await _walk(client, params)]
        assert pages == [ids[i : i + 3] for i in range(0, len(ids), 3)], params
        queried = [r["id"] for page in await _walk(client, params, reader["headers"]) for r in page["items"]]
        assert [i for i in queried if i != own["id"]] == ids, params

    listed = recipes[::-1]
    for params in (every, thai):
        await walks_as(params, listed)
        statements.clear()
        assert [len(page["items"]) for page in await _walk(client, params)] == [3, 3, 1]
        assert statements == [], params  # every page, the later ones too, from the caches

    async def after(write: Any, in_every: list[dict[str, Any]], in_thai: list[dict[str, Any]]) -> None:
        assert (await write).status_code in (200, 204)
        await walks_as(every, in_every)
        await walks_as(thai, in_thai)

    headers = author["headers"]
    listed = [r for r in listed if r is not recipes[1]]
    await after(
        client.patch(f"/api/v1/recipes/{recipes[1]['id']}", json={"is_public": False}, headers=headers), listed, listed
    )
    listed = [r for r in listed if r is not recipes[2]]
    await after(client.delete(f"/api/v1/recipes/{recipes[2]['id']}", headers=headers), listed, listed)
    thai_only = [r for r in listed if r is not recipes[4]]
    await after(
        client.patch(f"/api/v1/recipes/{recipes[4]['id']}", json={"cuisine": "italian"}, headers=headers),
        listed,
        thai_only,
    )
    listed, thai_only = [*listed, hidden], [*thai_only, hidden]  # the oldest: last
    await after(
        client.patch(f"/api/v1/recipes/{hidden['id']}", json={"is_public": True}, headers=headers), listed, thai_only
    )
    newest = await api.create_recipe(author, title="Newest page dish", cuisine="thai")
    await walks_as(every, [newest, *listed])
    await walks_as(thai, [newest, *thai_only])


async def test_only_the_first_pages_are_cached_and_a_deep_walk_is_queried(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """The cache keeps the first LIST_CACHE_PAGES pages of a list (each cursor counts the page it opens); pages
    past them, and pages opened by a cursor that does not count, are queried every time, with the same answer."""
    author = await api.register()
    pages_wanted = LIST_CACHE_PAGES + 2
    recipes = [await api.create_recipe(author, title=f"Deep dish {i}", cuisine="nepali") for i in range(pages_wanted)]
    await drain_until_settled(container_of(client).relay)
    params = {"limit": 1, "cuisine": "nepali"}
    first_walk = await _walk(client, params)  # fills every card and the pages the cache keeps
    assert [page["items"][0]["id"] for page in first_walk] == [r["id"] for r in recipes[::-1]]
    numbers = [decode_cursor(page["next_cursor"]).page for page in first_walk[:-1]]
    assert numbers == list(range(2, pages_wanted + 1))

    costs, cursor = [], None
    for page in first_walk:
        statements.clear()
        again = await _items(client, {**params, **({"cursor": cursor} if cursor else {})})
        assert again == page
        costs.append(len([s for s in statements if "recipe" in s]))
        cursor = page["next_cursor"]
    assert costs == [0] * LIST_CACHE_PAGES + [1, 1], costs  # the deep pages: their ids' query, every time

    # A cursor without a page number (issued before cursors counted) opens the same page, queried.
    second = decode_cursor(first_walk[0]["next_cursor"])
    statements.clear()
    uncounted = await _items(client, {**params, "cursor": encode_cursor(second.created_at, second.id)})
    assert uncounted["items"] == first_walk[1]["items"]
    assert [s for s in statements if "recipe" in s]
    assert decode_cursor(uncounted["next_cursor"]).page is None


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
    lists: list[dict[str, Any]] = [{"limit": 2}, {"limit": 2, "cuisine": "thai"}, {"limit": 2, "author": author["id"]}]

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
    tagged: dict[str, Any] = {"tag": "soup", "limit": 10}
    quick: dict[str, Any] = {"max_total_minutes": 30, "limit": 10}
    for params in (lists[0], tagged, quick):
        await warm_and_cached(params)
    patch = {"cook_minutes": 90, "tags": ["stew"]}
    assert (
        await client.patch(f"/api/v1/recipes/{recipes[0]['id']}", json=patch, headers=author["headers"])
    ).status_code == 200
    await client.get(f"/api/v1/recipes/{recipes[0]['id']}")  # its document again in the recipe cache
    statements.clear()
    await _walk(client, lists[0])
    assert not [s for s in statements if "recipe" in s], statements
    # ... while the lists it does change (both cached before it) show it at once: it left the old tag's and the
    # short recipes'.
    for params in (tagged, quick):
        assert [r["id"] for r in (await _items(client, params))["items"]] == [r["id"] for r in recipes[:0:-1]], params


async def test_list_bumps_a_write_could_not_deliver_wait_and_no_list_is_read_from_redis_meanwhile(
    client: httpx.AsyncClient, api: Api, audited_redis: RedisServer
) -> None:
    """A creation while Redis does not answer: its list scopes (one pipelined INCR) wait in the process's
    `pending_generations`, lists are queried meanwhile (the new recipe shows at once), and once Redis answers the
    bumps land and the cached pages show it too."""
    author = await api.register()
    older = await api.create_recipe(author, title="Older", cuisine="thai", tags=["soup"])
    cache = container_of(client).cache
    await drain_until_settled(container_of(client).relay)
    for params in ({}, {"cuisine": "thai"}, {"tag": "soup"}):
        assert [r["id"] for r in (await _items(client, params))["items"]] == [older["id"]]  # cached now
    before = await cache.store.get_int(lists_generation_key("tag", "soup"))
    audited_redis.pause()  # SIGSTOP
    try:
        newer = await api.create_recipe(author, title="Newer", cuisine="thai", tags=["soup"])
        owed = set(list_generations(uuid.UUID(author["id"]), ["thai"], ["soup"], fields=None, public=True))
        assert owed <= cache.pending_generations
        for params in ({}, {"cuisine": "thai"}, {"tag": "soup"}):
            assert [r["id"] for r in (await _items(client, params))["items"]] == [newer["id"], older["id"]]
    finally:
        audited_redis.resume()
    await eventually(lambda: not cache.pending_generations, 10, message="the deferred bumps were not delivered")
    assert await cache.store.get_int(lists_generation_key("tag", "soup")) == before + 1
    for params in ({}, {"cuisine": "thai"}, {"tag": "soup"}):
        assert [r["id"] for r in (await _items(client, params))["items"]] == [newer["id"], older["id"]]
