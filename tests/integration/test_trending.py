"""GET /trending against real databases (SQLite with the in-process cache, PostgreSQL with Redis)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from potluck.cache.keys import trending_key
from potluck.trending.routes import router as trending_router
from tests.integration.conftest import Api
from tests.support.app import app_of, container_of

TRENDING = "/api/v1/trending"


@pytest.fixture(autouse=True)
def _trending_routes(client: httpx.AsyncClient) -> None:
    """Mount the router unless api.py already does."""
    app = app_of(client)
    if not any(getattr(route, "path", None) == TRENDING for route in app.routes):
        app.include_router(trending_router, prefix="/api/v1")


async def _titles(client: httpx.AsyncClient, **params: Any) -> list[str]:
    resp = await client.get(TRENDING, params=params)
    assert resp.status_code == 200, resp.text
    return [item["title"] for item in resp.json()["items"]]


@pytest.fixture
async def scene(client: httpx.AsyncClient, api: Api) -> dict[str, Any]:
    """Three recipes with different amounts of fresh attention, and one nobody has touched."""
    author = await api.register()
    fans = [await api.register() for _ in range(3)]
    recipes = {t: await api.create_recipe(author, title=t) for t in ("Loved", "Liked", "Panned", "Ignored")}

    async def put(path: str, user: dict[str, Any], body: dict[str, Any] | None = None) -> None:
        resp = await client.put(
            f"/api/v1/recipes/{recipes[path]['id']}/{'rating' if body else 'favorite'}",
            json=body,
            headers=user["headers"],
        )
        assert resp.status_code in (200, 204), resp.text

    for fan in fans:
        await put("Loved", fan)
        await put("Loved", fan, {"stars": 5})
    await put("Liked", fans[0])
    await put("Liked", fans[1], {"stars": 4})
    for fan in fans:
        await put("Panned", fan, {"stars": 1})
    return {"author": author, "recipes": recipes}


async def test_order_follows_the_score(client: httpx.AsyncClient, scene: dict[str, Any]) -> None:
    for period in ("day", "week", "month"):
        # Loved: 3 favorites and three 5-star ratings; Liked: 1 favorite, one 4-star rating; Panned: three
        # 1-star ratings (a negative score: never trends); Ignored: no views, favorites or ratings.
        assert await _titles(client, period=period) == ["Loved", "Liked"], period
    assert await _titles(client, period="week", limit=1) == ["Loved"]


async def test_items_are_recipe_documents_with_field_selection(
    client: httpx.AsyncClient, scene: dict[str, Any]
) -> None:
    resp = await client.get(TRENDING, params={"period": "day", "fields": "id,title", "limit": 1})
    assert resp.status_code == 200
    body = resp.json()
    assert body["period"] == "day"
    assert body["items"] == [{"id": scene["recipes"]["Loved"]["id"], "title": "Loved"}]
    assert resp.headers["cache-control"].startswith("public")
    assert "surrogate-key" not in resp.headers  # no edge configured: nothing would read it
    full = (await client.get(TRENDING, params={"period": "day", "include": "ingredients", "limit": 1})).json()
    assert "ingredients" in full["items"][0]


async def test_a_recipe_that_goes_private_or_is_deleted_disappears_at_once(
    client: httpx.AsyncClient, scene: dict[str, Any]
) -> None:
    author, recipes = scene["author"], scene["recipes"]
    assert await _titles(client, period="week") == ["Loved", "Liked"]  # computed and cached
    resp = await client.patch(
        f"/api/v1/recipes/{recipes['Loved']['id']}", json={"is_public": False}, headers=author["headers"]
    )
    assert resp.status_code == 200
    # The cached list still names it; hydration as an anonymous viewer drops it, also for its author.
    assert await _titles(client, period="week") == ["Liked"]
    resp = await client.get(TRENDING, params={"period": "week"}, headers=author["headers"])
    assert [i["title"] for i in resp.json()["items"]] == ["Liked"]
    assert (
        await client.delete(f"/api/v1/recipes/{recipes['Liked']['id']}", headers=author["headers"])
    ).status_code == 204
    assert await _titles(client, period="week") == []


async def test_the_list_is_cached_per_period(client: httpx.AsyncClient, scene: dict[str, Any]) -> None:
    assert await _titles(client, period="month") == ["Loved", "Liked"]
    cache = container_of(client).cache
    assert await cache.store.get(trending_key("month")) is not None
    assert await cache.store.get(trending_key("day")) is None
    # New attention does not reorder the cached list before its TTL (600 s) ...
    fans = [await Api(client).register() for _ in range(6)]
    for fan in fans:
        url = f"/api/v1/recipes/{scene['recipes']['Liked']['id']}/favorite"
        assert (await client.put(url, headers=fan["headers"])).status_code == 204
    assert await _titles(client, period="month") == ["Loved", "Liked"]
    # ... but a fresh computation sees it.
    await cache.invalidate([trending_key("month")])
    assert await _titles(client, period="month") == ["Liked", "Loved"]


@pytest.mark.parametrize("params", [{"period": "year"}, {"limit": 0}, {"limit": 101}, {"fields": "nope"}])
async def test_bad_parameters(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    resp = await client.get(TRENDING, params=params)
    assert resp.status_code in (400, 422)
    assert resp.headers["content-type"] == "application/problem+json"
