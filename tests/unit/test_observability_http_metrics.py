"""HttpMetricsMiddleware: route templates (never raw paths) as labels, statuses, the histogram, exclusions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from potluck.observability.http_metrics import DURATION_BUCKETS, UNMATCHED, HttpMetricsMiddleware


def _app(registry: CollectorRegistry) -> FastAPI:
    recipes = APIRouter(prefix="/recipes")

    @recipes.get("/{recipe_id}")
    async def get_recipe(recipe_id: str) -> dict[str, str]:
        if recipe_id == "missing":
            raise HTTPException(404)
        return {"id": recipe_id}

    @recipes.post("/{recipe_id}/ratings", status_code=201)
    async def rate(recipe_id: str) -> dict[str, str]:
        return {"id": recipe_id}

    users = APIRouter(prefix="/users/{user_id}")

    @users.get("/followers")
    async def followers(user_id: str) -> list[str]:
        return []

    api = APIRouter(prefix="/api/v1")
    api.include_router(recipes)
    api.include_router(users)
    app = FastAPI()
    app.include_router(api)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["n"])

    app.mount("/legacy", Starlette(routes=[Route("/items/{n}", item)]))
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def http(registry: CollectorRegistry) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(registry), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def count(registry: CollectorRegistry, method: str, route: str, status: str) -> float:
    value = registry.get_sample_value(
        "potluck_http_requests_total", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


def label_values(registry: CollectorRegistry, label: str) -> set[str]:
    return {
        sample.labels[label]
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "potluck_http_requests_total"
    }


async def test_routes_are_labelled_by_template_with_every_prefix(
    http: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for recipe_id in ("a1", "b2", "c3"):
        assert (await http.get(f"/api/v1/recipes/{recipe_id}")).status_code == 200
    assert (await http.post("/api/v1/recipes/a1/ratings")).status_code == 201
    assert (await http.get("/api/v1/users/u42/followers")).status_code == 200
    assert (await http.get("/legacy/items/7")).status_code == 200
    assert (await http.get("/healthz")).status_code == 200

    assert count(registry, "GET", "/api/v1/recipes/{recipe_id}", "200") == 3
    assert count(registry, "POST", "/api/v1/recipes/{recipe_id}/ratings", "201") == 1
    assert count(registry, "GET", "/api/v1/users/{user_id}/followers", "200") == 1
    assert count(registry, "GET", "/legacy/items/{n}", "200") == 1
    assert count(registry, "GET", "/healthz", "200") == 1
    # No raw id ever becomes a label value.
    assert not any(raw in route for route in label_values(registry, "route") for raw in ("a1", "b2", "u42", "/7"))


async def test_unmatched_paths_share_one_label(http: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    for path in ("/nope", "/wp-admin/setup.php", "/api/v1/recipes/a1/ratings/x/y"):
        assert (await http.get(path)).status_code == 404
    assert count(registry, "GET", UNMATCHED, "404") == 3
    assert label_values(registry, "route") == {UNMATCHED}


async def test_error_statuses_of_matched_routes(http: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    assert (await http.get("/api/v1/recipes/missing")).status_code == 404
    assert (await http.delete("/api/v1/recipes/a1")).status_code == 405
    assert (await http.get("/boom")).status_code == 500
    assert count(registry, "GET", "/api/v1/recipes/{recipe_id}", "404") == 1
    assert count(registry, "DELETE", "/api/v1/recipes/{recipe_id}", "405") == 1
    # The unhandled exception escapes the middleware: it is counted as the 500 the server answers.
    assert count(registry, "GET", "/boom", "500") == 1
    assert registry.get_sample_value("potluck_http_requests_in_flight") == 0


async def test_unknown_methods_do_not_mint_labels(http: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    await http.request("BREW", "/healthz")
    assert label_values(registry, "method") == {"_OTHER"}


async def test_metrics_endpoint_is_not_measured(http: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    assert (await http.get("/metrics")).status_code == 200
    assert label_values(registry, "route") == set()


async def test_duration_histogram_buckets_and_count(http: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    await http.get("/healthz")
    await http.get("/healthz")
    labels = {"method": "GET", "route": "/healthz"}
    assert registry.get_sample_value("potluck_http_request_duration_seconds_count", labels) == 2
    for edge in (0.005, 0.1, 0.5, 1.0, 2.5):
        assert edge in DURATION_BUCKETS
        assert registry.get_sample_value("potluck_http_request_duration_seconds_bucket", {**labels, "le": str(edge)})
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)


async def test_in_flight_gauge_counts_requests_being_handled() -> None:
    registry = CollectorRegistry()
    seen: list[float | None] = []

    async def probe(request: Request) -> PlainTextResponse:
        seen.append(registry.get_sample_value("potluck_http_requests_in_flight"))
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/probe", probe)])
    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        await client.get("/probe")
    assert seen == [1.0]
    assert registry.get_sample_value("potluck_http_requests_in_flight") == 0


async def test_registry_resolved_lazily_and_rebound_when_it_changes() -> None:
    """The app's registry is made in its lifespan, after the middleware stack: a callable resolves it."""
    current = {"registry": CollectorRegistry()}
    app = Starlette(routes=[Route("/x", lambda request: PlainTextResponse("x"))])
    app.add_middleware(HttpMetricsMiddleware, registry=lambda: current["registry"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        await client.get("/x")
        first = current["registry"]
        current["registry"] = CollectorRegistry()  # a new lifespan, a new container
        await client.get("/x")
        await client.get("/x")
    labels = {"method": "GET", "route": "/x", "status": "200"}
    assert first.get_sample_value("potluck_http_requests_total", labels) == 1
    assert current["registry"].get_sample_value("potluck_http_requests_total", labels) == 2


async def test_root_path_is_not_part_of_the_template() -> None:
    registry = CollectorRegistry()
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_middleware(HttpMetricsMiddleware, registry=registry)
    # Served under /potluck by the server (uvicorn --root-path): the root path is in scope, and in the path.
    transport = httpx.ASGITransport(app=app, root_path="/potluck")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/potluck/items/5")).status_code == 200
    assert count(registry, "GET", "/items/{item_id}", "200") == 1
