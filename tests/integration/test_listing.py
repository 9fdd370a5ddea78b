from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Api
from tests.support.app import container_of


async def _walk(client: httpx.AsyncClient, params: dict[str, Any], headers: dict[str, str] | None = None) -> list[str]:
    titles: list[str] = []
    params = dict(params)
    for _ in range(100):
        resp = await client.get("/api/v1/recipes", params=params, headers=headers or {})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        titles += [r["title"] for r in body["items"]]
        if body["next_cursor"] is None:
            assert "link" not in resp.headers
            return titles
        assert body["next_cursor"] in resp.headers["link"]
        params["cursor"] = body["next_cursor"]
    raise AssertionError("pagination did not end")


async def test_cursor_pages_cover_everything_newest_first(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    for i in range(7):
        await api.create_recipe(author, title=f"R{i}")
    assert await _walk(client, {"limit": 3}) == [f"R{i}" for i in reversed(range(7))]


async def test_pages_are_stable_while_new_rows_arrive(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    for i in range(4):
        await api.create_recipe(author, title=f"R{i}")
    first = (await client.get("/api/v1/recipes", params={"limit": 2})).json()
    await api.create_recipe(author, title="Newcomer")
    second = (await client.get("/api/v1/recipes", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [r["title"] for r in first["items"] + second["items"]] == ["R3", "R2", "R1", "R0"]


async def test_filters(client: httpx.AsyncClient, api: Api) -> None:
    ann, bob = await api.register(), await api.register()
    await api.create_recipe(
        ann, title="Quick pasta", cuisine="italian", prep_minutes=5, cook_minutes=10, tags=["quick"]
    )
    await api.create_recipe(
        ann, title="Slow ragu", cuisine="italian", prep_minutes=30, cook_minutes=180, tags=["sunday"]
    )
    await api.create_recipe(bob, title="Tacos", cuisine="mexican", prep_minutes=15, cook_minutes=10, tags=["quick"])
    assert await _walk(client, {"cuisine": "Italian"}) == ["Slow ragu", "Quick pasta"]
    assert await _walk(client, {"tag": "quick"}) == ["Tacos", "Quick pasta"]
    assert await _walk(client, {"max_total_minutes": 25}) == ["Tacos", "Quick pasta"]
    assert await _walk(client, {"author": bob["id"]}) == ["Tacos"]
    assert await _walk(client, {"author": ann["id"], "tag": "quick", "max_total_minutes": 15}) == ["Quick pasta"]


async def test_list_items_are_light_unless_parts_are_included(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    await api.create_recipe(author)
    light = (await client.get("/api/v1/recipes")).json()["items"][0]
    assert "ingredients" not in light
    assert light["author"]["username"] == author["username"]
    full = (await client.get("/api/v1/recipes", params={"include": "ingredients,steps,tags,nutrition"})).json()
    item = full["items"][0]
    assert [i["name"] for i in item["ingredients"]] == ["tomato", "olive oil"]
    assert item["tags"] == ["soup", "vegetarian"]
    assert item["nutrition"]["calories"] == 180
    slim = (await client.get("/api/v1/recipes", params={"fields": "id,title"})).json()["items"][0]
    assert set(slim) == {"id", "title"}


async def test_related_data_loads_in_a_fixed_number_of_queries(
    client: httpx.AsyncClient, api: Api, settings: Any
) -> None:
    """No N+1: listing 3 or 30 recipes with every part costs the same number of statements."""
    from sqlalchemy import event

    author = await api.register()
    app_engine = container_of(client).database
    counts: list[int] = []

    def counter(*_: Any) -> None:
        counts[-1] += 1

    for n in (3, 30):
        for i in range(n - (3 if n == 30 else 0)):
            await api.create_recipe(author, title=f"N{n}-{i}")
        counts.append(0)
        for engine in {app_engine.primary, app_engine.primary_reader, *app_engine.replicas}:
            event.listen(engine.sync_engine, "before_cursor_execute", counter)
        resp = await client.get("/api/v1/recipes", params={"limit": n, "include": "ingredients,steps,tags,nutrition"})
        for engine in {app_engine.primary, app_engine.primary_reader, *app_engine.replicas}:
            event.remove(engine.sync_engine, "before_cursor_execute", counter)
        assert len(resp.json()["items"]) == n
    assert counts[0] == counts[1]
    assert counts[0] <= 6


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"max_total_minutes": -1}, {"author": "not-a-uuid"}],
)
async def test_bad_list_parameters_are_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    resp = await client.get("/api/v1/recipes", params=params)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", "W10"])
async def test_bad_cursor_is_400(client: httpx.AsyncClient, cursor: str) -> None:
    resp = await client.get("/api/v1/recipes", params={"cursor": cursor})
    assert resp.status_code == 400
    assert resp.json()["param"] == "cursor"
