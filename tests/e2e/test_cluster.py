"""End to end: `potluck cluster up` on this machine, then HTTP through nginx and straight to each API process.

Real processes throughout: etcd and two Patroni-managed PostgreSQL nodes (a leader and its synchronous standby),
both Redis instances, 2 API processes, nginx. The cluster lives in a temp dir (POTLUCK_CLUSTER_DIR) and
`potluck cluster down --purge` removes it, whatever happened before.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from potluck_ops.failures import tail
from potluck_ops.ports import pick_free_ports
from potluck_ops.postgres import CLUSTER_TOOLS, PG
from potluck_ops.processes import pid_alive
from tests.harness._util import default_parent_dir
from tests.support.eventually import eventually_sync

UP_TIMEOUT = 300
REPLICA_READ_TIMEOUT = 15


def _missing_tools() -> list[str]:
    missing = [str(path) for path in PG.missing(CLUSTER_TOOLS)]
    return missing + [tool for tool in ("redis-server", "nginx", "patroni", "etcd") if shutil.which(tool) is None]


pytestmark = pytest.mark.skipif(
    bool(_missing_tools()), reason=f"needs {', '.join(_missing_tools())} (scripts/install-deps.sh)"
)


def _cluster_command() -> list[str]:
    """`potluck cluster`, from the same environment as the tests."""
    return [sys.executable, "-m", "potluck.cli.main", "cluster"]


def _logs(state_dir: Path, lines: int = 30) -> str:
    """The tails of every log in the cluster's state dir, for failure messages."""
    parts = [f"--- {log} ---\n{tail(log, lines)}" for log in sorted(state_dir.rglob("*.log")) if log.is_file()]
    return "\n".join(parts) or f"(no logs under {state_dir})"


