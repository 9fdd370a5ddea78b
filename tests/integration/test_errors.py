from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Api
from tests.support.app import container_of

PROBLEM = "application/problem+json"


def _assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    return body


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"servings": 0}, "servings"),
        ({"prep_minutes": -5}, "prep_minutes"),
        ({"difficulty": "impossible"}, "difficulty"),
        ({"ingredients": [{"name": "salt"}] * 101}, "ingredients"),
        ({"steps": ["x"] * 101}, "steps"),
        ({"tags": ["t"] * 21}, "tags"),
        ({"tags": ["no/slash"]}, "tags"),
        ({"nutrition": {"calories": -1}}, "nutrition"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"ingredients": [{"name": "a", "quantity": "NaN"}]}, "ingredients"),
    ],
)
async def test_recipe_validation_is_422_problem_naming_the_field(
    client: httpx.AsyncClient, api: Api, overrides: dict[str, Any], where: str
) -> None:
    author = await api.register()
    body = {"title": "Ok", **overrides}
    resp = await client.post("/api/v1/recipes", json=body, headers=author["headers"])
    problem = _assert_problem(resp, 422)
    assert where in problem["detail"]
    assert problem["errors"]
    assert "input" not in problem["errors"][0]
    # Nothing was stored.
    assert (await client.get("/api/v1/recipes")).json()["items"] == []


async def test_malformed_json_is_a_4xx_problem(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    resp = await client.post(
        "/api/v1/recipes",
        content=b"{not json",
        headers={**author["headers"], "Content-Type": "application/json"},
    )
    _assert_problem(resp, 422)


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    big = {"title": "Big", "description": "x" * 2_000_000}
    resp = await client.post("/api/v1/recipes", json=big, headers=author["headers"])
    _assert_problem(resp, 413)


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()

    async def chunks() -> Any:
        yield b'{"title": "Big", "description": "'
        for _ in range(300):
            yield b"x" * 10_000
        yield b'"}'

    resp = await client.post(
        "/api/v1/recipes", content=chunks(), headers={**author["headers"], "Content-Type": "application/json"}
    )
    _assert_problem(resp, 413)


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/api/v1/nothing-here"), 404)
    _assert_problem(await client.put("/api/v1/recipes"), 405)


async def test_missing_recipe_is_404_problem(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/api/v1/recipes/0192f0c2-0000-7000-8000-000000000000"), 404)
    assert body["instance"].startswith("/api/v1/recipes/")
    _assert_problem(await client.get("/api/v1/recipes/not-a-uuid"), 422)


async def test_large_json_is_gzipped_small_is_not(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    await api.create_recipe(author, description="long " * 400)
    params = {"include": "ingredients"}
    async with client.stream("GET", "/api/v1/recipes", params=params, headers={"Accept-Encoding": "gzip"}) as big:
        sent = b"".join([chunk async for chunk in big.aiter_raw()])  # the bytes on the wire, not decoded
    assert big.headers["content-encoding"] == "gzip"
    assert int(big.headers["content-length"]) == len(sent)
    plain = await client.get("/api/v1/recipes", params=params, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert json.loads(gzip.decompress(sent)) == plain.json()
    assert len(sent) < len(plain.content)
    small = await client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert small.json() == {"status": "ok"}  # the body is the plain JSON
    assert int(small.headers["content-length"]) == len(small.content)


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/v1/recipes", "/api/v1/recipes/{recipe_id}", "/api/v1/auth/token", "/api/v1/users/me"):
        assert path in spec["paths"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_exhausted_pool_is_503_with_retry_after_not_500(settings: Any) -> None:
    """Every connection busy past the pool timeout: the client is told to retry, nothing is written."""
    from potluck.config import DatabaseSettings
    from tests.integration.conftest import running_app

    db = settings.database.model_dump()
    db.update(pool_size=1, max_overflow=0, pool_timeout_seconds=0.3)
    tight = settings.model_copy(update={"database": DatabaseSettings(**db)})
    async with running_app(tight) as client:
        api = Api(client)
        author = await api.register()
        recipe = await api.create_recipe(author)
        engine = container_of(client).database.primary
        async with engine.connect() as held:  # the pool's only connection
            await held.exec_driver_sql("SELECT 1")
            read = await client.get(f"/api/v1/recipes/{recipe['id']}", params={"fields": "id,title"})
            write = await client.patch(
                f"/api/v1/recipes/{recipe['id']}", json={"title": "Lost?"}, headers=author["headers"]
            )
        for resp in (read, write):
            assert resp.status_code == 503, resp.text
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.headers["retry-after"] == "1"
            assert resp.json()["type"].endswith("/unavailable")
        after = await client.get(f"/api/v1/recipes/{recipe['id']}", headers=author["headers"])
        assert after.status_code == 200
        assert after.json()["title"] == recipe["title"]  # the refused write changed nothing
