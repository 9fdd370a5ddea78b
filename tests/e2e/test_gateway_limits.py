"""Rate limits at the gateway: the rendered deploy/nginx template, run by a real nginx in front of a stub upstream.

Per client address (as the trusted proxy reports it), per token; a 429 is problem+json with Retry-After and the
IETF httpapi RateLimit-Policy / RateLimit headers; health probes are never limited."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from potluck.stats.edge_views import count_rejections
from potluck_ops.nginx import GatewayLimits, standalone_gateway
from potluck_ops.ports import free_port

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
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nginx")


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
