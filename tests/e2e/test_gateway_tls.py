"""The gateway (issue 18, findings 6 and 7): nginx from deploy/nginx with the production TLS server, in front of a
real `potluck serve` (embedded default). HSTS where TLS terminates, /metrics refused at the gateway and on the
API's port, served on the internal listener, no X-Upstream, the app's security headers passed through.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from potluck_ops.nginx import render_nginx_conf, render_template
from potluck_ops.ports import HOST, free_port
from tests.support.eventually import eventually_sync
from tests.support.stack import ApiProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None or shutil.which("openssl") is None, reason="needs nginx and openssl"
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("gateway")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POTLUCK_")}
    env |= {"POTLUCK_DATA_DIR": str(tmp / "data"), "POTLUCK_AUTH__SECRET_KEY": "e2e-secret-key-long-enough-for-hs256"}
    api = ApiProcess(env, tmp / "api.log")
    nginx_dir = tmp / "nginx"
    (nginx_dir / "tmp").mkdir(parents=True)
    (nginx_dir / "conf.d").mkdir()
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")),
            *("-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"),
        ],
        check=True,
        capture_output=True,
    )
    plain, tls = free_port(), free_port()
    conf = render_nginx_conf(
        (DEPLOY / "nginx.conf.template").read_text(), nginx_dir=nginx_dir, lb_port=plain, api_ports=[api.port]
    )
    (nginx_dir / "nginx.conf").write_text(conf)
    tls_server = render_template(
        (DEPLOY / "tls-server.conf.template").read_text(),
        {"tls_listen": f"{HOST}:{tls}", "certificate": str(tmp / "cert.pem"), "certificate_key": str(tmp / "key.pem")},
    )
    (nginx_dir / "conf.d" / "tls.conf").write_text(tls_server)
    args = ["nginx", "-p", f"{nginx_dir}/", "-e", str(nginx_dir / "error.log"), "-c", str(nginx_dir / "nginx.conf")]
    subprocess.run([*args, "-t", "-q"], check=True)
    nginx = subprocess.Popen([*args, "-g", "daemon off;"], start_new_session=True)
    try:
        api.wait_ready(timeout=120)

        def up() -> bool:
            try:
                return httpx.get(f"http://{HOST}:{plain}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually_sync(up, 30, interval=0.1, message=lambda: (nginx_dir / "error.log").read_text())
        yield {"plain": f"http://{HOST}:{plain}", "tls": f"https://{HOST}:{tls}", "ca": tmp / "cert.pem", "api": api}
    finally:
        os.killpg(nginx.pid, signal.SIGTERM)
        nginx.wait(10)
        api.stop()


def test_hsts_where_tls_terminates_and_nowhere_else(gateway: dict[str, Any]) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=gateway["ca"]), timeout=10) as client:
        tls = client.get(f"{gateway['tls']}/healthz")
        plain = client.get(f"{gateway['plain']}/healthz")
    assert tls.status_code == 200
    assert tls.headers.get_list("strict-transport-security") == ["max-age=63072000; includeSubDomains"]
    assert "strict-transport-security" not in plain.headers
    for resp in (tls, plain):
        assert resp.headers["x-content-type-options"] == "nosniff"  # the app's, passed through
        assert resp.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in resp.headers
        assert "x-upstream" not in resp.headers  # which process answered is in the access log only


@pytest.mark.parametrize("path", ["/metrics", "//metrics", "/%6Detrics", "/metrics?format=text"])
def test_metrics_refused_at_the_gateway(gateway: dict[str, Any], path: str) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=gateway["ca"]), timeout=10) as client:
        for base in (gateway["plain"], gateway["tls"]):
            resp = client.get(f"{base}{path}")
            assert resp.status_code == 404, (base, path)
            assert "potluck_" not in resp.text


def test_metrics_only_on_the_api_process_s_internal_listener(gateway: dict[str, Any]) -> None:
    api: ApiProcess = gateway["api"]
    public = httpx.get(f"{api.url}/metrics", timeout=10)
    assert public.status_code == 404
    assert public.headers["content-type"] == "application/problem+json"
    internal = httpx.get(api.metrics_url, timeout=10)
    assert internal.status_code == 200
    assert "potluck_http_requests_total" in internal.text
