"""Admission at the gateway: with `api_connections` set, nginx hands each API process at most that many requests at
once and answers the rest 503 problem+json + Retry-After at once, instead of queueing them in front of a busy
process. The rendered deploy/nginx template, run by a real nginx in front of a slow stub upstream."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from potluck_ops.nginx import GatewayLimits, render_nginx_conf, standalone_gateway
from potluck_ops.ports import free_port

REPO = Path(__file__).resolve().parents[2]
WORK_SECONDS = 1.0
BOUND = 2
# Rate limits out of the way: this test is about the connection bound alone.
LIMITS = GatewayLimits(address_rate=10_000, address_burst=10_000, address_connections=1_000, api_connections=BOUND)


class _Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
        if self.path != "/healthz":
            time.sleep(WORK_SECONDS)
        with cls.lock:
            cls.in_flight -= 1
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Slow)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        root = tmp_path_factory.mktemp("nginx-admission")
        with standalone_gateway(root, [upstream.server_address[1]], LIMITS) as url:
            assert f"max_conns={BOUND}" in (root / "nginx.conf").read_text()
            yield url
    finally:
        upstream.shutdown()
        upstream.server_close()


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    # Signed: the request goes to the API upstream (anonymous GETs would go to the edge upstream).
    resp = httpx.get(f"{url}/api/v1/recipes", headers={"Authorization": "Bearer x"}, timeout=10)
    return resp, time.monotonic() - started


def test_the_excess_is_answered_503_at_once_and_the_admitted_are_served(gateway: str) -> None:
    _Slow.most = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _timed_get(gateway), range(8)))
    served = [(r, t) for r, t in results if r.status_code == 200]
    refused = [(r, t) for r, t in results if r.status_code != 200]
    assert _Slow.most <= BOUND  # the upstream never had more than the bound at once
    assert 1 <= len(served) <= BOUND
    assert refused
    assert all(r.status_code == 503 for r, _ in refused)
    for resp, seconds in refused:
        assert seconds < WORK_SECONDS / 2  # refused at once, not queued behind the slow ones
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["retry-after"] == "1"
        assert resp.json()["status"] == 503
    # Once the admitted ones are done, the next request is served.
    resp, _ = _timed_get(gateway)
    assert resp.status_code == 200


def test_no_bound_by_default() -> None:
    template = (REPO / "deploy" / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(template, nginx_dir=Path("/tmp/x"), lb_port=1, api_ports=[2, 3])
    assert "max_conns=" not in conf
