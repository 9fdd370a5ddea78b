"""Beat's scheduled jobs for real: `potluck beat` sends cache.warm, trending.refresh and search.rollup to a real
`potluck worker`, which fills the real Redis; nothing but those jobs writes the keys checked here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from potluck.cache.entry import decode
from potluck.cache.keys import recipe_key, trending_key
from potluck.search.analytics import rollup_key
from tests.harness import PgCluster, RedisServer
from tests.support.eventually import eventually
from tests.support.stack import ApiProcess, Process, migrated_database, register_user, stack_env, stack_logs


@pytest.fixture(scope="module")
def stack(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = migrated_database(pg_cluster, "e2e_schedule")
    logs = tmp_path_factory.mktemp("e2e-schedule")
    with RedisServer() as cache, RedisServer() as coord:
        env = {
            **stack_env(url, cache, coord, logs),
            "POTLUCK_WORKER__WARM_INTERVAL_SECONDS": "1",
            "POTLUCK_WORKER__TRENDING_INTERVAL_SECONDS": "1",
            "POTLUCK_WORKER__SEARCH_ROLLUP_INTERVAL_SECONDS": "1",
        }
        api = ApiProcess(env, logs / "api.log")
        worker = Process(["worker", "--concurrency", "1"], env, logs / "worker.log")
        beat = Process(["beat"], env, logs / "beat.log")
        try:
            api.wait_ready()
            yield {"api": api, "db": url, "logs": logs, "cache_url": cache.url, "coord_url": coord.url}
        finally:
            for p in (beat, worker):
                p.stop()
            api.stop()


async def test_beat_runs_warm_trending_and_rollup_through_the_worker(stack: dict[str, Any]) -> None:
    r = aioredis.Redis.from_url(stack["cache_url"])
    coord = aioredis.Redis.from_url(stack["coord_url"])  # search counts are data: on the non-evicting instance
    try:
        async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
            author = await register_user(client)
            body = {"title": "Scheduled soup", "ingredients": [{"name": "leek"}], "steps": ["Simmer."]}
            resp = await client.post("/api/v1/recipes", json=body, headers=author["headers"])
            assert resp.status_code == 201, resp.text
            recipe_id = resp.json()["id"]
            fan = await register_user(client)
            resp = await client.put(f"/api/v1/recipes/{recipe_id}/favorite", headers=fan["headers"])
            assert resp.status_code == 204  # fresh attention: it trends
            for _ in range(3):
                assert (await client.get("/api/v1/search", params={"q": "leek"})).status_code == 200

            async def rolled_up() -> bool:
                return bool(await coord.zscore(rollup_key(24), "leek") == 3)

            await eventually(rolled_up, 45, interval=0.1, message=lambda: stack_logs(stack["logs"]))
            body = (await client.get("/api/v1/search/trending")).json()
            assert body["items"][0] == {"query": "leek", "count": 3}

            # A cold cache: the recipe's entry and the trending lists gone; only the scheduled jobs bring them back
            # (nobody reads them meanwhile).
            async def cold_then_back() -> bool:
                raw = await r.get(recipe_key(recipe_id))
                entry = decode(raw) if raw is not None else None
                lists = [await r.get(trending_key(p)) for p in ("day", "week", "month")]
                return entry is not None and entry.payload is not None and all(v is not None for v in lists)

            # The created event's warm, or the first scheduled run.
            await eventually(cold_then_back, 45, interval=0.1, message=lambda: stack_logs(stack["logs"]))
            await r.delete(recipe_key(recipe_id), *(trending_key(p) for p in ("day", "week", "month")))
            await eventually(cold_then_back, 45, interval=0.1, message=lambda: stack_logs(stack["logs"]))
            trending = orjson_ids(await r.get(trending_key("day")))
            assert recipe_id.replace("-", "") in trending
    finally:
        await r.aclose()
        await coord.aclose()


def orjson_ids(raw: bytes | None) -> list[str]:
    import orjson

    entry = decode(raw) if raw is not None else None
    assert entry is not None
    assert entry.payload is not None
    ids: list[str] = orjson.loads(entry.payload)
    return ids
