"""GET /recommendations against real databases (SQLite with the in-process cache, PostgreSQL with Redis)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from potluck.cache.keys import recommend_key
from potluck.recommendation.routes import router as recommendations_router
from tests.integration.conftest import Api
from tests.support.app import app_of, container_of

RECOMMENDATIONS = "/api/v1/recommendations"


@pytest.fixture(autouse=True)
def _recommendation_routes(client: httpx.AsyncClient) -> None:
    """Mount the router unless api.py already does."""
    app = app_of(client)
    if not any(getattr(route, "path", None) == RECOMMENDATIONS for route in app.routes):
        app.include_router(recommendations_router, prefix="/api/v1")


async def _titles(client: httpx.AsyncClient, user: dict[str, Any], **params: Any) -> list[str]:
    resp = await client.get(RECOMMENDATIONS, params=params, headers=user["headers"])
    assert resp.status_code == 200, resp.text
    return [item["title"] for item in resp.json()["items"]]


async def _put(client: httpx.AsyncClient, path: str, user: dict[str, Any], body: dict[str, Any] | None = None) -> None:
    resp = await client.put(path, json=body, headers=user["headers"])
    assert resp.status_code in (200, 204), resp.text


@pytest.fixture
async def scene(client: httpx.AsyncClient, api: Api) -> dict[str, Any]:
    """A viewer who loves Italian food and follows a friend who favorited a Thai curry.

    author: four Italian dishes, a Mexican one (favorited by a stranger), a Thai one and a private Italian one.
    viewer: favorited two of the Italian dishes, wrote an Italian recipe of their own, follows `friend`.
    friend: favorited the Thai curry."""
    author, viewer, friend, stranger = [await api.register() for _ in range(4)]
    recipes: dict[str, dict[str, Any]] = {}
    for title, cuisine, tags, public in (
        ("Carbonara", "italian", ["pasta"], True),
        ("Lasagne", "italian", ["pasta"], True),
        ("Risotto", "italian", ["rice"], True),
        ("Gnocchi", "italian", ["pasta"], True),
        ("Tacos", "mexican", ["spicy"], True),
        ("Green curry", "thai", ["curry"], True),
        ("Secret ragu", "italian", ["pasta"], False),
    ):
        recipes[title] = await api.create_recipe(author, title=title, cuisine=cuisine, tags=tags, is_public=public)
    recipes["Own pizza"] = await api.create_recipe(viewer, title="Own pizza", cuisine="italian", tags=["pasta"])

    def url(title: str, what: str = "favorite") -> str:
        return f"/api/v1/recipes/{recipes[title]['id']}/{what}"

    await _put(client, url("Carbonara"), viewer)
    await _put(client, url("Lasagne"), viewer, None)
    await _put(client, url("Lasagne", "rating"), viewer, {"stars": 5})
    await _put(client, f"/api/v1/users/{friend['id']}/follow", viewer)
    await _put(client, url("Green curry"), friend)
    await _put(client, url("Tacos"), stranger)
    return {"author": author, "viewer": viewer, "friend": friend, "recipes": recipes}


async def test_tastes_and_follows_shape_the_list(client: httpx.AsyncClient, scene: dict[str, Any]) -> None:
    titles = await _titles(client, scene["viewer"])
    # Italian first (Gnocchi shares the favorites' tag too); never the viewer's own or already favorited
    # recipes, never a private one; the friend's favorite comes next (the list is diversified: at most two of
    # one cuisine before another gets a place), then what is merely popular.
    assert titles == ["Gnocchi", "Risotto", "Green curry", "Tacos"]
    for excluded in ("Own pizza", "Carbonara", "Lasagne", "Secret ragu"):
        assert excluded not in titles
    assert await _titles(client, scene["viewer"], limit=1) == ["Gnocchi"]


async def test_items_are_recipe_documents_with_field_selection(
    client: httpx.AsyncClient, scene: dict[str, Any]
) -> None:
    resp = await client.get(
        RECOMMENDATIONS, params={"fields": "id,title", "limit": 1}, headers=scene["viewer"]["headers"]
    )
    assert resp.status_code == 200
    assert resp.json() == {"items": [{"id": scene["recipes"]["Gnocchi"]["id"], "title": "Gnocchi"}]}
    assert resp.headers["cache-control"].startswith("private")
    full = await client.get(RECOMMENDATIONS, params={"include": "tags"}, headers=scene["viewer"]["headers"])
    assert full.json()["items"][0]["tags"] == ["pasta"]


async def test_a_cold_start_gets_well_rated_popular_recipes(
    client: httpx.AsyncClient, api: Api, scene: dict[str, Any]
) -> None:
    newcomer = await api.register()
    # Tacos and Green curry have a favorite each; the four favorited/rated Italian dishes are the viewer's.
    # Carbonara: 1 favorite; Lasagne: 1 favorite and a 5-star rating.
    titles = await _titles(client, newcomer)
    assert titles[0] == "Lasagne"
    assert set(titles) == {"Lasagne", "Carbonara", "Tacos", "Green curry"}
    # The author's own recipes stay out of the author's list.
    assert await _titles(client, scene["author"]) == []


async def test_a_recipe_that_goes_private_disappears_even_from_the_cached_list(
    client: httpx.AsyncClient, scene: dict[str, Any], statements: list[str]
) -> None:
    author, viewer, recipes = scene["author"], scene["viewer"], scene["recipes"]
    assert "Risotto" in await _titles(client, viewer)  # computed and cached
    cache = container_of(client).cache
    assert await cache.store.get(recommend_key(viewer["id"])) is not None
    resp = await client.patch(
        f"/api/v1/recipes/{recipes['Risotto']['id']}", json={"is_public": False}, headers=author["headers"]
    )
    assert resp.status_code == 200
    statements.clear()
    assert await _titles(client, viewer) == ["Gnocchi", "Green curry", "Tacos"]
    # Not recomputed: hydration, not the ranking, dropped it (the ranking is the only reader of `follow`).
    assert statements, "the recipe went private: its document had to be read again"
    assert not [s for s in statements if "FROM follow" in s]
    # Deleted: gone as well.
    resp = await client.delete(f"/api/v1/recipes/{recipes['Gnocchi']['id']}", headers=author["headers"])
    assert resp.status_code == 204
    assert await _titles(client, viewer) == ["Green curry", "Tacos"]


async def test_the_list_is_cached_per_user(
    client: httpx.AsyncClient, api: Api, scene: dict[str, Any], statements: list[str]
) -> None:
    viewer = scene["viewer"]
    first = await _titles(client, viewer)
    statements.clear()
    registry = container_of(client).registry

    def hits() -> float:
        return sum(
            registry.get_sample_value("potluck_cache_hits_total", {"family": "recommendations", "tier": tier}) or 0.0
            for tier in ("l1", "l2")
        )

    before = hits()
    assert await _titles(client, viewer) == first
    assert statements == []  # the ids, and every recipe document, from the cache
    assert hits() == before + 1
    # Another user's list is their own, and another user's favorite leaves the viewer's cached list alone...
    friend_list = await _titles(client, scene["friend"])
    assert friend_list != first
    await _put(client, f"/api/v1/recipes/{scene['recipes']['Risotto']['id']}/favorite", scene["friend"])
    before = hits()
    assert await _titles(client, viewer) == first
    assert hits() == before + 1  # the cached ranking (Risotto's own document was refilled: its count changed)
    # ...while the viewer's own favorite, rating or follow clears it after commit: the next list excludes it.
    assert "Gnocchi" in first
    await _put(client, f"/api/v1/recipes/{scene['recipes']['Gnocchi']['id']}/favorite", viewer)
    assert "Gnocchi" not in await _titles(client, viewer)
    assert "Tacos" in await _titles(client, viewer)
    await _put(client, f"/api/v1/recipes/{scene['recipes']['Tacos']['id']}/rating", viewer, {"stars": 2})
    assert "Tacos" not in await _titles(client, viewer)


async def test_sign_in_required(client: httpx.AsyncClient) -> None:
    resp = await client.get(RECOMMENDATIONS)
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"] == "Bearer"
    resp = await client.get(RECOMMENDATIONS, headers={"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"fields": "nope"}])
async def test_bad_parameters(client: httpx.AsyncClient, api: Api, params: dict[str, Any]) -> None:
    user = await api.register()
    resp = await client.get(RECOMMENDATIONS, params=params, headers=user["headers"])
    assert resp.status_code in (400, 422)
    assert resp.headers["content-type"] == "application/problem+json"


async def _cached_version(client: httpx.AsyncClient, user_id: str) -> str | None:
    """The model version the viewer's cached list was ranked with (the loader fails if nothing is cached)."""
    from potluck.cache.families import RECOMMENDATIONS as FAMILY
    from potluck.recommendation.service import _decode

    async def missing() -> Any:
        raise AssertionError("the list was not cached")

    loaded = await container_of(client).cache.get_or_fill(FAMILY, recommend_key(user_id), missing)
    return _decode(loaded.payload)[0]


