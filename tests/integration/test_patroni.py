"""PostgreSQL under Patroni, and the application following its leader.

One Patroni topology per session (etcd + pg1..pg3, tests.harness.PatroniCluster). The failover test crashes the
leader (SIGKILL of Patroni and of its postmaster) while clients read and write, and restores the node (it
rejoins as a replica) before it ends, so the topology stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from potluck.config import CacheSettings, DatabaseSettings, ObservabilitySettings, RedisSettings, Settings
from potluck.db.engine import Database, create_engine
from potluck.db.migrate import upgrade
from potluck_ops.drills.patroni_faults import postgres_processes
from potluck_ops.postgres import PG
from tests.harness import PatroniCluster
from tests.integration.conftest import Api, _fast_auth, relaxed_throttles, running_app
from tests.support.app import METRICS_PORT, METRICS_URL, AppClient, app_of, container_of
from tests.support.eventually import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("patroni") is None or shutil.which("etcd") is None,
    reason="needs patroni and etcd (apt-get install patroni etcd-server; scripts/install-deps.sh)",
)

WRITES_BACK_WITHIN = 30
TOKEN_READ_WITHIN = 5
# statement_timeout 1.2 s + the client's 1 s margin, and slack for a loaded machine
FROZEN_WITHIN = 5


def _database(client: httpx.AsyncClient) -> Database:
    database: Database = container_of(client).database
    return database


def _rotation(client: httpx.AsyncClient) -> set[str]:
    """The replicas serving reads now (host:port)."""
    return {r.name for r in _database(client).replica_states if r.healthy}


def _address(cluster: PatroniCluster, name: str) -> str:
    return f"127.0.0.1:{cluster.nodes[name].pg_port}"


def test_bring_up_one_leader_two_replicas_and_a_sync_standby(patroni_cluster: PatroniCluster) -> None:
    summary = patroni_cluster.summary()
    roles = sorted(m["role"] for m in summary["members"])
    assert roles == ["leader", "replica", "sync_standby"], summary
    assert summary["leader"] in patroni_cluster.nodes
    assert summary["sync_standby"] in patroni_cluster.nodes
    assert summary["sync_standby"] != summary["leader"]
    assert isinstance(summary["timeline"], int)
    leader_port = next(m["port"] for m in summary["members"] if m["role"] == "leader")
    setting = PG.psql(leader_port, "SHOW synchronous_standby_names", db="potluck")
    assert summary["sync_standby"] in setting
    # What the patroni_no_synchronous_standby alert reads (deploy/prometheus/alerts.yml): one leader, one standby.
    exposed = [httpx.get(f"{url}/metrics", timeout=5).text for url in patroni_cluster.api_urls()]
    assert sum('patroni_primary{scope="recipes"} 1' in text for text in exposed) == 1, exposed
    assert sum('patroni_sync_standby{scope="recipes"} 1' in text for text in exposed) == 1, exposed


@pytest.fixture
async def patroni_app(patroni_cluster: PatroniCluster, tmp_path: Path) -> AsyncIterator[AppClient]:
    engine = create_engine(patroni_cluster.primary_url(), DatabaseSettings())
    await upgrade(engine)
    await engine.dispose()
    settings = Settings(
        data_dir=tmp_path,
        database=DatabaseSettings(
            url=patroni_cluster.primary_url(),
            patroni_urls=patroni_cluster.api_urls(),
            topology_interval_seconds=0.5,
            pool_size=5,
            max_overflow=5,
            connect_timeout_seconds=1.0,
            # Short, so the frozen-primary test freezes the leader for less than Patroni's retry_timeout (3 s).
            statement_timeout_ms=1200,
        ),
        redis=RedisSettings(url=None),
        cache=CacheSettings(test_hooks=True),
        observability=ObservabilitySettings(metrics_port=METRICS_PORT),
        auth=_fast_auth(),
        throttle=relaxed_throttles(),
    )
    async with running_app(settings) as http:
        yield http


async def test_a_frozen_primary_is_a_bounded_503(patroni_app: AppClient, patroni_cluster: PatroniCluster) -> None:
    """A primary that stops answering (no reset, no refusal) must not hold a request: the client-side command
    timeout ends it, as a 503 problem with Retry-After."""
    api = Api(patroni_app)
    author = await api.register()
    leader = patroni_cluster.leader()
    postmaster = patroni_cluster.nodes[leader].postmaster_pid()
    assert postmaster is not None
    frozen = postgres_processes(postmaster)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = await patroni_app.post("/api/v1/recipes", json={"title": "Frozen"}, headers=author["headers"])
        took = time.monotonic() - started
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "1"
    assert took < FROZEN_WITHIN, took
    await asyncio.to_thread(patroni_cluster.wait_ready, 2, 60)
    assert patroni_cluster.leader() == leader, "the freeze made Patroni fail over: freeze for less time"


class Traffic:
    """Readers (no consistency token: replicas) and a writer running until stopped; every answer recorded."""

    def __init__(self, app: AppClient, author: dict[str, Any]) -> None:
        self.app = app
        self.author = author
        self.reads: list[tuple[float, httpx.Response]] = []
        self.writes: list[tuple[float, httpx.Response]] = []
        # When each write began: a write that began before a crash may still finish after it.
        self.write_starts: list[float] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _read(self) -> None:
        async with AppClient(app_of(self.app)) as client:
            while not self._stop.is_set():
                response = await client.get("/api/v1/recipes", params={"author": self.author["id"]})
                self.reads.append((time.monotonic(), response))
                await asyncio.sleep(0.02)

    async def _write(self) -> None:
        async with AppClient(app_of(self.app)) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                response = await client.post(
                    "/api/v1/recipes", json={"title": "During"}, headers=self.author["headers"]
                )
                self.writes.append((time.monotonic(), response))
                self.write_starts.append(began)
                await asyncio.sleep(0.05)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read()) for _ in range(2)]
        self._tasks.append(asyncio.create_task(self._write()))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def all(self) -> list[httpx.Response]:
        return [r for _, r in self.reads + self.writes]


def _assert_only_503_problems(responses: list[httpx.Response]) -> None:
    for response in responses:
        if response.status_code < 300:
            continue
        assert response.status_code == 503, f"{response.request.method} {response.status_code}: {response.text}"
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        assert int(response.headers["retry-after"]) >= 1


async def _old_token_and_retried_if_match(
    app: AppClient, author: dict[str, Any], recipe: dict[str, Any], old_token: str, timeline: int
) -> None:
    """After the promotion: a token from the old timeline reads its write at once; an If-Match retry is safe."""
    # A token from the old timeline: answered at once, and with the write.
    started = time.monotonic()
    read = await app.get(
        "/api/v1/recipes", params={"author": author["id"]}, headers={"X-Potluck-Consistency": old_token}
    )
    assert time.monotonic() - started < TOKEN_READ_WITHIN
    assert read.status_code == 200, read.text
    assert recipe["id"] in [r["id"] for r in read.json()["items"]]
    new = await app.post("/api/v1/recipes", json={"title": "After"}, headers=author["headers"])
    assert new.headers["x-potluck-consistency"].startswith(f"{timeline}:")
    app.cookies.clear()

    # A retried If-Match write is applied once: the retry is refused (412), whatever happened to the first.
    etag = (await app.get(f"/api/v1/recipes/{recipe['id']}")).headers["etag"]
    url = f"/api/v1/recipes/{recipe['id']}"
    first = await app.patch(url, json={"title": "Edited"}, headers={**author["headers"], "If-Match": etag})
    assert first.status_code == 200, first.text
    retry = await app.patch(url, json={"title": "Edited"}, headers={**author["headers"], "If-Match": etag})
    assert retry.status_code == 412, retry.text


async def test_leader_crash_writes_resume_reads_continue_old_leader_rejoins(
    patroni_app: AppClient, patroni_cluster: PatroniCluster
) -> None:
    app = patroni_app
    database = _database(app)
    api = Api(app)
    before = patroni_cluster.summary()
    old_leader = before["leader"]
    assert old_leader is not None
    replicas = {_address(patroni_cluster, n) for n in patroni_cluster.nodes if n != old_leader}
    await eventually(lambda: _rotation(app) == replicas, 15, message=lambda: f"rotation {_rotation(app)}")

    author = await api.register()
    created = await app.post("/api/v1/recipes", json={"title": "Before"}, headers=author["headers"])
    assert created.status_code == 201, created.text
    old_token = created.headers["x-potluck-consistency"]
    assert old_token.startswith(f"{before['timeline']}:")
    recipe = created.json()
    app.cookies.clear()

    traffic = Traffic(app, author)
    traffic.start()
    await asyncio.sleep(0.5)
    killed_at = time.monotonic()
    try:
        await asyncio.to_thread(patroni_cluster.kill, old_leader)

        def written_after_kill() -> list[float]:
            # Writes that began after the kill: one in flight at the kill may have committed before it.
            spans = zip(traffic.write_starts, traffic.writes, strict=False)
            return [at for began, (at, r) in spans if began > killed_at and r.status_code == 201]

        await eventually(written_after_kill, WRITES_BACK_WITHIN, message="no write succeeded after the crash")
        back_after = min(written_after_kill()) - killed_at
        await asyncio.sleep(0.5)
        await traffic.stop()
        _assert_only_503_problems(traffic.all())
        failed = [r for _, r in traffic.writes if r.status_code == 503]
        assert failed, "the crash went unnoticed: no write failed (was the leader killed?)"
        window = max(back_after, 2.0)  # the leader's absence, or at least the first seconds after the crash
        reads_during = [r.status_code for at, r in traffic.reads if killed_at < at < killed_at + window]
        assert 200 in reads_during, f"no read served in the {window:.1f}s after the crash: {reads_during}"
        print(f"writes back {back_after:.1f}s after the crash; {len(failed)} writes answered 503; reads {reads_during}")

        # The promoted replica left the read rotation; the other one stays.
        def promoted() -> dict[str, Any] | None:
            now = patroni_cluster.summary()
            moved = now["leader"] not in (None, old_leader) and (now["timeline"] or 0) > before["timeline"]
            return now if moved else None

        after = await eventually(lambda: asyncio.to_thread(promoted), 10, message="no new leader on a new timeline")
        new_leader = after["leader"]
        await eventually(
            lambda: _address(patroni_cluster, new_leader) not in {r.name for r in database.replica_states}, 10
        )

        await _old_token_and_retried_if_match(app, author, recipe, old_token, after["timeline"])
    finally:
        with contextlib.suppress(Exception):
            await traffic.stop()
        await asyncio.to_thread(patroni_cluster.restart, old_leader)

    # The old leader rejoins as a replica (Patroni rewinds it) and enters the read rotation.
    await asyncio.to_thread(patroni_cluster.wait_ready, 2, 60)
    rejoined = _address(patroni_cluster, old_leader)
    await eventually(lambda: rejoined in _rotation(app), 20, message=lambda: f"rotation {_rotation(app)}")
    # The lag monitor measures the new replica set: the rejoined node is reported, the promoted one is not.
    metrics = (await app.get(METRICS_URL)).text
    assert f'potluck_db_replica_healthy{{replica="{rejoined}"}} 1.0' in metrics
    assert f'potluck_db_replication_lag_seconds{{replica="{rejoined}"}}' in metrics
    promoted = _address(patroni_cluster, patroni_cluster.leader())
    assert f'potluck_db_replication_lag_seconds{{replica="{promoted}"}}' not in metrics
    pools = [line for line in metrics.splitlines() if line.startswith("potluck_db_pool_size{")]
    assert any(f'node="{rejoined}"' in line for line in pools), pools
    assert not any(f'node="{promoted}"' in line and 'role="replica"' in line for line in pools), pools


class FreshReads(Traffic):
    """Traffic whose readers also fetch the recipes just created: each a cache miss, loaded from the primary."""

    async def _read(self) -> None:
        async with AppClient(app_of(self.app)) as client:
            seen: set[str] = set()
            while not self._stop.is_set():
                fresh = [r.json()["id"] for _, r in self.writes[-3:] if r.status_code == 201]
                unseen = [i for i in fresh if i not in seen]
                if unseen:
                    seen.add(unseen[0])
                    response = await client.get(f"/api/v1/recipes/{unseen[0]}")
                else:
                    response = await client.get("/api/v1/recipes", params={"author": self.author["id"]})
                self.reads.append((time.monotonic(), response))
                await asyncio.sleep(0.02)


async def test_a_switchover_fails_no_read_and_no_write_that_had_not_begun(
    patroni_app: AppClient, patroni_cluster: PatroniCluster
) -> None:
    """A planned switchover leaves about 2 s without a leader. Reads (replica and primary ones) and writes wait for
    the new leader instead of failing; only a write whose transaction the old leader's shutdown ended may fail."""
    app = patroni_app
    before = await asyncio.to_thread(patroni_cluster.wait_ready, 2, 60)
    candidate = before["sync_standby"]
    author = await Api(app).register()
    traffic = FreshReads(app, author)
    traffic.start()
    await asyncio.sleep(1.0)
    began = time.monotonic()
    try:
        await asyncio.to_thread(patroni_cluster.switchover, candidate)
        await eventually(lambda: patroni_cluster.summary()["leader"] == candidate, 30, message="no new leader")
        await asyncio.sleep(2.0)
    finally:
        await traffic.stop()
    _assert_only_503_problems(traffic.all())
    during = [(at, r) for at, r in traffic.reads + traffic.writes if at >= began]
    failed_reads = [r.text for at, r in traffic.reads if at >= began and r.status_code != 200]
    failed_writes = [r.text for at, r in traffic.writes if at >= began and r.status_code != 201]
    details = [r for at, r in traffic.reads if at >= began and r.request.url.path.count("/") == 4]
    print(f"{len(during)} requests during the switchover, {len(details)} primary reads; failed writes {failed_writes}")
    assert failed_reads == []
    assert len(failed_writes) <= 1, failed_writes  # at most the one in flight at the shutdown
    assert details, "no read of a fresh recipe (primary) during the switchover"
    assert any(at > began and r.status_code == 201 for at, r in traffic.writes)
    await asyncio.to_thread(patroni_cluster.wait_ready, 2, 60)  # the old leader streams again


