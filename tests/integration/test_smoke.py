from __future__ import annotations

import httpx

from tests.integration.conftest import Api


async def test_register_login_create_and_read(client: httpx.AsyncClient, api: Api) -> None:
    alice = await api.register()
    recipe = await api.create_recipe(alice)
    resp = await client.get(f"/api/v1/recipes/{recipe['id']}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["title"] == "Tomato soup"
    assert [i["name"] for i in body["ingredients"]] == ["tomato", "olive oil"]
    assert body["author"]["username"] == alice["username"]
