"""The cache properties of shared/design/cache-semantics.md, against real Redis and PostgreSQL.

Two apps in one test stand for two API processes: each has its own first tier and invalidation subscription,
and they share Redis and the database. tests/e2e repeats the cross-process ones with real processes.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any, get_args

import httpx
import pytest
import redis
from starlette.requests import Request

from potluck.cache.entry import decode
from potluck.cache.families import Family
from potluck.cache.keys import recipe_key, user_key
from potluck.config import Settings
from potluck.recipe.dependencies import RecipeServiceDep
from potluck.recipe.fast_path import ROUTE
from potluck.recipe.service import RecipeService
from potluck.stats.service import VIEWS_KEY
from tests.integration.conftest import Api, running_app
from tests.support.app import METRICS_URL, app_of, container_of
from tests.support.eventually import eventually
from tests.support.outbox import drain_until_settled
from tests.support.statements import StatementCounter, loads_one_recipe, raw_cache_value

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with running_app(settings) as a, running_app(settings) as b:
        yield a, b


def _sample(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    value = container_of(client).registry.get_sample_value(name, labels)
    return float(value or 0.0)


async def _setup(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    author = await api.register()
    recipe = await api.create_recipe(author)
    return author, recipe


# 1
async def test_after_patch_no_process_serves_the_old_value(pair: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    a, b = pair
    author, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    for c in (a, b, a, b):
        assert (await c.get(url)).json()["title"] == "Tomato soup"
    assert container_of(b).cache.local.get(recipe_key(recipe["id"])) is not None  # B's first tier holds it
    resp = await a.patch(url, json={"title": "Gazpacho"}, headers=author["headers"])
    assert resp.status_code == 200
    for c in (b, a):
        assert (await c.get(url)).json()["title"] == "Gazpacho"


# 2
async def test_reader_paused_before_fill_cannot_store_the_old_value(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], settings: Settings
) -> None:
    a, b = pair
    author, recipe = await _setup(Api(a))
    key = recipe_key(recipe["id"])
    url = f"/api/v1/recipes/{recipe['id']}"
    assert raw_cache_value(settings, key) is None
    # The write below must commit inside this pause (on a loaded machine a PATCH can take over a second), and the
    # pause stays under lease_ms (3 s): the fill is refused because the write deleted the lease, not by expiry.
    container_of(a).faults.pause_before_fill[key] = 2.5
    slow_read = asyncio.create_task(a.get(url))
    await container_of(a).faults.wait_paused(key)  # A has read version 1 and holds the lease, paused before its fill
    raw = raw_cache_value(settings, key)
    assert raw is not None
    assert raw.startswith(b"L|")
    assert (await b.patch(url, json={"title": "New"}, headers=author["headers"])).status_code == 200
    old = await slow_read
    assert old.json()["version"] == 1  # it read before the write committed: fine to return, not to store
    raw = raw_cache_value(settings, key)
    entry = decode(raw) if raw else None
    assert entry is None or b'"version":2' in (entry.payload or b"")
    assert _sample(a, "potluck_cache_fills_total", family="recipe_detail", outcome="refused") == 1
    for c in (a, b):
        assert (await c.get(url)).json()["title"] == "New"


# 3
async def test_rolled_back_update_changes_no_cache_entry(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], settings: Settings
) -> None:
    from potluck.recipe.schemas import RecipeUpdate

    a, b = pair
    author, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    await b.get(url)
    key = recipe_key(recipe["id"])
    before = raw_cache_value(settings, key)
    assert before is not None
    container = container_of(a)
    sent_before = _sample(a, "potluck_cache_invalidations_total", outcome="sent")

    async def update_then_fail() -> None:
        async with container.database.write_session() as session:
            locked = await container.recipes.lock_for_edit(session, uuid.UUID(recipe["id"]), uuid.UUID(author["id"]))
            await container.recipes.update(session, locked, RecipeUpdate(title="Never"), None)
            raise RuntimeError("abort the transaction")

    with pytest.raises(RuntimeError):
        await update_then_fail()
    assert raw_cache_value(settings, key) == before
    assert container_of(b).cache.local.get(key) is not None
    assert _sample(a, "potluck_cache_invalidations_total", outcome="sent") == sent_before
    assert (await b.get(url)).json()["title"] == "Tomato soup"


# 5
async def test_concurrent_cold_reads_across_processes_load_once(settings: Settings) -> None:
    # A waiter reads through after lease_wait_ms, and any reader whose Redis call takes over timeout_ms (50 ms)
    # reads the database instead; both apps and all 24 readers share this test's one event loop, so on a loaded
    # 2-core machine either can happen. Give both room: the property is about waiting for the one fill, not speed.
    cache = settings.cache.model_copy(update={"lease_wait_ms": 10_000, "timeout_ms": 5_000})
    settings = settings.model_copy(update={"cache": cache})
    async with running_app(settings) as a, running_app(settings) as b:
        await _cold_reads_load_once(a, b)


async def _cold_reads_load_once(a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    _, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    with StatementCounter(a, b, counts=loads_one_recipe) as counter:
        responses = await asyncio.gather(*((a if i % 2 else b).get(url) for i in range(24)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert counter.count == 1


# 6
async def test_a_dead_lease_holder_is_replaced_within_the_lease_ttl(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"lease_ms": 300, "lease_wait_ms": 20})}
    )
    async with running_app(settings) as a:
        _, recipe = await _setup(Api(a))
        key = recipe_key(recipe["id"])
        store = container_of(a).cache.store
        assert await store.acquire_lease(key, b"deadbeefdeadbeef", 300) is None  # a holder that will never fill
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def filled() -> bool:
            resp = await a.get(f"/api/v1/recipes/{recipe['id']}")
            assert resp.status_code == 200
            raw = raw_cache_value(settings, key)
            return raw is not None and decode(raw) is not None

        await eventually(filled, 2.0, interval=0.02)
        filled_at = loop.time() - started
        assert 0.25 <= filled_at <= 0.3 + 0.2


# 7
async def test_hot_key_is_refreshed_before_it_expires(settings: Settings) -> None:
    from potluck.cache.cache import Cache, Loaded

    async with running_app(settings) as a:
        shared = container_of(a).cache
        # The shared tier only (no first tier), on the app's store and metrics; XFetch draws from a seeded rng.
        cache = Cache(shared.store, shared.metrics, shared.settings, report_breaker=False, rng=random.Random(7))
        family = Family("hot_test", ttl_seconds=1, pattern="hot:{id}")
        loads = 0

        async def loader() -> Loaded:
            nonlocal loads
            loads += 1
            await asyncio.sleep(0.05)  # a costly recomputation: XFetch weighs it
            return Loaded(b"payload")

        await cache.get_or_fill(family, "hot:1", loader)
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.5

        async def reader() -> None:
            while loop.time() < end:
                await cache.get_or_fill(family, "hot:1", loader)
                await asyncio.sleep(0.005)

        await asyncio.gather(*(reader() for _ in range(4)))
        misses = _sample(a, "potluck_cache_misses_total", family="hot_test", tier="l2")
        refreshes = _sample(a, "potluck_cache_early_refreshes_total", family="hot_test")
    assert misses == 1  # only the very first read: expiry never caused a miss
    assert refreshes >= 2  # 2.5 s of a 1 s TTL
    assert loads == 1 + refreshes


# 8
@pytest.mark.parametrize("failure", ["paused", "stopped"])
async def test_reads_survive_redis_failure_and_the_breaker_stops_waiting(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], redis_server: Any, failure: str
) -> None:
    a, _ = pair
    _, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    await a.get(url)
    cache = container_of(a).cache
    (redis_server.pause if failure == "paused" else redis_server.kill)()
    try:
        cache.local.flush()  # force the shared tier
        for _ in range(3):
            resp = await a.get(url)
            assert resp.status_code == 200
            assert resp.json()["title"] == "Tomato soup"
        assert cache.breaker.is_open
        errors = _sample(a, "potluck_cache_errors_total", family="recipe_detail", operation="get")
        loop = asyncio.get_running_loop()
        for _ in range(10):
            started = loop.time()
            resp = await a.get(url)
            assert resp.status_code == 200
            assert loop.time() - started < 1.0  # nothing near redis-py's 5 s default
        # No request touched Redis once the breaker was open: no new errors, only bypasses.
        assert _sample(a, "potluck_cache_errors_total", family="recipe_detail", operation="get") == errors
        assert _sample(a, "potluck_cache_bypasses_total", family="recipe_detail") >= 10
    finally:
        (redis_server.resume if failure == "paused" else redis_server.restart)()


# 9
async def test_writes_while_redis_is_down_leave_nothing_stale(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], redis_server: Any
) -> None:
    a, b = pair
    author, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    for c in (a, b, a, b):
        await c.get(url)
    redis_server.pause()  # keeps its data: the old value is still in there
    try:
        resp = await a.patch(url, json={"title": "Written in the dark"}, headers=author["headers"])
        assert resp.status_code == 200
        assert recipe_key(recipe["id"]) in container_of(a).cache.pending
        assert (await a.get(url)).json()["title"] == "Written in the dark"
    finally:
        redis_server.resume()
    cache = container_of(a).cache
    await eventually(lambda: not cache.pending, 2, interval=0.02, message=lambda: f"still pending: {cache.pending}")
    for c in (a, b, a, b):
        assert (await c.get(url)).json()["title"] == "Written in the dark"


# 10
async def test_killed_subscription_flushes_the_first_tier(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], settings: Settings
) -> None:
    a, b = pair
    author, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    for c in (a, b, a, b):
        await c.get(url)
    assert settings.redis.url
    with redis.Redis.from_url(settings.redis.url) as r:
        killed = r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) >= 2
    resp = await a.patch(url, json={"title": "After the gap"}, headers=author["headers"])
    assert resp.status_code == 200
    for c in (b, a):
        assert (await c.get(url)).json()["title"] == "After the gap"


# 12
async def test_etag_is_stable_across_processes_and_restarts(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], settings: Settings
) -> None:
    a, b = pair
    _, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    tags = {(await c.get(url)).headers["etag"] for c in (a, b)}
    async with running_app(settings) as c:
        tags.add((await c.get(url)).headers["etag"])
        not_modified = await c.get(url, headers={"If-None-Match": tags.copy().pop()})
    assert len(tags) == 1
    assert not_modified.status_code == 304
    assert not_modified.content == b""


# 13
async def test_private_recipe_is_never_served_from_cache_to_others(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = pair
    api = Api(a)
    author, other = await api.register(), await api.register()
    secret = await api.create_recipe(author, is_public=False)
    url = f"/api/v1/recipes/{secret['id']}"
    for c in (a, b):
        mine = await c.get(url, headers=author["headers"])
        assert mine.status_code == 200
        assert mine.headers["cache-control"].startswith("private")
    for c in (a, b):
        assert (await c.get(url)).status_code == 404
        assert (await c.get(url, headers=other["headers"])).status_code == 404


# 14
async def test_missing_ids_are_cached_negatively_and_creation_shows_at_once(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from uuid_utils import compat

    a, b = pair
    api = Api(a)
    author = await api.register()
    future_id = compat.uuid7()
    url = f"/api/v1/recipes/{future_id}"
    with StatementCounter(a, b, counts=loads_one_recipe) as counter:
        for c in (a, b, a, b):
            assert (await c.get(url)).status_code == 404
    assert counter.count == 1
    monkeypatch.setattr(compat, "uuid7", lambda: future_id)
    created = await a.post("/api/v1/recipes", json={"title": "Just in time"}, headers=author["headers"])
    monkeypatch.undo()
    assert created.json()["id"] == str(future_id)
    for c in (b, a):
        assert (await c.get(url)).json()["title"] == "Just in time"


# 16
async def test_per_family_counters_are_exact(settings: Settings) -> None:
    async with running_app(settings) as a:
        _, recipe = await _setup(Api(a))
        url = f"/api/v1/recipes/{recipe['id']}"
        for _ in range(3):
            await a.get(url)
        container_of(a).cache.local.flush()
        await a.get(url)
        profile = f"/api/v1/users/{recipe['author']['id']}"
        await a.get(profile)
        await a.get(profile)
        expected = {
            ("potluck_cache_misses_total", "recipe_detail", "l1"): 2,
            ("potluck_cache_hits_total", "recipe_detail", "l1"): 2,
            ("potluck_cache_misses_total", "recipe_detail", "l2"): 1,
            ("potluck_cache_hits_total", "recipe_detail", "l2"): 1,
            ("potluck_cache_misses_total", "user_profile", "l1"): 1,
            ("potluck_cache_misses_total", "user_profile", "l2"): 1,
            ("potluck_cache_hits_total", "user_profile", "l1"): 1,
            ("potluck_cache_hits_total", "user_profile", "l2"): 0,
        }
        got = {k: _sample(a, k[0], family=k[1], tier=k[2]) for k in expected}
        assert got == expected
        assert _sample(a, "potluck_cache_fills_total", family="recipe_detail", outcome="stored") == 1
        metrics_text = (await a.get(METRICS_URL)).text
        assert 'potluck_cache_hits_total{family="recipe_detail",tier="l1"} 2.0' in metrics_text


async def test_every_key_without_a_ttl_is_a_lease_or_a_counter(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], settings: Settings
) -> None:
    """volatile-lru (deploy/redis/cache.conf) evicts only keys with a TTL: every cache entry must have one."""
    a, b = pair
    api = Api(a)
    author, recipe = await _setup(api)
    url = f"/api/v1/recipes/{recipe['id']}"
    await a.get(url)
    await b.get(f"/api/v1/recipes/{uuid.uuid4()}")  # a negative entry
    await b.get(f"/api/v1/users/{author['id']}")
    await a.patch(url, json={"title": "x"}, headers=author["headers"])
    await b.get(url)
    assert settings.redis.url
    with redis.Redis.from_url(settings.redis.url) as r:
        keys = list(r.scan_iter(count=1000))  # a test-side scan, never on a request path
        assert keys
        for key in keys:
            if r.pttl(key) != -1:  # a TTL, or gone since the scan (-2)
                continue
            if r.type(key) != b"string":
                # The coordination data that the tests keep on the same instance: pending view counts.
                assert key == VIEWS_KEY.encode(), key
                continue
            value = r.get(key) or b""
            assert key.startswith(b"gen:") or value.startswith(b"L|"), key


async def test_first_tier_fast_path_answers_like_the_route(pair: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    a, _ = pair
    _, recipe = await _setup(Api(a))
    url = f"/api/v1/recipes/{recipe['id']}"
    routed = await a.get(url, headers=ROUTED)  # a miss: the route fills the first tier
    l1_hits = _sample(a, "potluck_cache_hits_total", family="recipe_detail", tier="l1")
    fast = await a.get(url)
    assert _sample(a, "potluck_cache_hits_total", family="recipe_detail", tier="l1") == l1_hits + 1
    assert fast.content == routed.content
    for header in ("etag", "cache-control", "vary", "content-type"):
        assert fast.headers[header] == routed.headers[header]
    not_modified = await a.get(url, headers={"If-None-Match": fast.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.content == b""


# A header that makes the fast path leave a read to the route (a request with a body) without changing its answer.
ROUTED = {"Content-Length": "0"}


def _without_request_id(resp: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k != "x-request-id"}


class RoutedReads:
    """Counts recipe reads that went through FastAPI's routing (the route's RecipeService dependency ran)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        app = app_of(client)
        dependency = get_args(RecipeServiceDep)[1].dependency
        self.count = 0

        async def counted(request: Request) -> RecipeService:
            self.count += 1
            service: RecipeService = await dependency(request)
            return service

        app.dependency_overrides[dependency] = counted