REPLICA_READ_WITHIN = 2.0  # the drill's read timeout


async def test_a_frozen_replica_delays_no_read_past_its_bound(
    patroni_app: AppClient, patroni_cluster: PatroniCluster
) -> None:
    """A replica that stops answering (SIGSTOP: a partition) must not hold reads: each is abandoned after the
    replica read bound and run again elsewhere, and the node stays out of rotation until it answers again."""
    app = patroni_app
    summary = await asyncio.to_thread(patroni_cluster.wait_ready, 2, 60)
    victim = next(m["name"] for m in summary["members"] if m["role"] == "replica")
    address = _address(patroni_cluster, victim)
    await eventually(lambda: address in _rotation(app), 20, message=lambda: f"rotation {_rotation(app)}")
    author = await Api(app).register()
    created = await app.post("/api/v1/recipes", json={"title": "Partition"}, headers=author["headers"])
    assert created.status_code == 201, created.text
    app.cookies.clear()
    traffic = Traffic(app, author)
    traffic._tasks = [asyncio.create_task(traffic._read()) for _ in range(4)]  # readers only: replicas
    await asyncio.sleep(1.0)
    pids = patroni_cluster.processes(victim)
    frozen_at = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(4.0)
        assert address not in _rotation(app)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        await traffic.stop()
    reads = [r for at, r in traffic.reads if at >= frozen_at]
    # (seconds after the freeze the read began, seconds it took)
    slow = [
        (round(at - r.elapsed.total_seconds() - frozen_at, 2), r.elapsed.total_seconds())
        for at, r in traffic.reads
        if at >= frozen_at and r.elapsed.total_seconds() > REPLICA_READ_WITHIN
    ]
    assert reads
    assert [r.status_code for r in reads if r.status_code != 200] == []
    assert slow == [], f"reads held past {REPLICA_READ_WITHIN}s by the frozen replica: {slow}"
    await eventually(lambda: address in _rotation(app), 30, message=lambda: f"rotation {_rotation(app)}")
