from __future__ import annotations

import uuid

import httpx

from tests.integration.conftest import Api


async def test_follow_unfollow_and_lists(client: httpx.AsyncClient, api: Api) -> None:
    star = await api.register()
    fans = [await api.register() for _ in range(5)]
    for fan in fans:
        resp = await client.put(f"/api/v1/users/{star['id']}/follow", headers=fan["headers"])
        assert resp.status_code == 204
    # Idempotent.
    assert (await client.put(f"/api/v1/users/{star['id']}/follow", headers=fans[0]["headers"])).status_code == 204

    profile = (await client.get(f"/api/v1/users/{star['id']}")).json()
    assert profile["follower_count"] == 5

    seen: list[str] = []
    url = f"/api/v1/users/{star['id']}/followers?limit=2"
    pages = 0
    while url:
        resp = await client.get(url)
        assert resp.status_code == 200
        body = resp.json()
        seen += [item["user"]["username"] for item in body["items"]]
        pages += 1
        url = (
            f"/api/v1/users/{star['id']}/followers?limit=2&cursor={body['next_cursor']}" if body["next_cursor"] else ""
        )
        if body["next_cursor"]:
            assert 'rel="next"' in resp.headers["link"]
    assert pages == 3
    assert sorted(seen) == sorted(f["username"] for f in fans)
    assert seen == [f["username"] for f in reversed(fans)]  # newest first

    following = (await client.get(f"/api/v1/users/{fans[0]['id']}/following")).json()
    assert [i["user"]["id"] for i in following["items"]] == [star["id"]]

    assert (await client.delete(f"/api/v1/users/{star['id']}/follow", headers=fans[0]["headers"])).status_code == 204
    assert (await client.get(f"/api/v1/users/{star['id']}")).json()["follower_count"] == 4


async def test_cannot_follow_self_or_ghosts(client: httpx.AsyncClient, api: Api) -> None:
    me = await api.register()
    self_follow = await client.put(f"/api/v1/users/{me['id']}/follow", headers=me["headers"])
    assert self_follow.status_code == 400
    ghost = await client.put(f"/api/v1/users/{uuid.uuid4()}/follow", headers=me["headers"])
    assert ghost.status_code == 404
    anonymous = await client.put(f"/api/v1/users/{me['id']}/follow")
    assert anonymous.status_code == 401


async def test_profile_counts_hide_private_recipes_from_others(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    await api.create_recipe(author)
    await api.create_recipe(author, is_public=False)
    assert (await client.get(f"/api/v1/users/{author['id']}")).json()["recipe_count"] == 1
    assert (await client.get("/api/v1/users/me", headers=author["headers"])).json()["recipe_count"] == 2