async def test_fast_path_answers_second_tier_hits_like_the_route(client: httpx.AsyncClient, settings: Settings) -> None:
    api = Api(client)
    author = await api.register()
    other = await api.register()
    public = await api.create_recipe(author, description="A warm soup. " * 150)  # large enough to be gzipped
    private = await api.create_recipe(author, is_public=False)  # small: sent as it is
    await drain_until_settled(container_of(client).relay)  # recipe.created's warming must not race the reads
    routed = RoutedReads(client)
    cache = container_of(client).cache

    async def routed_then_fast(recipe: dict[str, Any], headers: dict[str, str]) -> None:
        """A cold read routed, then a cold read, a second-tier hit and a first-tier hit, all three before routing:
        the same answer."""
        url = f"/api/v1/recipes/{recipe['id']}"
        await cache.invalidate([recipe_key(recipe["id"])])
        before = routed.count
        reference = await client.get(url, headers={**headers, **ROUTED})
        assert reference.status_code == 200
        gzipped = len(reference.content) >= settings.api.gzip_minimum_bytes
        # httpx offers br when the brotli package is installed (it is: the API's Brotli needs it), else gzip.
        expected = {"br", "gzip"} if gzipped else {None}
        assert reference.headers.get("content-encoding") in expected
        assert routed.count == before + 1
        await cache.invalidate([recipe_key(recipe["id"])])
        filled = await client.get(url, headers=headers)  # a miss, loaded and stored by the fast path (hits below)
        assert routed.count == before + 1, "a miss was routed"
        assert filled.content == reference.content
        assert _without_request_id(filled) == _without_request_id(reference)
        l2_hits = _sample(client, "potluck_cache_hits_total", family="recipe_detail", tier="l2")
        cache.local.flush()
        answered = _sample(client, "potluck_http_requests_total", method="GET", route=ROUTE, status="200")
        for tier in ("l2", "l1"):
            fast = await client.get(url, headers=headers)
            assert routed.count == before + 1, f"a {tier} hit was routed"
            assert fast.status_code == 200
            assert fast.content == reference.content
            # Every header the middleware chain adds to the routed answer too (security headers, the content
            # coding and its Vary): the same, but the request id, which is each request's own.
            assert len(fast.headers["x-request-id"]) == 32
            assert _without_request_id(fast) == _without_request_id(reference)
            # No edge configured here: neither the route nor the fast path emits surrogate keys.
            assert "surrogate-key" not in fast.headers
            assert "surrogate-key" not in reference.headers
        assert _sample(client, "potluck_cache_hits_total", family="recipe_detail", tier="l2") == l2_hits + 1
        after = _sample(client, "potluck_http_requests_total", method="GET", route=ROUTE, status="200")
        assert after == answered + 2  # the HTTP metrics count fast answers under the route's template
        mine = await client.get(url, headers={**headers, "X-Request-ID": "trace-me.1"})
        assert routed.count == before + 1
        assert mine.headers["x-request-id"] == "trace-me.1"  # a caller's well-formed id is echoed, as routed
        not_modified = await client.get(url, headers={**headers, "If-None-Match": reference.headers["etag"]})
        assert (not_modified.status_code, not_modified.content) == (304, b"")
        assert routed.count == before + 1
        assert not_modified.headers["cache-control"] == reference.headers["cache-control"]
        assert routed.count == before + 1
        # A client that accepts no coding (wrk, curl): the fast path skips the compression layers and adds what
        # they would have (`Vary: Accept-Encoding` on a body over their minimum): the routed answer's headers.
        identity = {**headers, "Accept-Encoding": "identity"}
        plain = await client.get(url, headers=identity)
        assert routed.count == before + 1
        await cache.invalidate([recipe_key(recipe["id"])])
        routed_plain = await client.get(url, headers={**identity, **ROUTED})
        assert routed.count == before + 2
        assert plain.headers.get("content-encoding") is None
        assert plain.content == routed_plain.content == reference.content
        assert _without_request_id(plain) == _without_request_id(routed_plain)
        assert ("accept-encoding" in plain.headers["vary"].lower()) is gzipped

    await routed_then_fast(public, {})
    await routed_then_fast(public, other["headers"])
    await routed_then_fast(private, author["headers"])
    assert (
        (await client.get(f"/api/v1/recipes/{public['id']}", headers=other["headers"]))
        .headers["cache-control"]
        .startswith("private")
    )

    # Whatever the fast path may not answer, it leaves to the route, which answers it from scratch.
    private_url = f"/api/v1/recipes/{private['id']}"
    for headers, status in (
        ({}, 404),
        (other["headers"], 404),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": other["headers"]["Authorization"] + "x"}, 401),
    ):
        before = routed.count
        resp = await client.get(private_url, headers=headers)
        assert resp.status_code == status, headers
        assert resp.headers["content-type"] == "application/problem+json"  # the error handlers wrote it
        assert routed.count == before + (status == 404)  # a bad token is refused before the service is asked for
    refresh = author["tokens"]["refresh_token"]
    assert (await client.get(private_url, headers={"Authorization": f"Bearer {refresh}"})).status_code == 401


