from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.integration.conftest import Api

PROBLEM = "application/problem+json"


async def test_create_returns_location_etag_and_full_document(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    resp = await client.post(
        "/api/v1/recipes",
        json={"title": "  Pancakes ", "tags": ["Breakfast", "breakfast", "sweet"], "steps": ["Mix.", "Fry."]},
        headers=author["headers"],
    )
    assert resp.status_code == 201
    body = resp.json()
    assert resp.headers["location"].endswith(f"/api/v1/recipes/{body['id']}")
    assert resp.headers["etag"].startswith('"1-')
    assert body["title"] == "Pancakes"
    assert body["tags"] == ["breakfast", "sweet"]
    assert body["steps"] == ["Mix.", "Fry."]
    assert body["version"] == 1
    assert body["rating"] is None
    assert body["total_minutes"] == 0


async def test_ids_sort_by_creation(api: Api) -> None:
    author = await api.register()
    ids = [uuid.UUID((await api.create_recipe(author))["id"]) for _ in range(5)]
    assert ids == sorted(ids)
    assert all(i.version == 7 for i in ids)


async def test_only_the_author_edits_or_deletes(client: httpx.AsyncClient, api: Api) -> None:
    author, other = await api.register(), await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    assert (await client.patch(url, json={"title": "Hacked"}, headers=other["headers"])).status_code == 403
    assert (await client.delete(url, headers=other["headers"])).status_code == 403
    assert (await client.patch(url, json={"title": "Hacked"})).status_code == 401
    assert (await client.get(url)).json()["title"] == "Tomato soup"


async def test_patch_is_partial_and_bumps_the_version(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    resp = await client.patch(
        url,
        json={
            "title": "Roast tomato soup",
            "ingredients": [{"name": "tomato", "quantity": 8}],
            "nutrition": None,
        },
        headers=author["headers"],
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["title"] == "Roast tomato soup"
    assert body["version"] == 2
    assert [i["name"] for i in body["ingredients"]] == ["tomato"]
    assert body["nutrition"] is None
    assert body["steps"] == recipe["steps"]  # untouched
    assert body["description"] == recipe["description"]
    fresh = (await client.get(url)).json()
    assert fresh == body


async def test_if_match_gives_optimistic_concurrency(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    etag = (await client.get(url)).headers["etag"]
    first = await client.patch(url, json={"title": "A"}, headers={**author["headers"], "If-Match": etag})
    assert first.status_code == 200
    stale = await client.patch(url, json={"title": "B"}, headers={**author["headers"], "If-Match": etag})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    assert stale.json()["current_version"] == 2
    current = first.headers["etag"]
    ok = await client.patch(url, json={"title": "C"}, headers={**author["headers"], "If-Match": current})
    assert ok.status_code == 200
    assert (await client.get(url)).json()["title"] == "C"


async def test_concurrent_if_match_updates_let_exactly_one_win(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    etag = (await client.get(url)).headers["etag"]
    results = await asyncio.gather(
        *(client.patch(url, json={"title": f"T{i}"}, headers={**author["headers"], "If-Match": etag}) for i in range(5))
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412, 412, 412]
    assert (await client.get(url)).json()["version"] == 2


async def test_if_none_match_gives_304_until_the_recipe_changes(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    first = await client.get(url)
    etag = first.headers["etag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    await client.patch(url, json={"title": "New"}, headers=author["headers"])
    changed = await client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_delete_removes_the_recipe(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    assert (await client.delete(url, headers=author["headers"])).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url, headers=author["headers"])).status_code == 404


async def test_private_recipe_is_a_404_for_everyone_else(client: httpx.AsyncClient, api: Api) -> None:
    author, other = await api.register(), await api.register()
    secret = await api.create_recipe(author, title="Secret sauce", is_public=False)
    url = f"/api/v1/recipes/{secret['id']}"
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url, headers=other["headers"])).status_code == 404
    mine = await client.get(url, headers=author["headers"])
    assert mine.status_code == 200
    assert "private" in mine.headers["cache-control"]
    # Nor can anyone else rate, favorite or edit it: it does not exist for them.
    for call in (
        client.put(f"{url}/rating", json={"stars": 5}, headers=other["headers"]),
        client.put(f"{url}/favorite", headers=other["headers"]),
        client.patch(url, json={"title": "x"}, headers=other["headers"]),
    ):
        assert (await call).status_code == 404
    for who in (None, other):
        listing = await client.get("/api/v1/recipes", headers=who["headers"] if who else {})
        assert secret["id"] not in [r["id"] for r in listing.json()["items"]]
    own = await client.get("/api/v1/recipes", headers=author["headers"])
    assert secret["id"] in [r["id"] for r in own.json()["items"]]


async def test_cache_control_public_for_anonymous_private_for_callers(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    anon = await client.get(f"/api/v1/recipes/{recipe['id']}")
    assert "s-maxage" in anon.headers["cache-control"]
    assert "stale-while-revalidate" in anon.headers["cache-control"]
    authed = await client.get(f"/api/v1/recipes/{recipe['id']}", headers=author["headers"])
    assert authed.headers["cache-control"].startswith("private")


async def test_field_selection_and_include(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    slim = await client.get(url, params={"fields": "id,title,image_url,rating,author.username"})
    assert slim.json() == {
        "id": recipe["id"],
        "title": "Tomato soup",
        "image_url": None,
        "rating": None,
        "author": {"username": author["username"]},
    }
    with_parts = await client.get(url, params={"fields": "id", "include": "ingredients,nutrition"})
    assert set(with_parts.json()) == {"id", "ingredients", "nutrition"}
    assert with_parts.headers["etag"] != slim.headers["etag"]
    for params, name in (({"fields": "id,secret"}, "secret"), ({"include": "comments"}, "comments")):
        bad = await client.get(url, params=params)
        assert bad.status_code == 400
        assert bad.headers["content-type"] == PROBLEM
        assert bad.json()["field"] == name
        assert name in bad.json()["detail"]


async def test_ratings_keep_an_exact_average(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    raters = [await api.register() for _ in range(4)]
    for rater, stars in zip(raters, (5, 4, 3, 1), strict=True):
        resp = await client.put(f"{url}/rating", json={"stars": stars, "review": "ok"}, headers=rater["headers"])
        assert resp.status_code == 200
    # Changing a rating replaces it.
    resp = await client.put(f"{url}/rating", json={"stars": 4}, headers=raters[3]["headers"])
    assert resp.json()["recipe_rating_count"] == 4
    body = (await client.get(url)).json()
    assert body["rating"] == pytest.approx(4.0)
    assert body["rating_count"] == 4
    assert (await client.delete(f"{url}/rating", headers=raters[0]["headers"])).status_code == 204
    body = (await client.get(url)).json()
    assert body["rating"] == pytest.approx(11 / 3, abs=1e-4)
    assert body["rating_count"] == 3


async def test_concurrent_ratings_keep_count_exact(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    raters = [await api.register() for _ in range(8)]
    results = await asyncio.gather(
        *(
            client.put(f"/api/v1/recipes/{recipe['id']}/rating", json={"stars": 1 + i % 5}, headers=r["headers"])
            for i, r in enumerate(raters)
        )
    )
    assert all(r.status_code == 200 for r in results)
    body = (await client.get(f"/api/v1/recipes/{recipe['id']}")).json()
    assert body["rating_count"] == 8
    assert body["rating"] == pytest.approx(sum(1 + i % 5 for i in range(8)) / 8, abs=1e-4)


@pytest.mark.parametrize("stars", [0, 6, "five", None])
async def test_bad_ratings_are_rejected(client: httpx.AsyncClient, api: Api, stars: object) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    resp = await client.put(f"/api/v1/recipes/{recipe['id']}/rating", json={"stars": stars}, headers=author["headers"])
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM


async def test_favorites(client: httpx.AsyncClient, api: Api) -> None:
    author, fan = await api.register(), await api.register()
    recipes = [await api.create_recipe(author, title=f"R{i}") for i in range(3)]
    for r in recipes:
        for _ in range(2):  # idempotent
            assert (await client.put(f"/api/v1/recipes/{r['id']}/favorite", headers=fan["headers"])).status_code == 204
    assert (await client.get(f"/api/v1/recipes/{recipes[0]['id']}")).json()["favorite_count"] == 1
    mine = await client.get("/api/v1/users/me/favorites", params={"limit": 2}, headers=fan["headers"])
    assert [i["recipe"]["title"] for i in mine.json()["items"]] == ["R2", "R1"]
    rest = await client.get(
        "/api/v1/users/me/favorites", params={"cursor": mine.json()["next_cursor"]}, headers=fan["headers"]
    )
    assert [i["recipe"]["title"] for i in rest.json()["items"]] == ["R0"]
    assert rest.json()["next_cursor"] is None
    await client.delete(f"/api/v1/recipes/{recipes[0]['id']}/favorite", headers=fan["headers"])
    assert (await client.get(f"/api/v1/recipes/{recipes[0]['id']}")).json()["favorite_count"] == 0
    assert (await client.get("/api/v1/users/me/favorites")).status_code == 401
