"""The worker for real: `potluck serve`, `potluck worker` and `potluck beat` as processes, on real PostgreSQL and
two real Redis instances (cache, and coordination: the broker). SIGKILLing the worker loses no event."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from tests.e2e.test_cache_processes import ApiProcess, _free_port
from tests.harness import PgCluster, RedisServer


class Process:
    """A CLI command in its own process group (the worker's pool children die with it)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "potluck.cli.main", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, the whole group: no shutdown handler runs, nothing is acknowledged."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


def migrated_database(pg_cluster: PgCluster, prefix: str) -> str:
    """A new, migrated database on the harness's primary; its URL."""
    base = make_url(pg_cluster.dsn("primary"))
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = base.set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        conn = await asyncpg.connect(host=base.host, port=base.port, user=base.username, database="postgres")
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        engine = create_engine(url, DatabaseSettings())
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(create())
    return url


def stack_env(url: str, cache: RedisServer, coord: RedisServer, logs: Path) -> dict[str, str]:
    """What an API process, the worker and beat of an e2e stack share: the stores, fast auth, a quick relay."""
    return {
        **os.environ,
        "POTLUCK_DATABASE__URL": url,
        "POTLUCK_REDIS__URL": cache.url,
        "POTLUCK_REDIS__COORD_URL": coord.url,
        "POTLUCK_AUTH__SECRET_KEY": "e2e-secret-key-long-enough-for-hs256-signing",
        "POTLUCK_AUTH__ARGON2_TIME_COST": "1",
        "POTLUCK_AUTH__ARGON2_MEMORY_KIB": "1024",
        "POTLUCK_AUTH__ARGON2_PARALLELISM": "1",
        "POTLUCK_DATA_DIR": str(logs / "data"),
        "POTLUCK_WORKER__RELAY_INTERVAL_SECONDS": "0.3",
    }


@pytest.fixture(scope="module")
def stack(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = migrated_database(pg_cluster, "e2e_worker")
    logs = tmp_path_factory.mktemp("e2e-worker")
    metrics_port = _free_port()
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


def _logs(stack: dict[str, Any]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(stack["logs"].glob("*.log")))


async def _query(stack: dict[str, Any], sql: str, *args: Any) -> Any:
    url = make_url(stack["db"])
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _eventually(stack: dict[str, Any], check: Callable[[], Any], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {timeout}s\n{_logs(stack)}")
        await asyncio.sleep(0.1)


async def _user(client: httpx.AsyncClient) -> dict[str, Any]:
    name = f"u{uuid.uuid4().hex[:10]}"
    body = {"email": f"{name}@example.com", "username": name, "password": "long enough"}
    user: dict[str, Any] = (await client.post("/api/v1/auth/register", json=body)).json()
    token = (await client.post("/api/v1/auth/token", data={"username": name, "password": "long enough"})).json()
    user["headers"] = {"Authorization": f"Bearer {token['access_token']}"}
    return user


async def test_sigkilled_worker_loses_no_event(stack: dict[str, Any]) -> None:
    worker: Process = stack["worker"]
    async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
        author = await _user(client)
        fans = [await _user(client) for _ in range(3)]
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

        worker.start()  # and killed again as soon as it has started delivering
        await _eventually(stack, lambda: _above(recipe_notifications, 0))
        worker.kill()
        await create(5, "b")
        worker.start()

        async def settled() -> bool:
            left = await _query(stack, "SELECT count(*) FROM outbox_event WHERE status <> 'delivered'")
            return bool(left == 0)

        await _eventually(stack, settled)
        assert await recipe_notifications() == 15 * len(fans)
        per_fan = await _query(
            stack,
            "SELECT array_agg(n) FROM (SELECT count(*) AS n FROM notification "
            "WHERE actor_id = $1 AND kind = 'recipe' GROUP BY user_id) t",
            uuid.UUID(author["id"]),
        )
        assert sorted(per_fan) == [15, 15, 15]


async def _above(count: Callable[[], Any], n: int) -> bool:
    return bool(await count() > n)


async def test_views_reach_the_database_once_through_the_worker(stack: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
        author = await _user(client)
        recipe = (await client.post("/api/v1/recipes", json={"title": "viewed"}, headers=author["headers"])).json()
        url = f"/api/v1/recipes/{recipe['id']}"
        responses = await asyncio.gather(*(client.get(url) for _ in range(60)))
        assert {r.status_code for r in responses} == {200}

        async def views() -> int:
            return int(await _query(stack, "SELECT view_count FROM recipe WHERE id = $1", uuid.UUID(recipe["id"])))

        async def flushed() -> bool:
            return await views() == 60

        await _eventually(stack, flushed, timeout=20)
        await asyncio.sleep(2.5)  # more pushes and flushes run: nothing is applied twice
        assert await views() == 60

        metrics = (await client.get("/metrics")).text
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

    await _eventually(stack, served, timeout=20)
    async with httpx.AsyncClient(timeout=1) as client:
        for port in range(base + 1, base + 3):  # no per-process ports any more
            with pytest.raises(httpx.HTTPError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_a_starting_worker_warms_the_cache_at_once(stack: dict[str, Any]) -> None:
    """The warm job's interval is 300 s here; a worker that starts sends one warm run right away."""

    async def warmed() -> bool:
        log = (stack["logs"] / "worker.log").read_text()
        return re.search(r"Task cache\.warm\[[0-9a-f-]+\] succeeded", log) is not None

    await _eventually(stack, warmed, timeout=30)