async def test_a_starved_listener_pauses_the_first_tier_without_losing_it_or_coherence(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """CPU saturation starves a process's invalidation listener: its first tier must stop answering (a write's
    message may sit unread) but not be flushed, and answer again once the listener has caught up."""
    a, b = pair
    api = Api(a)
    author = await api.register()
    recipe = await api.create_recipe(author, title="Before")
    bystander = await api.create_recipe(author, title="Unrelated")
    await drain_until_settled(container_of(a).relay)
    url, bystander_url = f"/api/v1/recipes/{recipe['id']}", f"/api/v1/recipes/{bystander['id']}"
    for c in (a, b, a, b):
        await c.get(url)
        await c.get(bystander_url)
    cache_b = container_of(b).cache
    assert cache_b.bus is not None
    assert cache_b.local is not None
    bystander_key = recipe_key(bystander["id"])
    assert cache_b.local.get(bystander_key) is not None
    timeouts = _sample(a, "potluck_cache_invalidation_ack_timeouts_total")

    cache_b.bus.stall_seconds = 1.5  # well under dead_after: slow, not dead
    await asyncio.sleep(cache_b.bus.freshness + 0.1)
    assert cache_b.local.enabled, "a late listener turned the tier off"
    assert cache_b.local.get(bystander_key) is None, "the tier answered without proof it is up to date"
    resp = await a.patch(url, json={"title": "After"}, headers=author["headers"])
    assert resp.status_code == 200
    assert _sample(a, "potluck_cache_invalidation_ack_timeouts_total") == timeouts + 1  # b did not acknowledge
    assert (await b.get(url)).json()["title"] == "After"  # ... and still served nothing old

    # Caught up: the tier answers again, with what it held before (it was paused, not flushed).
    await eventually(lambda: cache_b.local.get(bystander_key) is not None, 10, interval=0.02)
    assert cache_b.local.enabled
    hits = _sample(b, "potluck_cache_hits_total", family="recipe_detail", tier="l1")
    assert (await b.get(url)).json()["title"] == "After"
    assert (await b.get(bystander_url)).json()["title"] == "Unrelated"
    assert _sample(b, "potluck_cache_hits_total", family="recipe_detail", tier="l1") >= hits + 1


async def test_author_profiles_stay_cached_through_edits_that_keep_the_visibility(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """user:{id} counts public recipes: a title edit must not evict it (it did, on every edit), a visibility
    change must, and the count the profile shows stays right either way."""
    api = Api(client)
    author = await api.register()
    recipe = await api.create_recipe(author)
    relay = container_of(client).relay
    await drain_until_settled(relay)
    profile, url = f"/api/v1/users/{author['id']}", f"/api/v1/recipes/{recipe['id']}"
    assert (await client.get(profile)).json()["recipe_count"] == 1
    key = user_key(author["id"])
    filled = raw_cache_value(settings, key)
    assert filled is not None

    assert (await client.patch(url, json={"title": "Renamed"}, headers=author["headers"])).status_code == 200
    await drain_until_settled(relay)  # the outbox's strict repeat of the invalidation too
    assert raw_cache_value(settings, key) == filled

    assert (await client.patch(url, json={"is_public": False}, headers=author["headers"])).status_code == 200
    await drain_until_settled(relay)
    assert raw_cache_value(settings, key) != filled
    assert (await client.get(profile)).json()["recipe_count"] == 0


async def test_the_background_cache_recovers_too(client: httpx.AsyncClient) -> None:
    """The background's own Cache (the relay's handlers, scheduled jobs) has its own breaker and owes the store on
    its own: the process recovers it like the requests' one, else one blip left background work off the cache."""
    background = container_of(client).background.cache
    for _ in range(background.settings.breaker_failures):
        background.breaker.record_failure()
    assert not background.breaker.allow()
    await eventually(lambda: background.breaker.allow(), 5, message="the background cache's breaker stayed open")
