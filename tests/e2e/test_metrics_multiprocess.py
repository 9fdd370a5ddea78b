"""/metrics of `potluck serve --workers 3`: whichever worker answers the scrape, it reports all of them; and only
on the internal listener (--metrics-port), never on the API's port.

Real processes on one port (uvicorn's workers), the embedded default (SQLite, no Redis). Requests go over fresh
connections so the kernel spreads them over the workers; each worker's own count is read from its file in the
metrics directory, so the test knows several answered and that the scrape's totals are their sums.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from tests.support.eventually import eventually, eventually_sync
from tests.support.stack import free_port

WORKERS = 3
WORKER_TIMEOUT_S = 120  # serve --worker-timeout
HEALTHZ = {"method": "GET", "route": "/healthz"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Server:
    """`potluck serve --workers N` in its own process group (its workers die with it)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "potluck.cli.main",
                    "serve",
                    "--workers",
                    str(workers),
                    "--port",
                    str(self.port),
                    "--metrics-port",
                    str(self.metrics_port),
                    # On a loaded box importing the app takes longer than the default 30 s.
                    "--worker-timeout",
                    str(WORKER_TIMEOUT_S),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, ready: Any = None, timeout: float = 90) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200 and (ready is None or ready())
            except httpx.HTTPError:
                return False

        eventually_sync(up, timeout, interval=0.2, message=lambda: f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the supervisor stops its workers, their lifespans run
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    database = tmp / "potluck.db"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{database}", DatabaseSettings())
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    env = {k: v for k, v in os.environ.items() if not k.startswith("POTLUCK_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    return {
        **env,
        "POTLUCK_DATABASE__URL": f"sqlite+aiosqlite:///{database}",
        "POTLUCK_DATA_DIR": str(tmp / "data"),
        "POTLUCK_AUTH__SECRET_KEY": "e2e-secret-key-long-enough-for-hs256-signing",
        **extra,
    }


def live_pids(metrics_dir: Path) -> set[int]:
    """Workers whose live gauges are in the directory (written at startup, removed when they die)."""
    return {int(m.group(1)) for p in metrics_dir.glob("gauge_livesum_*.db") if (m := re.search(r"_(\d+)\.db$", p.name))}


def per_process(metrics_dir: Path, kind: str, sample: str, labels: dict[str, str]) -> dict[int, float]:
    """One sample's value in each process's own file, by pid (what the scrape sums)."""
    found: dict[int, float] = {}
    for path in metrics_dir.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            _, name, key_labels, _ = json.loads(key)
            if name == sample and key_labels == labels:
                found[pid] = found.get(pid, 0.0) + value
    return found


async def scrape(base_url: str) -> Samples:
    """One scrape on a new connection: successive scrapes reach different workers (and never a dead one's)."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=10) as client:
        response = await client.get(f"{base_url}/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


async def hit(url: str, count: int, concurrency: int = 9) -> None:
    """`count` GETs, each on a new connection (no keep-alive), `concurrency` at a time."""
    limits = httpx.Limits(max_keepalive_connections=0, max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with gate:
                return (await client.get(url)).status_code

        statuses = await asyncio.gather(*(one() for _ in range(count)))
    assert set(statuses) == {200}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("metrics-mp")
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier run")
    env = _env(tmp, POTLUCK_OBSERVABILITY__MULTIPROCESS_DIR=str(metrics_dir))
    api = Server(env, tmp / "serve.log", WORKERS)
    try:
        api.wait_ready(lambda: len(live_pids(metrics_dir)) == WORKERS)
        yield {"api": api, "dir": metrics_dir}
    finally:
        api.stop()


async def test_request_counts_add_up_across_workers(server: dict[str, Any]) -> None:
    api, metrics_dir = server["api"], server["dir"]
    assert not (metrics_dir / "counter_1.db").exists()  # emptied at startup
    before = await scrape(api.metrics_url)
    requests = key("potluck_http_requests_total", **HEALTHZ, status="200")
    count = key("potluck_http_request_duration_seconds_count", **HEALTHZ)
    inf_bucket = key("potluck_http_request_duration_seconds_bucket", **HEALTHZ, le="+Inf")
    base = before.get(requests, 0.0)
    assert before.get(count, 0.0) == base

    k = 120
    await hit(f"{api.url}/healthz", k)
    for _ in range(5):  # several scrapes, reaching different workers: the same totals each time
        after = await scrape(api.metrics_url)
        assert after[requests] == base + k
        assert after[count] == base + k
        assert after[inf_bucket] == base + k
        assert after[key("potluck_http_requests_in_flight")] == 0
        assert not any(name.startswith("potluck_http") and ("route", "/metrics") in labels for name, labels in after)

    answered = per_process(metrics_dir, "counter", "potluck_http_requests_total", {**HEALTHZ, "status": "200"})
    assert sum(answered.values()) == base + k  # the scrape's total is the workers' own counts added
    assert len([pid for pid, n in answered.items() if n > 0]) >= 2, answered  # more than one worker answered
    print(f"per-worker /healthz counts: {answered}; scraped total {after[requests]:.0f}")


async def test_metrics_only_on_the_internal_listener(server: dict[str, Any]) -> None:
    """Issue 18, finding 7: the API's port never answers /metrics, whichever worker takes the connection; the
    internal listener answers nothing but it."""
    api = server["api"]
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        for _ in range(6):
            public = await client.get(f"{api.url}/metrics")
            assert public.status_code == 404
            assert public.headers["content-type"] == "application/problem+json"
            assert "potluck_" not in public.text
        assert (await client.get(f"{api.url}/healthz")).status_code == 200
        assert (await client.get(f"{api.metrics_url}/metrics")).status_code == 200
        for path in ("/healthz", "/api/v1/recipes", "/docs"):
            assert (await client.get(f"{api.metrics_url}{path}")).status_code == 404, path


async def test_pool_gauges_sum_live_workers_and_a_killed_worker_keeps_its_counts(server: dict[str, Any]) -> None:
    api, metrics_dir = server["api"], server["dir"]
    size = key("potluck_db_pool_size", role="primary", node="primary")
    requests = key("potluck_http_requests_total", **HEALTHZ, status="200")
    own = per_process(metrics_dir, "gauge_livesum", "potluck_db_pool_size", {"role": "primary", "node": "primary"})
    assert len(own) == WORKERS, own  # every worker's own pools, the same size each
    assert len(set(own.values())) == 1, own
    assert (await scrape(api.metrics_url))[size] == WORKERS * next(iter(own.values()))

    await hit(f"{api.url}/healthz", 30)
    total = (await scrape(api.metrics_url))[requests]
    counts = per_process(metrics_dir, "counter", "potluck_http_requests_total", {**HEALTHZ, "status": "200"})
    victim = max(live_pids(metrics_dir), key=lambda pid: counts.get(pid, 0.0))
    assert counts[victim] > 0
    os.kill(victim, signal.SIGKILL)

    # uvicorn replaces the worker; meanwhile and after, the victim's counts stay in the totals.
    async def replaced() -> bool:
        scraped = await scrape(api.metrics_url)
        assert scraped[requests] == total
        pids = live_pids(metrics_dir)
        # Its live gauges reaped by a scrape (it could not shut down), a replacement's in their place.
        return victim not in pids and len(pids) == WORKERS and scraped[size] == WORKERS * next(iter(own.values()))

    # uvicorn's supervisor pings its workers in turn and waits up to the worker timeout for each answer: a SIGKILL
    # that lands between a ping and its pong leaves it waiting that long before it looks at the victim again.
    await eventually(
        replaced,
        WORKER_TIMEOUT_S + 30,
        interval=0.5,
        message=lambda: f"no replacement worker: {api.log.read_text()[-2000:]}",
    )
    assert (metrics_dir / f"counter_{victim}.db").exists()


def test_several_workers_without_configuration_use_a_temporary_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("metrics-mp-default")
    api = Server(_env(tmp), tmp / "serve.log", 2)
    try:
        metrics_dir: list[Path] = []

        def announced() -> bool:
            found = re.search(r"merged from (\S+)", api.log.read_text())
            if found:
                metrics_dir[:] = [Path(found.group(1))]
            return bool(found) and len(live_pids(metrics_dir[0])) == 2

        api.wait_ready(announced)
        k = 40

        async def run() -> Samples:
            await hit(f"{api.url}/healthz", k)
            return await scrape(api.metrics_url)

        scraped = asyncio.run(run())
        assert scraped[key("potluck_http_requests_total", **HEALTHZ, status="200")] == k
        assert scraped[key("potluck_http_request_duration_seconds_count", **HEALTHZ)] == k
        assert metrics_dir[0].is_dir()
    finally:
        api.stop()
    assert not metrics_dir[0].exists()  # removed when the server stopped
