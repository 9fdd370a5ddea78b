"""The edge (Varnish + xkey, deploy/varnish) in front of real API processes: hits, purges by surrogate key acknowledged
before a write's response, leases under a paused node, nothing personal stored, poisoning attempts.

Two edge nodes over two API processes; every property is checked on each node."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import brotli
import httpx
import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from potluck.cache.edge import debt_key
from potluck.config import EdgeSettings, Settings
from potluck.recipe.views import ViewCounter
from potluck.schedule import EDGE_ROTATE_TASK, EDGE_VIEWS_TASK, JobContext, job
from potluck.stats.edge_views import FAMILIES, HANDLINGS
from potluck.stats.service import VIEWS_KEY, EdgeTrafficMetrics, ViewStats
from potluck_ops.ports import free_port
from potluck_ops.varnish import (
    KEY_HEADER,
    hit_log,
    hit_log_writer,
    purge_url,
    rotate_hit_log,
    start_hit_log,
    start_varnish,
    stop_varnish,
)
from tests.harness import PgCluster, RedisServer
from tests.support.edge import purges_at
from tests.support.eventually import eventually
from tests.support.stack import ApiProcess, migrated_database, register_user, stack_env, stack_logs

REPO = Path(__file__).resolve().parents[2]
EDGES = ("edge-1", "edge-2")


class PurgeRelay:
    """A TCP relay between the API processes and edge-2's purge endpoint, in its own thread: cut, it accepts
    purges and heartbeats and drops them, while clients still reach edge-2 directly (a partition of one path)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.cut.is_set():
                await reader.read(65536)  # swallowed: the sender times out
                await asyncio.sleep(5)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(up_writer)

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    if self.cut.is_set():
                        return
                    dst.write(data)
                    await dst.drain()

            pumps = [pump(reader, up_writer), pump(up_reader, writer)]
            await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for each in (writer, up_writer):
                if each is not None:
                    each.close()
                    self._writers.discard(each)
            self._tasks.discard(task)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def topology(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = migrated_database(pg_cluster, "edge")
    logs = tmp_path_factory.mktemp("edge-logs")
    edge_ports = {name: free_port() for name in EDGES}
    relay = PurgeRelay(edge_ports["edge-2"])
    purge_urls = [purge_url(edge_ports["edge-1"]), purge_url(relay.port)]
    # edge-3 is an edge node the API does not know: it never gets a lease, so it must never serve from cache.
    orphan_port = free_port()
    with RedisServer() as cache, RedisServer() as coord:
        env = {
            **stack_env(url, cache, coord, logs),
            "POTLUCK_EDGE__PURGE_URLS": json.dumps(purge_urls),
            "POTLUCK_EDGE__KEY_HEADER": KEY_HEADER,
        }
        apis = [ApiProcess({**env, "PYTHONHASHSEED": seed}, logs / f"api{seed}.log") for seed in ("1", "2")]
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ncsa: list[subprocess.Popen[bytes]] = []
        root = logs / "varnish"
        try:
            for api in apis:
                api.wait_ready(timeout=180)
            api_ports = [api.port for api in apis]
            for name, port in {**edge_ports, "edge-3": orphan_port}.items():
                procs[name] = start_varnish(REPO / "deploy", root, name, port, api_ports, os.environ)
            ncsa = [start_hit_log(root, name, os.environ) for name in EDGES]
            yield {
                "apis": apis,
                "edges": {name: f"http://127.0.0.1:{port}" for name, port in edge_ports.items()},
                "orphan": f"http://127.0.0.1:{orphan_port}",
                "procs": procs,
                "relay": relay,
                "logs": logs,
                "hit_logs": [hit_log(root, name) for name in EDGES],
                "workdirs": {name: root / name for name in EDGES},
                "coord": coord.url,
                "env": env,
                "db": url,
                "purge_urls": dict(zip(EDGES, purge_urls, strict=True)),
            }
        finally:
            for name, proc in procs.items():
                os.killpg(proc.pid, signal.SIGCONT)
                stop_varnish(root, name)
                proc.wait(10)
            for each in ncsa:
                each.wait(10)
            for api in apis:
                api.stop()
            relay.stop()


@pytest.fixture
async def clients(topology: dict[str, Any]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    made = {name: httpx.AsyncClient(base_url=url, timeout=10) for name, url in topology["edges"].items()}
    made["api"] = httpx.AsyncClient(base_url=topology["apis"][0].url, timeout=10)
    made["orphan"] = httpx.AsyncClient(base_url=topology["orphan"], timeout=10)
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


async def _recipe(api: httpx.AsyncClient, **fields: Any) -> tuple[dict[str, Any], str]:
    author = await register_user(api)
    body = {"title": "v0", "is_public": True, **fields}
    recipe = (await api.post("/api/v1/recipes", json=body, headers=author["headers"])).json()
    return author, f"/api/v1/recipes/{recipe['id']}"


async def _hit(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """Read until the edge answers from its cache (its first lease may still be on its way)."""

    async def hit() -> httpx.Response | None:
        response = await client.get(url, **kwargs)
        return response if response.headers.get("x-cache") == "HIT" else None

    return await eventually(hit, 10, interval=0.05, message=f"{client.base_url}{url} never a hit")


async def test_second_read_is_an_edge_hit_and_keys_never_reach_the_client(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    _, url = await _recipe(clients["api"])
    for name in EDGES:
        first = await clients[name].get(url)
        assert first.status_code == 200
        assert first.headers["x-edge"] == name
        hit = await _hit(clients[name], url)
        assert hit.content == first.content
        assert KEY_HEADER.lower() not in hit.headers
        assert "xkey" not in hit.headers
        # The API's ETag answers a conditional read at the edge.
        again = await clients[name].get(url, headers={"If-None-Match": hit.headers["etag"]})
        assert again.status_code == 304
        assert again.headers["x-cache"] == "HIT"


async def test_an_edit_is_visible_at_once_on_every_edge(clients: dict[str, httpx.AsyncClient]) -> None:
    api = clients["api"]
    author, url = await _recipe(api)
    for round_ in range(1, 6):
        for name in EDGES:
            await _hit(clients[name], url)
        response = await api.patch(url, json={"title": f"v{round_}"}, headers=author["headers"])
        assert response.status_code == 200
        for name in EDGES:
            assert (await clients[name].get(url)).json()["title"] == f"v{round_}", name


async def test_made_private_or_deleted_is_gone_from_every_edge_at_once(clients: dict[str, httpx.AsyncClient]) -> None:
    api = clients["api"]
    author, url = await _recipe(api)
    list_url = f"/api/v1/recipes?author={author['id']}"
    for name in EDGES:
        await _hit(clients[name], url)
        listed = await _hit(clients[name], list_url)
        assert [item["id"] for item in listed.json()["items"]] == [url.rsplit("/", 1)[1]]
    assert (await api.patch(url, json={"is_public": False}, headers=author["headers"])).status_code == 200
    for name in EDGES:
        assert (await clients[name].get(url)).status_code == 404, name
        assert (await clients[name].get(list_url)).json()["items"] == [], name
    # The author's signed read passes the edge and is never stored.
    signed = await clients[EDGES[0]].get(url, headers=author["headers"])
    assert signed.status_code == 200
    assert signed.headers["x-cache"] == "PASS"
    assert (await clients[EDGES[0]].get(url)).status_code == 404

    _, url = await _recipe(api)
    author2, url = await _recipe(api)
    for name in EDGES:
        await _hit(clients[name], url)
    assert (await api.delete(url, headers=author2["headers"])).status_code == 204
    for name in EDGES:
        assert (await clients[name].get(url)).status_code == 404, name


async def test_signed_reads_and_cookies_are_never_stored(clients: dict[str, httpx.AsyncClient]) -> None:
    author, url = await _recipe(clients["api"])
    edge = clients[EDGES[0]]
    for _ in range(3):
        signed = await edge.get(url, headers=author["headers"])
        assert signed.headers["x-cache"] == "PASS"
        assert signed.headers["cache-control"].startswith("private")
        with_cookie = await edge.get(url, headers={"Cookie": "session=abc"})
        assert with_cookie.headers["x-cache"] == "PASS"
    # Nothing of those was stored: the first anonymous read is a miss.
    assert (await edge.get(url)).headers["x-cache"] == "MISS"


async def test_a_node_the_api_does_not_lease_never_serves_from_cache(clients: dict[str, httpx.AsyncClient]) -> None:
    _, url = await _recipe(clients["api"])
    for _ in range(5):
        response = await clients["orphan"].get(url)
        assert response.status_code == 200
        assert response.headers["x-cache"] == "PASS"


async def test_paused_edge_during_a_write_serves_nothing_stale_after(
    clients: dict[str, httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    api = clients["api"]
    author, url = await _recipe(api)
    for round_, paused in enumerate(EDGES * 2, start=1):
        for name in EDGES:
            await _hit(clients[name], url)
        proc = topology["procs"][paused]
        os.killpg(proc.pid, signal.SIGSTOP)  # the manager and its cache child
        try:
            response = await api.patch(url, json={"title": f"p{round_}"}, headers=author["headers"])
            assert response.status_code == 200, stack_logs(topology["logs"])
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        for name in EDGES:
            # Right after the node resumes, and a moment later: never the old title.
            for _ in range(3):
                got = await clients[name].get(url)
                assert got.json()["title"] == f"p{round_}", (name, got.headers.get("x-cache"))
                await asyncio.sleep(0.05)
        # The node is back in service: its debt was delivered and its lease renewed.
        await _hit(clients[paused], url)


async def _drain_outbox(topology: dict[str, Any]) -> None:
    """One run of the relay as `potluck events drain` (the worker's relay task), with the topology's settings."""
    env = {**topology["env"], "POTLUCK_EVENTS__BACKOFF_BASE_SECONDS": "0.5"}
    command = [sys.executable, "-m", "potluck.cli.main", "events", "drain", "--budget", "20"]
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


async def _edge_purge_event(topology: dict[str, Any], key: str) -> asyncpg.Record:
    url = make_url(topology["db"])
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        row = await conn.fetchrow(
            "SELECT status, attempts, last_error FROM outbox_event WHERE topic = 'edge.purge'"
            " AND payload::text LIKE $1 ORDER BY id DESC LIMIT 1",
            f"%{key}%",
        )
    finally:
        await conn.close()
    assert row is not None, f"no edge.purge event for {key}"
    return row


async def test_a_purge_a_paused_node_missed_is_retried_through_the_outbox(
    clients: dict[str, httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    """The write records an `edge.purge` event; while the node is paused the relay's attempt fails (and records the
    debt again: here the coordination Redis lost it), the event stays pending; resumed, nothing stale is served
    and the next relay run delivers it."""
    api, paused = clients["api"], EDGES[0]
    author, url = await _recipe(api)
    key = f"recipe:{url.rsplit('/', 1)[1]}"
    for name in EDGES:
        await _hit(clients[name], url)
    proc = topology["procs"][paused]
    coord = redis.asyncio.Redis.from_url(topology["coord"])
    os.killpg(proc.pid, signal.SIGSTOP)  # the manager and its cache child
    try:
        response = await api.patch(url, json={"title": "retried"}, headers=author["headers"])
        assert response.status_code == 200, stack_logs(topology["logs"])
        # The debt the write recorded is lost (a coordination Redis failing over before replicating it, say).
        await coord.delete(debt_key(topology["purge_urls"][paused]))
        await _drain_outbox(topology)
        failed = await _edge_purge_event(topology, key)
        assert failed["status"] == "pending", dict(failed)
        assert failed["attempts"] >= 1, dict(failed)
        assert "EdgePurgeUndelivered" in failed["last_error"]
        assert await coord.zscore(debt_key(topology["purge_urls"][paused]), key) is not None
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
        await coord.aclose()
    for _ in range(5):
        got = await clients[paused].get(url)
        assert got.json()["title"] == "retried", got.headers.get("x-cache")
        await asyncio.sleep(0.05)
    await asyncio.sleep(2)  # past the retry's backoff (base 0.5 s: under 2 s up to the third attempt)
    await _drain_outbox(topology)
    assert (await _edge_purge_event(topology, key))["status"] == "delivered"
    assert (await _hit(clients[paused], url)).json()["title"] == "retried"


async def test_a_write_purges_each_node_once(clients: dict[str, httpx.AsyncClient], topology: dict[str, Any]) -> None:
    """The purge after commit, acknowledged by every node, is the only one: the relay's `edge.purge` delivery finds it
    done and sends nothing, and the recipe events' handlers leave the edge to it (they purged it twice more)."""
    api = clients["api"]

    async def purges(key: str) -> dict[str, int]:
        await asyncio.sleep(0.3)  # varnishd writes its log as it answers; leave it a moment
        return {name: await asyncio.to_thread(purges_at, topology["workdirs"][name], key) for name in EDGES}

    author, url = await _recipe(api)
    key = f"recipe:{url.rsplit('/', 1)[1]}"
    assert await purges(key) == dict.fromkeys(EDGES, 1)  # the creation's
    await _drain_outbox(topology)  # recipe.created's handlers and its edge.purge event
    assert await purges(key) == dict.fromkeys(EDGES, 1)
    assert (await _edge_purge_event(topology, key))["status"] == "delivered"
    assert (await api.patch(url, json={"title": "once"}, headers=author["headers"])).status_code == 200
    await _drain_outbox(topology)
    assert await purges(key) == dict.fromkeys(EDGES, 2)
    assert (await api.delete(url, headers=author["headers"])).status_code == 204
    await _drain_outbox(topology)
    assert await purges(key) == dict.fromkeys(EDGES, 3)
    assert (await _edge_purge_event(topology, key))["status"] == "delivered"


_DECODERS: dict[str | None, Callable[[bytes], bytes]] = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}


async def _variant_hit(client: httpx.AsyncClient, url: str, accept: str, encoding: str | None, plain: Any) -> bool:
    """The variant for `accept` is encoded `encoding` and decodes to `plain`; True when the edge had it stored."""
    async with client.stream("GET", url, headers={"Accept-Encoding": accept}) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers.get("content-encoding") == encoding, (client.base_url, accept)
    assert json.loads(_DECODERS[encoding](raw)) == plain
    return response.headers["x-cache"] == "HIT"


async def test_brotli_and_gzip_variants_are_stored_and_served_from_the_edge(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    """The API encodes once per fill; each node keeps a br, a gzip and a plain variant, each a hit afterwards."""
    _, url = await _recipe(clients["api"], description="Stirred often, tasted more. " * 60)
    plain = (await clients["api"].get(url, headers={"Accept-Encoding": "identity"})).json()
    for name in EDGES:
        for accept, encoding in (("gzip, deflate, br", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("", None)):
            check = partial(_variant_hit, clients[name], url, accept, encoding, plain)
            await eventually(check, 10, interval=0.05, message=f"{name}: no {encoding} hit for {accept!r}")


async def test_poisoning_attempts_change_nothing_others_get(clients: dict[str, httpx.AsyncClient]) -> None:
    api = clients["api"]
    edge = clients[EDGES[1]]
    _, url = await _recipe(api)
    clean = (await api.get(url)).content
    attempts: list[dict[str, str]] = [
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Proto": "gopher"},
        {"X-Original-URL": "/api/v1/users/me"},
        {"X-HTTP-Method-Override": "DELETE"},
        {KEY_HEADER: "recipe:nothing"},
        {"Accept-Encoding": "identity"},
        {"Host": "evil.example"},
    ]
    for headers in attempts:
        await edge.get(url, headers=headers)
        await edge.get(url + "?", headers=headers)
        await edge.get(url.replace("/recipes/", "/recipes/%2e%2e/recipes/"), headers=headers)
    for _ in range(3):
        got = await edge.get(url)
        assert got.status_code == 200
        assert got.content == clean
        assert "evil" not in json.dumps(dict(got.headers))
    # A list page with a query-string trick: its own cache entry, with the API's own answer for it.
    odd = await edge.get("/api/v1/recipes?limit=1&limit=2")
    assert odd.status_code in (200, 422)
    assert (await edge.get("/api/v1/recipes?limit=1")).json() == (await api.get("/api/v1/recipes?limit=1")).json()


async def test_a_new_recipe_appears_at_once_in_cached_lists(clients: dict[str, httpx.AsyncClient]) -> None:
    api = clients["api"]
    author = await register_user(api)
    list_url = f"/api/v1/recipes?author={author['id']}"
    for name in EDGES:
        assert (await _hit(clients[name], list_url)).json()["items"] == []
    created = (await api.post("/api/v1/recipes", json={"title": "new"}, headers=author["headers"])).json()
    for name in EDGES:
        assert [i["id"] for i in (await clients[name].get(list_url)).json()["items"]] == [created["id"]]


async def test_profile_pages_carry_keys_and_are_purged(clients: dict[str, httpx.AsyncClient]) -> None:
    api = clients["api"]
    author = await register_user(api)
    url = f"/api/v1/users/{author['id']}"
    for name in EDGES:
        await _hit(clients[name], url)
    name_ = f"n{uuid.uuid4().hex[:6]}"
    assert (await api.patch("/api/v1/users/me", json={"display_name": name_}, headers=author["headers"])).is_success
    for name in EDGES:
        assert (await clients[name].get(url)).json()["display_name"] == name_


async def test_an_edge_node_cut_off_from_purges_stops_serving_from_cache_before_the_write_returns(
    clients: dict[str, httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    """The lease, alone: edge-2 keeps answering clients but purges and heartbeats to it are lost."""
    api, edge = clients["api"], clients["edge-2"]
    author, url = await _recipe(api)
    relay: PurgeRelay = topology["relay"]
    for round_ in range(1, 4):
        await _hit(edge, url)
        relay.cut.set()
        try:
            started = time.monotonic()
            response = await api.patch(url, json={"title": f"c{round_}"}, headers=author["headers"])
            assert response.status_code == 200
            assert time.monotonic() - started < 5
            for _ in range(5):
                got = await edge.get(url)
                assert got.json()["title"] == f"c{round_}", got.headers.get("x-cache")
                assert got.headers["x-cache"] == "PASS"
        finally:
            relay.cut.clear()
        # Reconnected: the debt is delivered with the next heartbeat and the node serves hits again.
        assert (await _hit(edge, url)).json()["title"] == f"c{round_}"


async def test_views_answered_by_the_edge_are_counted(
    clients: dict[str, httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    """Hits never reach the API: their hit logs are shipped to the same counts (within 1% of requests served)."""
    _, url = await _recipe(clients["api"])
    recipe_id = url.rsplit("/", 1)[1]
    served = 0
    for i in range(150):
        client = clients[EDGES[i % 2]] if i % 5 else clients["api"]
        response = await client.get(url)
        assert response.status_code == 200
        served += 1
    coord = redis.asyncio.Redis.from_url(topology["coord"])
    registry = CollectorRegistry()
    # Shipping never touches the database.
    stats = ViewStats(None, ViewCounter(), coord, EdgeTrafficMetrics(registry))  # type: ignore[arg-type]
    counted = 0

    async def all_counted() -> bool:
        nonlocal counted
        for path in topology["hit_logs"]:
            await stats.ship_edge_log(path)
        counted = int(await coord.hget(VIEWS_KEY, recipe_id) or 0)  # the API processes push theirs every second
        return abs(counted - served) <= served // 100

    try:
        await eventually(all_counted, 20, interval=0.3, message=lambda: f"counted {counted} of {served}")
        hits = registry.get_sample_value("potluck_edge_requests_total", {"family": "recipe_detail", "handling": "hit"})
        assert hits is not None
        assert hits >= served * 0.8 * 0.9  # 4 reads in 5 went to an edge; all but a node's first were hits
        # The logs rotate (renamed, varnishncsa reopens on SIGHUP): nothing lost, nothing counted twice.
        root = topology["hit_logs"][0].parent
        for name in EDGES:
            assert rotate_hit_log(root, name)
        for i in range(100):
            response = await clients[EDGES[i % 2]].get(url)
            assert response.status_code == 200
            served += 1
        await eventually(all_counted, 20, interval=0.3, message=lambda: f"counted {counted} of {served} (rotated)")
        await asyncio.sleep(1.5)  # shipped again a moment later: nothing counted twice
        assert await all_counted(), f"counted {counted} of {served} (rotated, shipped again)"
    finally:
        await coord.aclose()


async def test_the_worker_rotates_each_hit_log_past_its_bound_and_counts_every_read_once(
    clients: dict[str, httpx.AsyncClient], topology: dict[str, Any]
) -> None:
    """The scheduled jobs, as the worker runs them, over the real varnishncsa daemons: `stats.rotate_edge_logs`
    renames a log past its size bound and SIGHUPs its writer, which reopens the path; it never rotates again while
    the shipper has not finished `.1`; `stats.ship_edge_views` counts every read once across the rotations."""
    _, url = await _recipe(clients["api"])
    root = topology["workdirs"][EDGES[0]].parent
    logs = [hit_log(root, name) for name in EDGES]
    edge = EdgeSettings(
        view_logs=logs,
        view_log_writers=[hit_log_writer(root, name) for name in EDGES],
        view_log_rotate_bytes=1500,  # ~30 lines of `hit GET /api/v1/recipes/<id>`
        view_log_rotate_seconds=0,
    )
    coord = redis.asyncio.Redis.from_url(topology["coord"])
    registry = CollectorRegistry()
    stats = ViewStats(None, ViewCounter(), coord, EdgeTrafficMetrics(registry))  # type: ignore[arg-type]
    ctx = cast(JobContext, SimpleNamespace(settings=Settings(edge=edge), stats=stats))
    ship, rotate = job(EDGE_VIEWS_TASK).run, job(EDGE_ROTATE_TASK).run

    def lines_counted() -> float:
        return sum(
            registry.get_sample_value("potluck_edge_requests_total", {"family": family, "handling": handling}) or 0
            for family in FAMILIES
            for handling in HANDLINGS
        )

    async def shipped(expected: float) -> bool:
        await ship(ctx)
        return lines_counted() == expected

    async def read_through_edges(n: int) -> None:
        for i in range(n):
            assert (await clients[EDGES[i % 2]].get(url)).status_code == 200

    # What earlier tests left in the logs: shipped first, so from here every line is one of these reads.
    async def settled() -> bool:
        before = lines_counted()
        await ship(ctx)
        await asyncio.sleep(0.2)
        return lines_counted() == before

    try:
        await eventually(settled, 20, interval=0.1, message="the logs never settled")
        base, served = lines_counted(), 0
        for round_ in range(3):
            await read_through_edges(80)  # 40 per node: past 1500 bytes
            served += 80
            await eventually(partial(shipped, base + served), 20, interval=0.1, message=f"round {round_}")
            before = {path: path.stat().st_ino for path in logs}
            assert await rotate(ctx) == len(EDGES), round_
            # Renamed, not yet finished by the shipper: more reads put it past the bound, yet no rotation.
            await read_through_edges(80)
            served += 80
            await asyncio.sleep(0.5)
            assert await rotate(ctx) == 0, round_
            await eventually(partial(shipped, base + served), 20, interval=0.1, message=f"round {round_}, rotated")
            for path in logs:  # the writer reopened the path: a new file; the old one is `.1`
                assert path.stat().st_ino != before[path]
                assert path.with_name(path.name + ".1").stat().st_ino == before[path]
        await asyncio.sleep(1)
        assert await shipped(base + served), "a line counted twice"
    finally:
        await coord.aclose()
