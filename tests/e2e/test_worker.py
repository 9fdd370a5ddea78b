"""The worker for real: `potluck serve`, `potluck worker` and `potluck beat` as processes, on real PostgreSQL and
two real Redis instances (cache, and coordination: the broker). SIGKILLing the worker loses no event."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.harness import PgCluster, RedisServer
from tests.support.eventually import eventually
from tests.support.stack import ApiProcess, Process, free_port, migrated_database, register_user, stack_env, stack_logs


@pytest.fixture(scope="module")
def stack(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = migrated_database(pg_cluster, "e2e_worker")
    logs = tmp_path_factory.mktemp("e2e-worker")
    metrics_port = free_port()
    with RedisServer() as cache, RedisServer() as coord:
        env = {
            **stack_env(url, cache, coord, logs),
            "POTLUCK_WORKER__METRICS_PORT": str(metrics_port),
            "POTLUCK_EVENTS__CLAIM_SECONDS": "2",
            "POTLUCK_EVENTS__VIEWS_FLUSH_SECONDS": "1",
            "POTLUCK_EVENTS__MONITOR_INTERVAL_SECONDS": "1",
        }
        api = ApiProcess(env, logs / "api.log")
        worker = Process(["worker", "--concurrency", "2"], env, logs / "worker.log")
        beat = Process(["beat"], env, logs / "beat.log")
        try:
            api.wait_ready()
            yield {"api": api, "worker": worker, "beat": beat, "db": url, "logs": logs, "metrics_port": metrics_port}
        finally:
            for p in (beat, worker):
                p.stop()
            api.stop()


async def _query(stack: dict[str, Any], sql: str, *args: Any) -> Any:
    url = make_url(stack["db"])
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_sigkilled_worker_loses_no_event(stack: dict[str, Any]) -> None:
    worker: Process = stack["worker"]
    async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
        author = await register_user(client)
        fans = [await register_user(client) for _ in range(3)]
        for fan in fans:
            assert (await client.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204

        async def recipe_notifications() -> int:
            return int(
                await _query(
                    stack,
                    "SELECT count(*) FROM notification WHERE actor_id = $1 AND kind = 'recipe'",
                    uuid.UUID(author["id"]),
                )
            )

        async def create(n: int, prefix: str) -> None:
            for i in range(n):
                resp = await client.post("/api/v1/recipes", json={"title": f"{prefix}{i}"}, headers=author["headers"])
                assert resp.status_code == 201

        worker.kill()  # between commit and delivery: nothing runs the relay
        await create(10, "a")
        await asyncio.sleep(1.0)
        assert await recipe_notifications() == 0
        pending = await _query(stack, "SELECT count(*) FROM outbox_event WHERE status = 'pending'")
        assert pending >= 10

        worker.start()  # and killed again as soon as it has started delivering (a count above 0)
        await eventually(recipe_notifications, 45, interval=0.1, message=lambda: stack_logs(stack["logs"]))
        worker.kill()
        await create(5, "b")
        worker.start()

        async def settled() -> bool:
            left = await _query(stack, "SELECT count(*) FROM outbox_event WHERE status <> 'delivered'")
            return bool(left == 0)

        await eventually(settled, 45, interval=0.1, message=lambda: stack_logs(stack["logs"]))
        assert await recipe_notifications() == 15 * len(fans)
        per_fan = await _query(
            stack,
            "SELECT array_agg(n) FROM (SELECT count(*) AS n FROM notification "
            "WHERE actor_id = $1 AND kind = 'recipe' GROUP BY user_id) t",
            uuid.UUID(author["id"]),
        )
        assert sorted(per_fan) == [15, 15, 15]


async def test_views_reach_the_database_once_through_the_worker(stack: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
        author = await register_user(client)
        recipe = (await client.post("/api/v1/recipes", json={"title": "viewed"}, headers=author["headers"])).json()
        url = f"/api/v1/recipes/{recipe['id']}"
        responses = await asyncio.gather(*(client.get(url) for _ in range(60)))
        assert {r.status_code for r in responses} == {200}

        async def views() -> int:
            return int(await _query(stack, "SELECT view_count FROM recipe WHERE id = $1", uuid.UUID(recipe["id"])))

        async def flushed() -> bool:
            return await views() == 60

        await eventually(flushed, 20, interval=0.1, message=lambda: stack_logs(stack["logs"]))
        await asyncio.sleep(2.5)  # more pushes and flushes run: nothing is applied twice
        assert await views() == 60

        metrics = (await client.get(stack["api"].metrics_url)).text
        assert "potluck_outbox_backlog" in metrics
        assert 'potluck_queue_depth{queue="potluck"}' in metrics


async def test_worker_pool_serves_its_metrics_on_one_port(stack: dict[str, Any]) -> None:
    """Both pool processes run relay tasks; the main process serves their merged counts on the one port."""
    base = stack["metrics_port"]

    async def served() -> bool:
        async with httpx.AsyncClient(timeout=1) as client:
            try:
                text = (await client.get(f"http://127.0.0.1:{base}/")).text
            except httpx.HTTPError:
                return False
        return 'potluck_task_duration_seconds_count{task="events.relay"}' in text

    await eventually(served, 20, interval=0.1, message=lambda: stack_logs(stack["logs"]))
    async with httpx.AsyncClient(timeout=1) as client:
        for port in range(base + 1, base + 3):  # no per-process ports any more
            with pytest.raises(httpx.HTTPError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_a_starting_worker_warms_the_cache_at_once(stack: dict[str, Any]) -> None:
    """The warm job's interval is 300 s here; a worker that starts sends one warm run right away."""

    async def warmed() -> bool:
        log = (stack["logs"] / "worker.log").read_text()
        return re.search(r"Task cache\.warm\[[0-9a-f-]+\] succeeded", log) is not None

    await eventually(warmed, 30, interval=0.1, message=lambda: stack_logs(stack["logs"]))