async def test_a_trained_model_takes_over_at_once_and_never_shows_private_own_or_seen_recipes(
    client: httpx.AsyncClient, scene: dict[str, Any]
) -> None:
    container = container_of(client)
    viewer = scene["viewer"]
    assert await _titles(client, viewer)  # ranked by the formula and cached
    assert await _cached_version(client, viewer["id"]) is None

    report = await container.model_trainer.train()
    assert report.recipes == 7  # the public ones: the private ragu is not even in the artefact
    models = container.recommendations.models
    assert models is not None
    assert await models.refresh(force=True)
    assert models.version == report.version

    titles = await _titles(client, viewer)
    assert titles
    for excluded in ("Own pizza", "Carbonara", "Lasagne", "Secret ragu"):
        assert excluded not in titles
    # The cached list was ranked again with the new model although its TTL had not run out: the generation moved.
    assert await _cached_version(client, viewer["id"]) == report.version
    # Italian, like what the viewer liked, comes first.
    assert titles[0] in ("Gnocchi", "Risotto")


async def test_similar_recipes_are_public_cacheable_and_404_for_a_private_recipe(
    client: httpx.AsyncClient, scene: dict[str, Any]
) -> None:
    recipes = scene["recipes"]
    carbonara = f"/api/v1/recipes/{recipes['Carbonara']['id']}/similar"
    before = await client.get(carbonara)
    assert before.status_code == 200
    assert before.json()["items"] == []  # no model yet

    container = container_of(client)
    await container.model_trainer.train()
    assert container.recommendations.models is not None
    await container.recommendations.models.refresh(force=True)

    resp = await client.get(carbonara, params={"limit": 3})
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"].startswith("public")
    titles = [item["title"] for item in resp.json()["items"]]
    assert len(titles) == 3
    assert "Carbonara" not in titles
    assert "Secret ragu" not in titles
    assert set(titles) <= {"Lasagne", "Gnocchi", "Risotto", "Own pizza"}  # Italian pasta and rice first

    private = await client.get(f"/api/v1/recipes/{recipes['Secret ragu']['id']}/similar")
    assert private.status_code == 404
    assert private.headers["content-type"].startswith("application/problem+json")
    bad = await client.get("/api/v1/recipes/not-a-uuid/similar")
    assert bad.status_code == 422


