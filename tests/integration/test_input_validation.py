"""Issue 18's input findings, against both backends: tampered cursors (1), control characters (2), strict
coercion on writes (9), `Allow` on 405 (10), Host never reflected and allowed hosts (11), self-ratings (13)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import orjson
import pytest

from potluck.config import ApiSettings, Settings
from tests.integration.conftest import Api, running_app

PROBLEM = "application/problem+json"


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


def _decode(token: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _encode(body: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode("ascii")


async def _search_cursor(client: httpx.AsyncClient, api: Api, sort: str) -> tuple[dict[str, Any], list[Any]]:
    author = await api.register()
    for i in range(3):
        await api.create_recipe(author, title=f"Lentil stew {i}")
    params = {"q": "lentil", "sort": sort, "limit": "1"}
    first = await client.get("/api/v1/search", params=params)
    assert first.status_code == 200, first.text
    token = first.json()["next_cursor"]
    assert token
    return params, _decode(token)


# -------------------------------------------------------------------------------------------- finding 1


@pytest.mark.parametrize(
    ("sort", "index", "value"),
    [
        ("rating", -2, 2**63),  # rating_count past int64: the audit's 500
        ("rating", -2, 2**31),  # past the int4 column
        ("rating", -2, -1),
        ("rating", -3, 1e308),  # an average of 1 to 5 stars
        ("rating", -3, -5),
        ("newest", -2, 2**62),  # microseconds far past the year 9999
        ("newest", -2, -(2**40)),  # before the epoch
        ("newest", -1, "zz" * 16),
        ("relevance", -1, 10**30),
    ],
)
async def test_tampered_search_cursor_is_400(
    client: httpx.AsyncClient, api: Api, sort: str, index: int, value: Any
) -> None:
    params, body = await _search_cursor(client, api, sort)
    body[index] = value
    resp = await client.get("/api/v1/search", params={**params, "cursor": _encode(body)})
    problem = _problem(resp, 400)
    assert problem["param"] == "cursor"


@pytest.mark.parametrize("micros", [2**63, 2**62, -1, 10**20])
@pytest.mark.parametrize(
    "path", ["/api/v1/recipes", "/api/v1/users/me/favorites", "/api/v1/notifications", "/api/v1/users/{me}/followers"]
)
async def test_tampered_list_cursor_is_400(client: httpx.AsyncClient, api: Api, path: str, micros: int) -> None:
    me = await api.register()
    cursor = _encode([micros, uuid.uuid4().hex])
    resp = await client.get(path.format(me=me["id"]), params={"cursor": cursor}, headers=me["headers"])
    _problem(resp, 400)


# -------------------------------------------------------------------------------------------- finding 2

CONTROL = ["\x00", "\x01", "\x1b", "\x7f", "\x0b"]


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Soup{c}x"),
        ("description", "a{c}b"),
        ("cuisine", "thai{c}x"),
        ("steps", ["Boil{c}x"]),
        ("tags", ["a{c}b"]),
        ("ingredients", [{"name": "salt{c}x"}]),
    ],
)
async def test_control_characters_in_a_recipe_are_422_naming_the_field(
    client: httpx.AsyncClient, api: Api, char: str, field: str, value: Any
) -> None:
    author = await api.register()
    filled = orjson.loads(orjson.dumps(value).decode().replace("{c}", orjson.dumps(char).decode()[1:-1]))
    resp = await client.post("/api/v1/recipes", json={"title": "Ok", field: filled}, headers=author["headers"])
    problem = _problem(resp, 422)
    assert problem["errors"][0]["loc"][:2] == ["body", field]
    assert problem["errors"][0]["type"] == "control_character"


async def test_tab_and_newlines_are_still_text(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author, description="line one\r\nline two\n\tindented")
    assert recipe["description"] == "line one\r\nline two\n\tindented"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/recipes", {"cuisine": "\x00"}),
        ("/api/v1/recipes", {"tag": "a\x00"}),
        ("/api/v1/recipes", {"fields": "id\x00"}),
        ("/api/v1/search", {"q": "a\x00"}),
        ("/api/v1/search", {"q": "soup", "ingredient": "a\x00"}),
        ("/api/v1/search", {"q": "soup", "exclude_ingredient": "\x01"}),
        ("/api/v1/search", {"q": "soup", "cuisine": "\x00"}),
        ("/api/v1/search", {"q": "soup", "tag": "\x1f"}),
    ],
)
async def test_control_characters_in_query_parameters_are_422(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    problem = _problem(await client.get(path, params=params), 422)
    offending = next(name for name, value in params.items() if any(ord(c) < 32 for c in value))
    assert problem["errors"][0]["loc"][:2] == ["query", offending]


async def test_control_characters_in_credentials_and_profile_are_422(client: httpx.AsyncClient, api: Api) -> None:
    token = await client.post("/api/v1/auth/token", data={"username": "a\x00", "password": "whatever-it-is"})
    assert _problem(token, 422)["errors"][0]["loc"] == ["body", "username"]
    token = await client.post("/api/v1/auth/token", data={"username": "someone", "password": "pass\x00word"})
    assert _problem(token, 422)["errors"][0]["loc"] == ["body", "password"]
    register = await client.post(
        "/api/v1/auth/register",
        json={"email": "n@example.com", "username": "nul_user", "password": "long enough pw", "display_name": "a\x00"},
    )
    assert _problem(register, 422)["errors"][0]["loc"] == ["body", "display_name"]
    me = await api.register()
    patch = await client.patch("/api/v1/users/me", json={"bio": "hi\x00"}, headers=me["headers"])
    assert _problem(patch, 422)["errors"][0]["loc"] == ["body", "bio"]


# -------------------------------------------------------------------------------------------- finding 9


@pytest.mark.parametrize(
    "overrides",
    [
        {"servings": True},
        {"prep_minutes": False},
        {"servings": "4"},
        {"servings": 2.5},
        {"is_public": "false"},
        {"is_public": 0},
        {"nutrition": {"sodium_mg": False}},
        {"nutrition": {"calories": "100"}},
        {"ingredients": [{"name": "salt", "quantity": True}]},
    ],
)
async def test_writes_do_not_coerce_types(client: httpx.AsyncClient, api: Api, overrides: dict[str, Any]) -> None:
    author = await api.register()
    resp = await client.post("/api/v1/recipes", json={"title": "Ok", **overrides}, headers=author["headers"])
    problem = _problem(resp, 422)
    assert problem["errors"][0]["loc"][:2] == ["body", next(iter(overrides))]


async def test_a_rating_must_be_an_integer_not_a_bool(client: httpx.AsyncClient, api: Api) -> None:
    author, fan = await api.register(), await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}/rating"
    _problem(await client.put(url, json={"stars": True}, headers=fan["headers"]), 422)
    _problem(await client.put(url, json={"stars": "4"}, headers=fan["headers"]), 422)
    _problem(await client.put(url, json={"stars": 4.5}, headers=fan["headers"]), 422)
    # JSON does not tell 4.0 from 4, and neither does JSON Schema's "integer": both are four stars.
    assert (await client.put(url, json={"stars": 4.0}, headers=fan["headers"])).status_code == 200
    assert (await client.put(url, json={"stars": 4}, headers=fan["headers"])).status_code == 200


async def test_an_integer_amount_is_still_a_number(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author, nutrition={"calories": 100, "fat_g": 2.5})
    assert recipe["nutrition"]["calories"] == 100
    assert recipe["is_public"] is True


# -------------------------------------------------------------------------------------------- finding 10


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("OPTIONS", "/api/v1/recipes", {"GET", "POST"}),
        ("DELETE", "/api/v1/recipes", {"GET", "POST"}),
        ("POST", "/api/v1/recipes/{id}", {"GET", "PATCH", "DELETE"}),
        ("POST", "/api/v1/recipes/{id}/rating", {"PUT", "DELETE"}),
        ("GET", "/api/v1/users/me", {"DELETE", "GET", "PATCH"}),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, expected: set[str]
) -> None:
    resp = await client.request(method, path.format(id=uuid.uuid4()))
    if method == "GET":  # GET /users/me exists: ask a method it lacks instead
        resp = await client.request("PUT", path)
    _problem(resp, 405)
    assert {m.strip() for m in resp.headers["allow"].split(",")} == expected


# -------------------------------------------------------------------------------------------- finding 11


async def test_host_is_never_reflected_in_location_or_link(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    evil = {**author["headers"], "Host": "evil.example"}
    created = await client.post("/api/v1/recipes", json={"title": "Soup"}, headers=evil)
    assert created.status_code == 201, created.text
    assert "evil" not in created.headers["location"]
    assert created.headers["location"] == f"/api/v1/recipes/{created.json()['id']}"
    await client.post("/api/v1/recipes", json={"title": "Stew"}, headers=author["headers"])
    listed = await client.get("/api/v1/recipes", params={"limit": 1}, headers={"Host": "evil.example"})
    assert listed.status_code == 200
    assert "evil" not in listed.headers["link"]
    assert listed.headers["link"].startswith("</api/v1/recipes?")


async def test_public_base_url_and_allowed_hosts(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "api": ApiSettings(
                public_base_url="https://api.potluck.example", allowed_hosts=["potluck.test", "*.potluck.example"]
            )
        }
    )
    async with running_app(configured) as client:
        api = Api(client)
        author = await api.register()
        created = await client.post("/api/v1/recipes", json={"title": "Soup"}, headers=author["headers"])
        assert created.headers["location"] == f"https://api.potluck.example/api/v1/recipes/{created.json()['id']}"
        await client.post("/api/v1/recipes", json={"title": "Stew"}, headers=author["headers"])
        listed = await client.get("/api/v1/recipes", params={"limit": 1}, headers={"Host": "eu.potluck.example"})
        assert listed.status_code == 200
        assert listed.headers["link"].startswith("<https://api.potluck.example/api/v1/recipes?")
        refused = await client.get("/api/v1/recipes", headers={"Host": "evil.example"})
        _problem(refused, 400)
        # The probes answer whatever address an orchestrator uses.
        assert (await client.get("/healthz", headers={"Host": "10.0.0.7:8000"})).status_code == 200


# -------------------------------------------------------------------------------------------- finding 13


async def test_authors_cannot_rate_their_own_recipes(client: httpx.AsyncClient, api: Api) -> None:
    author, fan = await api.register(), await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}/rating"
    problem = _problem(await client.put(url, json={"stars": 5}, headers=author["headers"]), 403)
    assert problem["reason"] == "own-recipe"
    assert (await client.put(url, json={"stars": 2}, headers=fan["headers"])).status_code == 200
    body = (await client.get(f"/api/v1/recipes/{recipe['id']}")).json()
    assert (body["rating"], body["rating_count"]) == (2.0, 1)