def _explain(what: str, state_dir: Path, *, result: subprocess.CompletedProcess[str] | None = None) -> str:
    parts = [what]
    if result is not None:
        parts.append(f"exit code {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    parts.append(_logs(state_dir))
    return "\n".join(parts)


def _upstreams(state_dir: Path, targets: Sequence[str]) -> list[str]:
    """The API process (`upstream=` in nginx's access log) that answered each request target, in order. nginx
    writes a request's line after its response has gone out, so the last one may not be there yet: read again
    for a few seconds."""

    def read() -> list[str]:
        found: dict[str, str] = {}
        for line in (state_dir / "nginx" / "access.log").read_text().splitlines():
            match = re.search(r'"GET (\S+) HTTP/[0-9.]+" .* upstream=(\S+)', line)
            if match and match.group(1) in targets:
                found[match.group(1)] = match.group(2)
        return [found.get(target, "?") for target in targets]

    def complete() -> list[str] | None:
        upstreams = read()
        return None if "?" in upstreams else upstreams

    return eventually_sync(complete, 5, message=lambda: f"nginx's access log names no upstream for some of {read()}")


def _expect(response: httpx.Response, status: int, state_dir: Path) -> httpx.Response:
    if response.status_code != status:
        pytest.fail(
            _explain(
                f"{response.request.method} {response.request.url}: expected {status}, got {response.status_code} "
                f": {response.text[:2000]}",
                state_dir,
            )
        )
    return response


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # mkdtemp, not tmp_path: pytest's root-only (0700) base dir would keep the postgres user out.
    path = Path(tempfile.mkdtemp(prefix="potluck-e2e-", dir=default_parent_dir()))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(args: Sequence[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(args), env=env, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(list(args), -1, out, err + f"\n(timed out after {timeout:.0f}s)")


def _read_back(base_url: str, recipe_id: str, state_dir: Path) -> dict[str, Any]:
    """GET the recipe from one API process; it reads from the replica, so allow a moment of replication lag."""
    deadline = time.monotonic() + REPLICA_READ_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as client:
        while True:
            response = client.get(f"/api/v1/recipes/{recipe_id}")
            if response.status_code == 200 or time.monotonic() > deadline:
                body: dict[str, Any] = _expect(response, 200, state_dir).json()
                return body
            time.sleep(0.1)


def test_cluster_up_serves_through_nginx_and_every_api_process(state_dir: Path) -> None:
    lb_port = pick_free_ports(1)[0]
    env = {**os.environ, "POTLUCK_CLUSTER_DIR": str(state_dir)}
    cluster = _cluster_command()
    up_args = ["up", "--no-seed", "--api", "2", "--replicas", "1", "--lb-port", str(lb_port)]
    pids: list[int] = []
    try:
        up = _run([*cluster, *up_args], env, UP_TIMEOUT)
        assert up.returncode == 0, _explain("`potluck cluster up` failed", state_dir, result=up)

        status = _run([*cluster, "status"], env, 60)
        assert status.returncode == 0, _explain("`potluck cluster status` says it is not up", state_dir, result=status)
        info = json.loads(status.stdout)
        assert info["up"] is True
        assert info["state_dir"] == str(state_dir)
        assert info["lb_url"] == f"http://127.0.0.1:{lb_port}"
        assert len(info["api"]) == 2
        assert len(info["postgres"]["replicas"]) == 1
        # Under Patroni: who leads, on which timeline, and the synchronous standby (the one replica).
        pg = info["postgres"]
        assert pg["leader"] == pg["primary"]["name"]
        assert isinstance(pg["timeline"], int)
        assert pg["sync_standby"] == pg["replicas"][0]["name"]
        assert sorted(m["role"] for m in pg["members"]) == ["leader", "sync_standby"]
        assert info["etcd"]["healthy"]
        nodes = [info["lb"], *info["api"], info["postgres"]["primary"], *info["postgres"]["replicas"]]
        nodes += [*info["redis"].values(), *info["sentinel"]["nodes"], info["etcd"]]
        for node in nodes:
            assert node["alive"], f"not alive: {node}"
            assert node["healthy"], f"not healthy: {node}"
        pids = [node["pid"] for node in nodes]
        # Every Redis client goes through the sentinels; each master has its replica and three sentinels.
        sentinel_ports = [node["port"] for node in info["sentinel"]["nodes"]]
        assert json.loads(info["env"]["POTLUCK_REDIS__SENTINELS"]) == [f"127.0.0.1:{p}" for p in sentinel_ports]
        assert "POTLUCK_REDIS__URL" not in info["env"]
        for role in ("cache", "coord"):
            master = info["sentinel"]["view"]["masters"][role]
            assert master["address"] == f"127.0.0.1:{info['redis'][role]['port']}", master
            assert [r["address"] for r in master["replicas"]] == [
                f"127.0.0.1:{info['redis'][f'{role}-replica']['port']}"
            ]
            assert master["sentinels"] == 3

        name = f"e2e_{uuid.uuid4().hex[:12]}"
        password = "correct horse battery staple"
        with httpx.Client(base_url=info["lb_url"], timeout=30, trust_env=False) as client:
            body = {"email": f"{name}@example.com", "username": name, "password": password}
            _expect(client.post("/api/v1/auth/register", json=body), 202, state_dir)
            login = client.post("/api/v1/auth/token", data={"username": name, "password": password})
            token = _expect(login, 200, state_dir).json()["access_token"]
            recipe = {
                "title": "Cluster soup",
                "cuisine": "test",
                "ingredients": [{"name": "water", "quantity": 1, "unit": "l"}],
                "steps": ["Boil the water.", "Serve."],
                "tags": ["e2e"],
            }
            created = client.post("/api/v1/recipes", json=recipe, headers={"Authorization": f"Bearer {token}"})
            recipe_id = _expect(created, 201, state_dir).json()["id"]

            # One keep-alive connection, sequential requests: round robin must alternate between the two. Which
            # process answered is in nginx's access log (`upstream=`), never in a response header.
            probe = uuid.uuid4().hex[:8]
            for i in range(6):
                assert "x-upstream" not in _expect(client.get(f"/healthz?rr={probe}{i}"), 200, state_dir).headers
            upstreams = _upstreams(state_dir, [f"/healthz?rr={probe}{i}" for i in range(6)])
            # /metrics: refused by the gateway, served on each API process's internal listener.
            assert client.get("/metrics").status_code == 404

            # JSON over 1 KB leaves the load balancer compressed.
            spec = _expect(client.get("/openapi.json", headers={"Accept-Encoding": "gzip"}), 200, state_dir)
            assert spec.headers.get("content-encoding") == "gzip"

        expected = {f"127.0.0.1:{node['port']}" for node in info["api"]}
        assert set(upstreams) == expected, f"upstreams {upstreams}, API processes {expected}"
        assert all(a != b for a, b in itertools.pairwise(upstreams)), f"no alternation: {upstreams}"

        for node in info["api"]:
            assert httpx.get(f"{node['url']}/metrics", timeout=10, trust_env=False).status_code == 404
            assert "potluck_http" in httpx.get(node["metrics_url"], timeout=10, trust_env=False).text
            doc = _read_back(node["url"], recipe_id, state_dir)
            assert doc["id"] == recipe_id
            assert doc["title"] == "Cluster soup"
    finally:
        down = _run([*cluster, "down", "--purge"], env, 120)
        down_problem = None
        if down.returncode != 0:
            down_problem = _explain("`potluck cluster down --purge` failed", state_dir, result=down)
    assert down_problem is None, down_problem
    assert not state_dir.exists(), "down --purge left the state dir behind"
    still_running = [pid for pid in pids if pid_alive(pid)]
    assert not still_running, f"processes still running after down: {still_running}"