async def _train(client: httpx.AsyncClient) -> None:
    container = container_of(client)
    await container.model_trainer.train()
    assert container.recommendations.models is not None
    assert await container.recommendations.models.refresh(force=True)


@pytest.mark.parametrize("model", [False, True], ids=["formula", "model"])
async def test_declared_tastes_start_a_newcomer_on_popular_recipes_of_those_tastes(
    client: httpx.AsyncClient, api: Api, scene: dict[str, Any], model: bool
) -> None:
    if model:
        await _train(client)
    author = scene["author"]
    # The author declares Italian: their own Italian recipes and the private ragu still never show.
    await _put(client, f"/api/v1/recipes/{scene['recipes']['Risotto']['id']}/favorite", scene["friend"])
    newcomer = await api.register(tastes={"cuisines": ["Thai"], "tags": ["curry"]})
    assert newcomer["tastes"] == {"cuisines": ["thai"], "tags": ["curry"]}
    titles = await _titles(client, newcomer)
    assert titles[0] == "Green curry"  # the declared cuisine first, then the popular rest
    assert "Secret ragu" not in titles

    patch = await client.patch(
        "/api/v1/users/me", json={"tastes": {"cuisines": ["italian"], "tags": []}}, headers=author["headers"]
    )
    assert patch.status_code == 200, patch.text
    assert patch.json()["tastes"] == {"cuisines": ["italian"], "tags": []}
    own_or_private = {"Carbonara", "Lasagne", "Risotto", "Gnocchi", "Tacos", "Green curry", "Secret ragu"}
    assert not set(await _titles(client, author)) & own_or_private

    # Declaring replaces the cached list at once (it was computed without the tastes above).
    newcomer_two = await api.register()
    assert await _titles(client, newcomer_two)
    await client.patch("/api/v1/users/me", json={"tastes": {"cuisines": ["italian"]}}, headers=newcomer_two["headers"])
    titles = await _titles(client, newcomer_two)
    assert titles[0] in ("Risotto", "Lasagne", "Carbonara", "Gnocchi")
    assert "Secret ragu" not in titles
    assert "Own pizza" in titles


