"""Observability against real servers: Redis INFO metrics from a real Redis (evictions, an outage), and the
middlewares, the pool collector and the Redis poller wired into one app the way create_app() wires them,
scraped over HTTP.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.responses import Response

from potluck.cache.redis_store import redis_client
from potluck.observability import (
    DbPoolCollector,
    HttpMetricsMiddleware,
    RedisInfoPoller,
    RequestIdMiddleware,
    configure_logging,
)
from tests.harness import RedisServer
from tests.support.app import METRICS_URL
from tests.support.eventually import eventually


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    with RedisServer(maxmemory="2mb", policy="allkeys-lru") as server:
        yield server


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    """Unlabelled samples of the exposition text, as a scrape would read them."""
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {s.name: s.value for f in families for s in f.samples if not s.labels}


async def test_redis_memory_and_evictions_from_a_real_redis(small_redis: RedisServer) -> None:
    client = redis_client(small_redis.url, 0.5)
    registry = CollectorRegistry()
    poller = RedisInfoPoller(client, registry, timeout=1.0)
    try:
        await poller.poll()
        before = scrape(registry)
        assert before["potluck_redis_up"] == 1
        assert before["potluck_redis_maxmemory_bytes"] == 2 * 1024 * 1024
        assert before["potluck_redis_evicted_keys_total"] == 0
        with redis.Redis.from_url(small_redis.url) as sync:
            pipe = sync.pipeline(transaction=False)
            for i in range(1000):  # ~10 MB into a 2 MB instance
                pipe.set(f"filler:{i}", b"x" * 10_000)
            pipe.execute()
        await poller.poll()
        after = scrape(registry)
        assert after["potluck_redis_evicted_keys_total"] > 0
        assert 0 < after["potluck_redis_used_memory_bytes"] <= 3 * 1024 * 1024
    finally:
        await client.aclose()


async def test_redis_outage_and_recovery(small_redis: RedisServer) -> None:
    client = redis_client(small_redis.url, 0.2)
    registry = CollectorRegistry()
    poller = RedisInfoPoller(client, registry, interval=0.05, timeout=0.5)
    poller.start()
    try:
        await eventually(lambda: scrape(registry).get("potluck_redis_up") == 1, 5, interval=0.02)
        small_redis.kill()
        await eventually(lambda: scrape(registry).get("potluck_redis_up") == 0, 5, interval=0.02)
        assert "potluck_redis_used_memory_bytes" not in scrape(registry)
        small_redis.restart()
        await eventually(lambda: scrape(registry).get("potluck_redis_up") == 1, 5, interval=0.02)
    finally:
        await poller.stop()
        await client.aclose()


async def test_a_paused_redis_does_not_stall_the_scrape(small_redis: RedisServer) -> None:
    """SIGSTOPped Redis: INFO never answers; the poller times out, the scrape answers at once."""
    client = redis_client(small_redis.url, 5.0)  # the client alone would wait 5 s
    registry = CollectorRegistry()
    poller = RedisInfoPoller(client, registry, interval=0.05, timeout=0.2)
    poller.start()
    try:
        await eventually(lambda: scrape(registry).get("potluck_redis_up") == 1, 5, interval=0.02)
        small_redis.pause()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            scrape(registry)
            assert loop.time() - started < 0.1
            await eventually(lambda: scrape(registry).get("potluck_redis_up") == 0, 5, interval=0.02)
        finally:
            small_redis.resume()
    finally:
        await poller.stop()
        await client.aclose()


def _wired_app(redis_url: str, database_path: Path) -> FastAPI:
    """A small app wired like create_app(): the registry is built in the lifespan, resolved lazily."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = CollectorRegistry()
        engine = create_async_engine(f"sqlite+aiosqlite:///{database_path}", pool_size=4)
        client = redis_client(redis_url, 1.0)
        poller = RedisInfoPoller(client, registry)
        DbPoolCollector([("primary", "primary", engine)], registry)
        app.state.registry, app.state.engine = registry, engine
        poller.start()
        try:
            yield
        finally:
            await poller.stop()
            await client.aclose()
            await engine.dispose()

    recipes = APIRouter(prefix="/recipes")

    @recipes.get("/{recipe_id}")
    async def get_recipe(recipe_id: str, request: Request) -> dict[str, str]:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        logging.getLogger("potluck.recipe").info("recipe.read", extra={"recipe_id": recipe_id})
        return {"id": recipe_id}

    api = APIRouter(prefix="/api/v1")
    api.include_router(recipes)
    app = FastAPI(lifespan=lifespan)
    app.include_router(api)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, registry=lambda: app.state.registry)
    return app


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    yield out
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_the_wired_app_scraped_over_http(
    small_redis: RedisServer, tmp_path: Path, log_lines: io.StringIO
) -> None:
    app = _wired_app(small_redis.url, tmp_path / "app.db")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://potluck.test") as http:
            for recipe_id in ("r1", "r2"):
                resp = await http.get(f"/api/v1/recipes/{recipe_id}", headers={"X-Request-ID": f"req-{recipe_id}"})
                assert resp.status_code == 200
                assert resp.headers["X-Request-ID"] == f"req-{recipe_id}"
            assert (await http.get("/nowhere")).status_code == 404
            await eventually(lambda: app.state.registry.get_sample_value("potluck_redis_up") == 1, 5, interval=0.02)
            scraped = (await http.get("/metrics")).text
            scraped_again = (await http.get("/metrics")).text

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(scraped_again)
        for s in f.samples
    }
    route = ("route", "/api/v1/recipes/{recipe_id}")
    assert samples[("potluck_http_requests_total", (("method", "GET"), route, ("status", "200")))] == 2
    assert samples[("potluck_http_requests_total", (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))]
    assert not any("r1" in dict(labels).get("route", "") for _, labels in samples)
    assert "/metrics" not in scraped_again  # the scrape endpoint is not measured
    assert samples[("potluck_redis_up", ())] == 1
    assert samples[("potluck_db_pool_checked_out", (("node", "primary"), ("role", "primary")))] == 0
    assert samples[("potluck_db_pool_size", (("node", "primary"), ("role", "primary")))] == 4
    assert "potluck_http_requests_in_flight 0.0" in scraped

    reads = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    reads = [line for line in reads if line["message"] == "recipe.read"]
    assert [(line["request_id"], line["recipe_id"]) for line in reads] == [("req-r1", "r1"), ("req-r2", "r2")]


async def test_query_time_by_role_counts_every_statement(client: httpx.AsyncClient) -> None:
    """potluck_db_query_duration_seconds{role} observes each statement potluck_db_queries_total counts."""
    from tests.integration.conftest import Api

    api = Api(client)
    recipe = await api.create_recipe(await api.register())
    assert (await client.get(f"/api/v1/recipes/{recipe['id']}")).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families((await client.get(METRICS_URL)).text)}
    counted = sum(s.value for s in families["potluck_db_queries"].samples if s.name.endswith("_total"))
    timed = [s for s in families["potluck_db_query_duration_seconds"].samples if s.name.endswith("_count")]
    assert counted > 0
    assert {s.labels["role"] for s in timed} == {"primary"}  # no replicas configured here
    assert sum(s.value for s in timed) == counted
    total = sum(s.value for s in families["potluck_db_query_duration_seconds"].samples if s.name.endswith("_sum"))
    assert 0 < total < 60
