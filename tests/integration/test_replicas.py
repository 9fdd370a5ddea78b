"""Read replicas against a real primary and two streaming replicas: routing, lag, read-your-writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from potluck.config import DatabaseSettings, Settings
from tests.harness import PgCluster
from tests.integration.conftest import Api, running_app
from tests.support.app import METRICS_URL, AppClient, app_of, container_of
from tests.support.eventually import eventually

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def replica_settings(settings: Settings, pg_cluster: PgCluster) -> Settings:
    """The test's database on the primary, and the same database on both replicas (CREATE DATABASE replicates)."""
    url = make_url(settings.database_url)
    replicas = [
        url.set(port=pg_cluster.replica_ports[i]).render_as_string(hide_password=False)
        for i in range(len(pg_cluster.replica_ports))
    ]
    pg_cluster.wait_replicas_caught_up()
    database = DatabaseSettings(
        url=settings.database_url,
        replica_urls=replicas,
        pool_size=5,
        max_overflow=5,
        lag_check_interval_seconds=0.1,
    )
    return settings.model_copy(update={"database": database})


@pytest.fixture
async def app_client(replica_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(replica_settings) as client:
        yield client


def _db(client: httpx.AsyncClient) -> Any:
    return container_of(client).database


def _queries(client: httpx.AsyncClient) -> dict[str, float]:
    counts: dict[str, float] = {}
    for metric in _db(client).queries.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["node"]] = sample.value
    return counts


def _healthy(client: httpx.AsyncClient, name: str) -> bool:
    return next(r.healthy for r in _db(client).replica_states if r.name == name)


async def _replica_read(client: httpx.AsyncClient) -> int:
    """A read that queries a replica on every request: a list page with `include=` is never served from the list
    cache (its ids are read each time; its documents come from the recipe cache)."""
    return (await client.get("/api/v1/recipes", params={"include": "tags"})).status_code


async def test_reads_spread_over_replicas_and_writes_stay_on_the_primary(
    app_client: httpx.AsyncClient, pg_cluster: PgCluster
) -> None:
    api = Api(app_client)
    author = await api.register()
    for i in range(3):
        await api.create_recipe(author, title=f"R{i}")
    writes_on_replicas: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes_on_replicas.append(statement)

    for engine in _db(app_client).replicas:
        event.listen(engine.sync_engine, "before_cursor_execute", spy)
    pg_cluster.wait_replicas_caught_up()
    app_client.cookies.clear()  # no consistency token: any healthy replica may answer
    before = _queries(app_client)
    for _ in range(40):
        assert await _replica_read(app_client) == 200
    after = _queries(app_client)
    names = [r.name for r in _db(app_client).replica_states]
    served = [after.get(n, 0) - before.get(n, 0) for n in names]
    assert sum(served) >= 40
    assert min(served) >= 0.4 * max(served)  # round-robin: even
    # Writes go to the primary only.
    await api.create_recipe(author, title="one more")
    await app_client.patch("/api/v1/users/me", json={"bio": "x"}, headers=author["headers"])
    assert writes_on_replicas == []


async def test_paused_replica_leaves_the_rotation_and_returns(
    app_client: httpx.AsyncClient, pg_cluster: PgCluster
) -> None:
    api = Api(app_client)
    author = await api.register()
    name = _db(app_client).replica_states[0].name
    await eventually(lambda: _healthy(app_client, name), 15)
    pg_cluster.pause_replay(0)
    try:
        await api.create_recipe(author)  # WAL the paused replica will not replay
        loop = asyncio.get_running_loop()
        started = loop.time()
        await eventually(lambda: not _healthy(app_client, name), 10)
        took = loop.time() - started
        assert took < 5  # "within a few seconds", with room for a loaded 2-core machine
        metrics = (await app_client.get(METRICS_URL)).text
        assert f'potluck_db_replica_healthy{{replica="{name}"}} 0.0' in metrics
        assert "potluck_db_replication_lag_seconds" in metrics
        app_client.cookies.clear()
        # Statements on the paused replica other than the monitor's own lag probe (which keeps asking it).
        served: list[str] = []

        def spy(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if "pg_last_wal_replay_lsn" not in statement:
                served.append(statement)

        engine = next(r.engine for r in _db(app_client).replica_states if r.name == name).sync_engine
        event.listen(engine, "before_cursor_execute", spy)
        try:
            for _ in range(10):
                assert await _replica_read(app_client) == 200
        finally:
            event.remove(engine, "before_cursor_execute", spy)
        assert served == []  # no reads sent to it
    finally:
        pg_cluster.resume_replay(0)
    await eventually(lambda: _healthy(app_client, name), 15)


async def test_stopping_a_replica_fails_no_request(app_client: httpx.AsyncClient, pg_cluster: PgCluster) -> None:
    api = Api(app_client)
    author = await api.register()
    await api.create_recipe(author)
    app_client.cookies.clear()
    statuses: list[int] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            statuses.append(await _replica_read(app_client))

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    await asyncio.sleep(0.2)
    await asyncio.to_thread(pg_cluster.stop_replica, 1, "immediate")
    try:
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*readers)
        assert statuses
        assert set(statuses) == {200}
        assert not _db(app_client).replica_states[1].healthy
    finally:
        stop.set()
        await asyncio.to_thread(pg_cluster.start_replica, 1)


async def test_a_writer_reads_its_write_while_every_replica_is_paused(
    app_client: httpx.AsyncClient, replica_settings: Settings, pg_cluster: PgCluster
) -> None:
    api = Api(app_client)
    author = await api.register()
    pg_cluster.wait_replicas_caught_up()
    for i in range(len(pg_cluster.replica_ports)):
        pg_cluster.pause_replay(i)
    try:
        # The monitor would pull paused replicas out; pretend they are healthy but behind, the hard case.
        db = _db(app_client)
        await db.monitor.stop()
        for state in db.replica_states:
            state.healthy = True
        created = await app_client.post("/api/v1/recipes", json={"title": "Mine"}, headers=author["headers"])
        token = created.headers["x-potluck-consistency"]
        assert "potluck_lsn" in created.headers["set-cookie"]
        # A page with `include=` reads its ids from a replica on every request (never from the list cache, which
        # is filled from the primary): the consistency token decides which replica may answer.
        page = {"author": author["id"], "include": "tags"}
        mine = await app_client.get("/api/v1/recipes", params=page)  # cookie sent back
        assert [r["title"] for r in mine.json()["items"]] == ["Mine"]
        header_only = await app_client.get("/api/v1/recipes", params=page, headers={"X-Potluck-Consistency": token})
        assert [r["title"] for r in header_only.json()["items"]] == ["Mine"]
        # Without the token a replica answers, and it has not replayed the write yet.
        async with AppClient(app_of(app_client)) as stranger:
            before = sum(v for k, v in _queries(app_client).items() if k != "primary")
            theirs = await stranger.get("/api/v1/recipes", params=page)
            assert sum(v for k, v in _queries(app_client).items() if k != "primary") > before
        assert theirs.json()["items"] == []
    finally:
        for i in range(len(pg_cluster.replica_ports)):
            pg_cluster.resume_replay(i)