@pytest.mark.parametrize(
    "tastes",
    [
        {"cuisines": [f"c{i}" for i in range(11)]},
        {"tags": [f"t{i}" for i in range(21)]},
        {"cuisines": ["a" * 51]},
        {"cuisines": [""]},
        {"tags": ["bad\u0000tag"]},
        {"tags": ["<script>"]},
        {"tags": "pasta"},
        {"cuisines": [3]},
        {"spices": ["cumin"]},
        [],
    ],
)
async def test_bad_declared_tastes_are_422_problems(client: httpx.AsyncClient, api: Api, tastes: Any) -> None:
    user = await api.register()
    resp = await client.patch("/api/v1/users/me", json={"tastes": tastes}, headers=user["headers"])
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = {"email": "x@example.com", "username": "declares", "password": "correct horse battery", "tastes": tastes}
    resp = await client.post("/api/v1/auth/register", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_declared_tastes_are_cleaned_and_kept(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register(tastes={"cuisines": [" Thai ", "thai", "Middle Eastern"], "tags": ["Gluten-free"]})
    assert user["tastes"] == {"cuisines": ["thai", "middle eastern"], "tags": ["gluten-free"]}
    resp = await client.patch("/api/v1/users/me", json={"bio": "hello"}, headers=user["headers"])
    assert resp.json()["tastes"] == user["tastes"]  # a PATCH without tastes keeps them
    plain = await api.register()
    assert plain["tastes"] == {"cuisines": [], "tags": []}


async def test_a_recipe_that_goes_private_after_training_leaves_similar_and_the_model_lists(
    client: httpx.AsyncClient, api: Api, scene: dict[str, Any]
) -> None:
    """The artefact still holds it (public when trained): serving must drop it anyway, everywhere."""
    await _train(client)
    author, viewer, recipes = scene["author"], scene["viewer"], scene["recipes"]
    carbonara = f"/api/v1/recipes/{recipes['Carbonara']['id']}/similar"
    newcomer = await api.register(tastes={"cuisines": ["italian"]})

    async def everywhere() -> list[set[str]]:
        similar = await client.get(carbonara, params={"limit": 10})
        assert similar.status_code == 200
        return [
            {item["title"] for item in similar.json()["items"]},
            set(await _titles(client, viewer)),
            set(await _titles(client, newcomer)),
        ]

    assert all("Gnocchi" in titles for titles in await everywhere())  # shown, and cached
    resp = await client.patch(
        f"/api/v1/recipes/{recipes['Gnocchi']['id']}", json={"is_public": False}, headers=author["headers"]
    )
    assert resp.status_code == 200
    for titles in await everywhere():
        assert "Gnocchi" not in titles
        assert "Secret ragu" not in titles
