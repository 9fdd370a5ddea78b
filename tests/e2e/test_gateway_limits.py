"""Rate limits at the gateway: the rendered deploy/nginx template, run by a real nginx in front of a stub upstream.

Per client address (as the trusted proxy reports it), per token; a 429 is problem+json with Retry-After and the
IETF httpapi RateLimit-Policy / RateLimit headers; health probes are never limited."""

from __future__ import annotations

import asyncio
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from potluck.config import EdgeSettings, Settings
from potluck.recipe.views import ViewCounter
from potluck.schedule import EDGE_ROTATE_TASK, EDGE_VIEWS_TASK, JobContext, job
from potluck.stats.edge_views import LIMITS as LIMIT_NAMES
from potluck.stats.edge_views import count_rejections
from potluck.stats.service import EdgeTrafficMetrics, ViewStats
from potluck_ops.nginx import GatewayLimits, standalone_gateway
from potluck_ops.ports import free_port
from tests.harness import RedisServer
from tests.support.eventually import eventually

LIMITS = GatewayLimits(address_rate=2, address_burst=3, token_rate=1, token_burst=2, address_connections=50)


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateway_dir() -> Iterator[Path]:
    # nginx's workers (nobody) reopen the logs by path on SIGUSR1: every folder above them must let them through,
    # which pytest's own (0700) does not; `cluster up` makes its state dir traversable for the same reason.
    root = Path(tempfile.mkdtemp(prefix="potluck-gateway-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(gateway_dir: Path) -> Iterator[str]:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Ok)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with standalone_gateway(gateway_dir, [upstream.server_address[1]], LIMITS) as url:
            yield url
    finally:
        upstream.shutdown()
        upstream.server_close()


def _burst(url: str, n: int, headers: dict[str, str]) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=5) as client:
        return [client.get("/api/v1/recipes", headers=headers) for _ in range(n)]


def test_one_address_over_its_limit_gets_429_problem_json_with_the_headers(gateway: str) -> None:
    responses = _burst(gateway, 12, {"X-Forwarded-For": "203.0.113.7"})
    statuses = [r.status_code for r in responses]
    assert statuses[: LIMITS.address_burst] == [200] * LIMITS.address_burst
    assert 429 in statuses
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["status"] == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-policy"] == f'"address";q={LIMITS.address_rate};w=1, "token";q=1;w=1'
    assert limited.headers["ratelimit"].endswith("r=0;t=1")
    # Another client is not affected by the first one's excess.
    assert _burst(gateway, 1, {"X-Forwarded-For": "203.0.113.8"})[0].status_code == 200


def test_a_token_is_limited_on_its_own_whatever_the_address(gateway: str) -> None:
    token = {"Authorization": "Bearer abuser"}
    statuses = [_burst(gateway, 1, {**token, "X-Forwarded-For": f"198.51.100.{i}"})[0].status_code for i in range(1, 9)]
    assert statuses[: LIMITS.token_burst] == [200] * LIMITS.token_burst
    assert 429 in statuses
    # Someone else's token, from the same addresses, still passes.
    assert _burst(gateway, 1, {"Authorization": "Bearer other", "X-Forwarded-For": "198.51.100.50"})[0].is_success


def test_health_probes_are_never_limited(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=5) as client:
        statuses = {client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"}).status_code for _ in range(30)}
    assert statuses == {200}


def test_each_refusal_is_in_the_error_log_under_the_limit_that_refused_it(gateway: str, gateway_dir: Path) -> None:
    """What the worker ships into potluck_gateway_rejected_total{limit} (potluck.stats.edge_views)."""
    log = gateway_dir / "error.log"
    before = count_rejections(log.read_bytes()).by_limit
    by_address = _burst(gateway, 12, {"X-Forwarded-For": "198.51.100.44"})
    by_token = _burst(gateway, 8, {"X-Forwarded-For": "198.51.100.45", "Authorization": "Bearer counted"})
    after = count_rejections(log.read_bytes()).by_limit
    refused_by_address = sum(r.status_code == 429 for r in by_address)
    refused_by_token = sum(r.status_code == 429 for r in by_token)
    assert refused_by_address > 0
    assert refused_by_token > 0
    assert after["per_address"] - before["per_address"] == refused_by_address
    assert after["per_token"] - before["per_token"] == refused_by_token


async def test_the_worker_rotates_the_error_log_and_counts_every_refusal_once(gateway: str, gateway_dir: Path) -> None:
    """`stats.rotate_edge_logs` renames the gateway's error log past its bound and sends nginx SIGUSR1, on which it
    reopens the path (SIGHUP would reload it instead); no second rotation while the shipper has not finished `.1`;
    `stats.ship_edge_views` counts every 429 once into potluck_gateway_rejected_total across the rotations."""
    log = gateway_dir / "error.log"
    edge = EdgeSettings(
        gateway_logs=[log],
        gateway_log_writers=[gateway_dir / "nginx.pid"],
        view_log_rotate_bytes=1,  # any line is past the bound
        view_log_rotate_seconds=0,
    )
    registry = CollectorRegistry()
    with RedisServer() as redis_server:
        coord = redis.asyncio.Redis.from_url(redis_server.url)
        stats = ViewStats(None, ViewCounter(), coord, EdgeTrafficMetrics(registry))  # type: ignore[arg-type]
        ctx = cast(JobContext, SimpleNamespace(settings=Settings(edge=edge), stats=stats))
        ship, rotate = job(EDGE_VIEWS_TASK).run, job(EDGE_ROTATE_TASK).run

        def counted() -> float:
            return sum(
                registry.get_sample_value("potluck_gateway_rejected_total", {"limit": limit}) or 0
                for limit in LIMIT_NAMES
            )

        async def shipped_all(expected: float) -> bool:
            await ship(ctx)
            return counted() == expected

        try:
            await ship(ctx)  # what earlier tests refused: counted first, so from here every line is one of ours
            base, refused = counted(), 0
            for round_ in range(3):
                address = f"198.51.100.{60 + round_}"
                refused += sum(
                    r.status_code == 429
                    for r in await asyncio.to_thread(_burst, gateway, 10, {"X-Forwarded-For": address})
                )
                await eventually(partial(shipped_all, base + refused), 10, interval=0.1, message=f"round {round_}")
                inode = log.stat().st_ino
                assert await rotate(ctx) == 1, round_
                assert log.with_name("error.log.1").stat().st_ino == inode  # renamed
                await eventually(log.exists, 10, interval=0.05, message="nginx never reopened its log")
                assert log.stat().st_ino != inode
                # Refusals in the new file, `.1` not finished by the shipper yet: past the bound, yet no rotation.
                address = f"198.51.100.{70 + round_}"
                refused += sum(
                    r.status_code == 429
                    for r in await asyncio.to_thread(_burst, gateway, 10, {"X-Forwarded-For": address})
                )
                await asyncio.sleep(0.3)
                assert await rotate(ctx) == 0, round_
                await eventually(
                    partial(shipped_all, base + refused), 10, interval=0.1, message=f"round {round_}, rotated"
                )
            assert refused >= 6 * 5  # each burst of 10 from one address is past its burst of 3
            await asyncio.sleep(0.5)
            assert await shipped_all(base + refused), "a refusal counted twice"
        finally:
            await coord.aclose()
