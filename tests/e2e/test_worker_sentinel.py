"""Celery through Sentinel: `potluck serve`, `potluck worker` and `potluck beat` find every Redis master through
three sentinels; after the coordination master (the broker) is SIGKILLed and its replica promoted, beat keeps
sending and the worker keeps consuming: outbox events written after the failover are delivered."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.harness import PgCluster, SentinelSet
from tests.support.eventually import eventually
from tests.support.stack import ApiProcess, Process, migrated_database, register_user, stack_env, stack_logs


@pytest.fixture(scope="module")
def stack(
    pg_cluster: PgCluster, sentinel_set: SentinelSet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    url = migrated_database(pg_cluster, "e2e_sentinel")
    logs = tmp_path_factory.mktemp("e2e-sentinel")
    sentinel_set.flushall()
    env = stack_env(url, sentinel_set.master("cache"), sentinel_set.master("coord"), logs)
    del env["POTLUCK_REDIS__URL"], env["POTLUCK_REDIS__COORD_URL"]  # nothing but the sentinels
    env["POTLUCK_REDIS__SENTINELS"] = json.dumps(sentinel_set.addresses)
    api = ApiProcess(env, logs / "api.log")
    # Under its supervisor, as `potluck cluster up` runs it: kombu can exit on a broker failover under load.
    worker = Process(["worker", "--concurrency", "1"], env, logs / "worker.log", supervised=logs / "worker.pid")
    beat = Process(["beat"], env, logs / "beat.log")
    try:
        api.wait_ready(90)  # a loaded machine imports slowly
        yield {"api": api, "db": url, "logs": logs, "sentinels": sentinel_set, "worker": worker}
    finally:
        for p in (beat, worker):
            p.stop()
        api.stop()
        sentinel_set.restore("coord")


async def _notifications(stack: dict[str, Any], author_id: str) -> int:
    url = make_url(stack["db"])
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        sql = "SELECT count(*) FROM notification WHERE actor_id = $1 AND kind = 'recipe'"
        return int(await conn.fetchval(sql, uuid.UUID(author_id)))
    finally:
        await conn.close()


async def test_the_worker_keeps_consuming_after_a_broker_failover(stack: dict[str, Any]) -> None:
    sentinels: SentinelSet = stack["sentinels"]
    logs = lambda: stack_logs(stack["logs"])  # noqa: E731
    async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
        author = await register_user(client)
        fan = await register_user(client)
        assert (await client.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204

        async def publish(title: str) -> None:
            resp = await client.post("/api/v1/recipes", json={"title": title}, headers=author["headers"])
            assert resp.status_code == 201, resp.text

        await publish("before")
        await eventually(lambda: _notifications(stack, author["id"]), 60, interval=0.2, message=logs)

        started = time.monotonic()
        old = sentinels.kill_master("coord")
        sentinels.wait_failover("coord", old)
        promoted = time.monotonic() - started
        await publish("after")  # its event waits in the outbox: beat must send the relay task to the new master

        async def both_delivered() -> bool:
            return await _notifications(stack, author["id"]) == 2

        await eventually(both_delivered, 60, interval=0.2, message=logs)
        print(
            f"\ncoord failover: new master after {promoted:.2f} s, delivered after {time.monotonic() - started:.2f} s"
        )


async def test_the_worker_keeps_processing_through_a_broker_failover_under_load(stack: dict[str, Any]) -> None:
    """Recipes published without pause while the coordination master is SIGKILLed: every event is delivered, and
    a worker runs at the end (its supervisor restarts it if kombu gave up on the lost broker connection)."""
    sentinels: SentinelSet = stack["sentinels"]
    sentinels.restore("coord")  # the previous test left the role without a replica
    worker: Process = stack["worker"]
    logs = lambda: stack_logs(stack["logs"])  # noqa: E731
    async with httpx.AsyncClient(base_url=stack["api"].url, timeout=10) as client:
        author = await register_user(client)
        fan = await register_user(client)
        assert (await client.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])).status_code == 204
        published = 0

        async def publish_for(seconds: float) -> None:
            nonlocal published
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                resp = await client.post("/api/v1/recipes", json={"title": "load"}, headers=author["headers"])
                if resp.status_code == 201:
                    published += 1
                await asyncio.sleep(0.02)

        await publish_for(2.0)
        old = sentinels.kill_master("coord")
        await asyncio.gather(publish_for(6.0), asyncio.to_thread(sentinels.wait_failover, "coord", old))

        async def all_delivered() -> bool:
            return await _notifications(stack, author["id"]) == published

        await eventually(all_delivered, 120, interval=0.5, message=logs)
    assert worker.proc is not None
    assert worker.proc.poll() is None, "the supervisor exited"
    child = int((stack["logs"] / "worker.pid").read_text())
    os.kill(child, 0)  # a worker runs (raises if not)
    restarts = (stack["logs"] / "worker.log").read_text().count("supervisor of worker: pid")
    print(f"\n{published} recipes published through the failover, all delivered; worker restarts: {restarts}")
