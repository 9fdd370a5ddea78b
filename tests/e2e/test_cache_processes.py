"""Cache properties across real API processes (`potluck serve`), sharing real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy.engine import make_url

from potluck.cache.entry import decode
from potluck.cache.keys import recipe_key
from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from tests.harness import PgCluster, RedisServer
from tests.support.stack import ApiProcess


@pytest.fixture(scope="module")
def topology(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh database, a fresh Redis, and two API processes started with different hash seeds."""
    base = make_url(pg_cluster.dsn("primary"))
    name = f"e2e_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(host=base.host, port=base.port, user=base.username, database="postgres")
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        engine = create_engine(base.set(database=name).render_as_string(hide_password=False), DatabaseSettings())
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(create())
    logs = tmp_path_factory.mktemp("e2e-logs")
    with RedisServer() as server:
        env = {
            **os.environ,
            "POTLUCK_DATABASE__URL": base.set(database=name).render_as_string(hide_password=False),
            "POTLUCK_REDIS__URL": server.url,
            "POTLUCK_AUTH__SECRET_KEY": "e2e-secret-key-long-enough-for-hs256-signing",
            "POTLUCK_AUTH__ARGON2_TIME_COST": "1",
            "POTLUCK_AUTH__ARGON2_MEMORY_KIB": "1024",
            "POTLUCK_AUTH__ARGON2_PARALLELISM": "1",
            "POTLUCK_THROTTLE__REGISTER_PER_ADDRESS": "1000000",
            "POTLUCK_CACHE__TEST_HOOKS": "true",
            # Waiters read through after this long; a loaded machine can make a fill slower than the default.
            "POTLUCK_CACHE__LEASE_WAIT_MS": "10000",
            "POTLUCK_DATA_DIR": str(logs / "data"),
        }
        procs = [ApiProcess({**env, "PYTHONHASHSEED": seed}, logs / f"api{seed}.log") for seed in ("1", "4242")]
        try:
            for p in procs:
                p.wait_ready()
            yield {"apis": procs, "redis": server}
        finally:
            for p in procs:
                p.stop()


@pytest.fixture
async def clients(topology: dict[str, Any]) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=topology["apis"][0].url, timeout=10) as a,
        httpx.AsyncClient(base_url=topology["apis"][1].url, timeout=10) as b,
    ):
        yield [a, b]


async def _author_and_recipe(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, Any]]:
    name = f"u{uuid.uuid4().hex[:10]}"
    await client.post(
        "/api/v1/auth/register", json={"email": f"{name}@example.com", "username": name, "password": "long enough pw"}
    )
    token = (await client.post("/api/v1/auth/token", data={"username": name, "password": "long enough pw"})).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    recipe = (await client.post("/api/v1/recipes", json={"title": "v0"}, headers=headers)).json()
    return headers, recipe


async def _metric(client: httpx.AsyncClient, api: ApiProcess, line_prefix: str) -> float:
    text = (await client.get(api.metrics_url)).text  # the process's internal listener
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_prefix))


async def test_no_process_serves_an_old_value_after_a_write(clients: list[httpx.AsyncClient]) -> None:
    a, b = clients
    headers, recipe = await _author_and_recipe(a)
    url = f"/api/v1/recipes/{recipe['id']}"
    for round_ in range(1, 21):
        for c in (a, b, a, b):  # warm both tiers on both processes
            await c.get(url)
        writer, reader = (a, b) if round_ % 2 else (b, a)
        resp = await writer.patch(url, json={"title": f"v{round_}"}, headers=headers)
        assert resp.status_code == 200
        assert (await reader.get(url)).json()["title"] == f"v{round_}"
        assert (await writer.get(url)).json()["title"] == f"v{round_}"


async def test_concurrent_cold_reads_on_two_processes_load_once(
    clients: list[httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    a, b = clients
    api_a, api_b = topology["apis"]
    _, recipe = await _author_and_recipe(a)
    prefix = 'potluck_cache_load_seconds_count{family="recipe_detail"}'
    loads_before = await _metric(a, api_a, prefix) + await _metric(b, api_b, prefix)
    url = f"/api/v1/recipes/{recipe['id']}"
    responses = await asyncio.gather(*((a if i % 2 else b).get(url) for i in range(40)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    loads_after = await _metric(a, api_a, prefix) + await _metric(b, api_b, prefix)
    assert loads_after - loads_before == 1


async def test_paused_reader_in_one_process_cannot_store_stale_after_a_write_in_another(
    clients: list[httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    a, b = clients
    headers, recipe = await _author_and_recipe(a)
    key = recipe_key(recipe["id"])
    url = f"/api/v1/recipes/{recipe['id']}"
    pause = await a.put("/_test/faults/pause-before-fill", json={"key": key, "seconds": 0.6})
    assert pause.status_code == 204
    slow = asyncio.create_task(a.get(url))
    await asyncio.sleep(0.2)
    assert (await b.patch(url, json={"title": "fresh"}, headers=headers)).status_code == 200
    assert (await slow).json()["title"] == "v0"
    with redis.Redis.from_url(topology["redis"].url) as r:
        raw = r.get(key)
    entry = decode(raw) if raw else None
    assert entry is None or b'"title":"fresh"' in (entry.payload or b"")
    for c in (a, b):
        assert (await c.get(url)).json()["title"] == "fresh"


async def test_killed_subscriptions_and_a_write_in_the_gap(
    clients: list[httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    a, b = clients
    headers, recipe = await _author_and_recipe(a)
    url = f"/api/v1/recipes/{recipe['id']}"
    for c in (a, b, a, b):
        await c.get(url)
    with redis.Redis.from_url(topology["redis"].url) as r:
        assert int(r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")) >= 2
    assert (await a.patch(url, json={"title": "in the gap"}, headers=headers)).status_code == 200
    for c in (b, a, b):
        assert (await c.get(url)).json()["title"] == "in the gap"


async def test_etags_agree_across_processes_with_different_hash_seeds(clients: list[httpx.AsyncClient]) -> None:
    a, b = clients
    _, recipe = await _author_and_recipe(a)
    url = f"/api/v1/recipes/{recipe['id']}?fields=id,title"
    tags = [(await c.get(url)).headers["etag"] for c in (a, b)]
    assert tags[0] == tags[1]
    assert (await b.get(url, headers={"If-None-Match": tags[0]})).status_code == 304
