"""Multiprocess metrics: the directory's life, how each gauge combines across processes, reaping the killed,
the worker's single port; and single-process mode (the default, and every other test) left as it was.

Several processes are simulated in this one with prometheus_client's own hook: a value class per fake pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from potluck.app import create_app
from potluck.cache.metrics import CacheMetrics
from potluck.config import AuthSettings, DatabaseSettings, ObservabilitySettings, Settings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from potluck.db.replicas import ReplicaMonitor
from potluck.events.metrics import EventsMetrics
from potluck.observability import multiprocess
from potluck.observability.db_pool import DbPoolCollector
from potluck.observability.http_metrics import HttpMetrics
from potluck_ops.ports import free_port
from tests.support.app import METRICS_PORT, METRICS_URL
from tests.support.eventually import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(registry: CollectorRegistry) -> Samples:
    """Every sample of a scrape, by (name, sorted labels)."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Multiprocess mode in this process for one test; `as_process(pid)` makes the next metrics pid's."""
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv(multiprocess.ENV, str(path))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored after the test
    yield path
    values.close_all_multiprocess_files()  # type: ignore[no-untyped-call]


def as_process(pid: int) -> None:
    values.ValueClass = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]


def merged(path: Path) -> Samples:
    """The files merged as a scrape merges them, without reaping (the fake pids are not processes)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return samples(registry)


# --- single-process mode ----------------------------------------------------------------------------------------


def test_off_by_default() -> None:
    assert multiprocess.directory() is None
    assert not getattr(values.ValueClass, "_multiprocess", False)


def test_the_variable_alone_does_not_switch_it_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Set after prometheus_client chose in-memory values, the files would stay empty: still single-process."""
    monkeypatch.setenv(multiprocess.ENV, str(tmp_path))
    assert multiprocess.directory() is None


async def test_single_process_metrics_is_this_process_s_registry(tmp_path: Path) -> None:
    database = tmp_path / "potluck.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}", DatabaseSettings())
    await upgrade(engine)
    await engine.dispose()
    settings = Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{database}"),
        auth=AuthSettings(secret_key="test-secret-key-that-is-long-enough-for-hs256"),
        observability=ObservabilitySettings(metrics_port=METRICS_PORT),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://potluck.test") as client:
            for _ in range(3):
                assert (await client.get("/healthz")).status_code == 200
            text = (await client.get(METRICS_URL)).text
            expected = generate_latest(app.state.container.registry).decode()
    scraped = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples if "healthz" in str(s)}
    assert scraped["potluck_http_requests_total"].value == 3
    assert scraped["potluck_http_request_duration_seconds_count"].value == 3
    assert "potluck_http_requests_created" in scraped  # in-memory counters carry their creation time
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names == {f.name for f in text_string_to_metric_families(expected)}
    assert "potluck_db_pool_size" in names  # the pool collector reads the pools at scrape time, as before


# --- the directory ----------------------------------------------------------------------------------------------


def test_one_process_and_nothing_configured_stays_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    with multiprocess.server_directory(None, processes=1) as path:
        assert path is None
        assert multiprocess.ENV not in os.environ


def test_several_processes_get_a_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    before = values.ValueClass
    with multiprocess.server_directory(None, processes=3) as path:
        assert path is not None
        assert path.is_dir()
        assert os.environ[multiprocess.ENV] == str(path)
        assert multiprocess.directory() == path  # the value class switched too: metrics made now are files
    assert not path.exists()
    assert multiprocess.ENV not in os.environ
    assert values.ValueClass is before


def test_a_configured_directory_is_emptied_of_metric_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(multiprocess.ENV, str(tmp_path / "from-env"))
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "counter_123.db").write_bytes(b"stale")
    (configured / "README").write_text("an operator's")
    with multiprocess.server_directory(configured, processes=1) as path:
        assert path == configured  # the setting wins over the environment
        assert sorted(p.name for p in configured.iterdir()) == ["README"]
        assert os.environ[multiprocess.ENV] == str(configured)
    assert configured.is_dir()  # not ours to remove
    assert os.environ[multiprocess.ENV] == str(tmp_path / "from-env")


def test_a_directory_holding_another_database_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pointed at the data directory by mistake: potluck.db must survive, and the server must say why it stops."""
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    (tmp_path / "potluck.db").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "gauge_livesum_7.db").write_bytes(b"stale")
    with pytest.raises(ValueError, match=r"potluck\.db"), multiprocess.server_directory(tmp_path, processes=2):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gauge_livesum_7.db", "potluck.db"]
    assert multiprocess.ENV not in os.environ


def test_the_environment_s_directory_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(multiprocess.ENV, str(tmp_path / "env"))
    with multiprocess.server_directory(None, processes=1) as path:
        assert path == tmp_path / "env"
        assert path.is_dir()


# --- how the metrics combine ------------------------------------------------------------------------------------


def test_counters_and_histograms_add_up_and_gauges_combine_by_their_mode(metrics_dir: Path) -> None:
    for pid, requests, in_flight, breaker, local, backlog in ((101, 3, 2, 0, 1, 7), (102, 4, 1, 1, 0, 9)):
        as_process(pid)
        registry = CollectorRegistry()
        http, cache, events = HttpMetrics(registry), CacheMetrics(registry), EventsMetrics(registry)
        for _ in range(requests):
            http.requests.labels("GET", "/healthz", "200").inc()
            http.duration.labels("GET", "/healthz").observe(0.003)
        http.in_flight.inc(in_flight)
        cache.pending.set(pid - 100)
        cache.breaker_open.set(breaker)
        cache.local_enabled.set(local)
        events.backlog.set(backlog)  # pid 102 read the outbox last
        monitor = ReplicaMonitor(None, [], registry)  # type: ignore[arg-type]  # never started
        monitor.lag_gauge.labels("r1").set(0.1 * pid - 10)
        monitor.healthy_gauge.labels("r1").set(1 if pid == 101 else 0)
        monitor.primary_up.set(1)

    got = merged(metrics_dir)
    route = (("method", "GET"), ("route", "/healthz"))
    assert got[("potluck_http_requests_total", (*route, ("status", "200")))] == 7
    assert got[("potluck_http_request_duration_seconds_count", route)] == 7
    assert got[("potluck_http_request_duration_seconds_bucket", (("le", "0.005"), *route))] == 7
    assert got[("potluck_http_requests_in_flight", ())] == 3  # livesum
    assert got[("potluck_cache_pending_invalidations", ())] == 3  # livesum
    assert got[("potluck_cache_breaker_open", ())] == 1  # livemax: open somewhere
    assert got[("potluck_cache_local_enabled", ())] == 0  # livemin: in use everywhere, or not
    assert got[("potluck_outbox_backlog", ())] == 9  # livemostrecent
    assert got[("potluck_db_replication_lag_seconds", (("replica", "r1"),))] == pytest.approx(0.2)  # livemax
    assert got[("potluck_db_replica_healthy", (("replica", "r1"),))] == 0  # livemin
    assert got[("potluck_db_up", ())] == 1
    assert not any(("pid", str(p)) in labels for _, labels in got for p in (101, 102))  # no per-process series


async def test_pool_use_is_written_per_process_and_summed(metrics_dir: Path, tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", pool_size=3)
    collectors = []
    try:
        for pid in (201, 202):
            as_process(pid)
            registry = CollectorRegistry()
            collectors.append(DbPoolCollector([("primary", "primary", engine)], registry, interval=60))
            assert collectors[-1].gauges is not None  # gauges, not a scrape-time collector, in this mode
        labels = (("node", "primary"), ("role", "primary"))
        assert merged(metrics_dir)[("potluck_db_pool_size", labels)] == 6
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            collectors[0].sample()  # what its thread does every interval
            assert merged(metrics_dir)[("potluck_db_pool_checked_out", labels)] == 1
    finally:
        for collector in collectors:
            collector.close()
        await engine.dispose()


async def test_the_container_keeps_its_pool_sampler_alive(metrics_dir: Path, tmp_path: Path) -> None:
    """Built by bootstrap and referred to by nothing else, the sampler must still sample (it is kept weakly)."""
    import gc

    from potluck.bootstrap import bootstrap
    from potluck.config import DatabaseSettings, Settings

    as_process(os.getpid())
    settings = Settings(
        data_dir=tmp_path / "data", database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    )
    container = bootstrap(settings)
    try:
        gc.collect()
        labels = (("node", "primary"), ("role", "primary"))
        async with container.database.primary.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

            def sampled() -> bool:
                gc.collect()
                return merged(metrics_dir).get(("potluck_db_pool_checked_out", labels)) == 1

            # The thread samples every SAMPLE_INTERVAL_SECONDS.
            await eventually(sampled, 4, interval=0.1, message="the pool sampler stopped: nothing holds it")
    finally:
        await container.aclose()


def test_a_killed_process_s_gauges_are_reaped_and_its_counters_kept(metrics_dir: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead, alive = int(gone.stdout), os.getpid()
    for pid in (dead, alive):
        as_process(pid)
        registry = CollectorRegistry()
        http = HttpMetrics(registry)
        http.requests.labels("GET", "/healthz", "200").inc(5)
        http.in_flight.inc()  # the dead one was killed mid-request

    scraped = samples(multiprocess.exposition_registry(metrics_dir))
    assert scraped[("potluck_http_requests_in_flight", ())] == 1  # only the live process's request
    assert scraped[("potluck_http_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200")))] == 10
    names = sorted(p.name for p in metrics_dir.iterdir())
    assert f"gauge_livesum_{dead}.db" not in names
    assert f"counter_{dead}.db" in names
    assert f"gauge_livesum_{alive}.db" in names


def test_a_process_that_shuts_down_marks_itself_dead(metrics_dir: Path) -> None:
    as_process(os.getpid())
    HttpMetrics(CollectorRegistry()).in_flight.inc()
    assert (metrics_dir / f"gauge_livesum_{os.getpid()}.db").exists()
    multiprocess.mark_dead()
    assert not (metrics_dir / f"gauge_livesum_{os.getpid()}.db").exists()


def test_global_collectors_are_served_beside_the_merged_files(metrics_dir: Path) -> None:
    from prometheus_client.core import GaugeMetricFamily

    class Info:
        def collect(self) -> Iterator[GaugeMetricFamily]:
            yield GaugeMetricFamily("potluck_redis_up", "up", value=1)

    assert samples(multiprocess.exposition_registry(metrics_dir, [Info()]))[("potluck_redis_up", ())] == 1


# --- the worker: one port for the pool --------------------------------------------------------------------------

WORKER_SCRIPT = textwrap.dedent(
    """
    import os, sys, urllib.request
    from pathlib import Path
    from prometheus_client import CollectorRegistry
    from potluck.config import ObservabilitySettings, Settings, WorkerSettings
    from potluck.events.metrics import EventsMetrics
    from potluck.worker import runtime

    port, path = int(sys.argv[1]), Path(sys.argv[2])
    settings = Settings(
        worker=WorkerSettings(metrics_port=port), observability=ObservabilitySettings(multiprocess_dir=path)
    )
    assert runtime.serve_pool_metrics(settings) == path  # the main process, before the pool forks
    children = []
    for runs in (3, 6):  # two pool processes
        pid = os.fork()
        if pid == 0:
            metrics = EventsMetrics(CollectorRegistry())
            for _ in range(runs):
                metrics.task_duration.labels("events.relay").observe(0.01)
            metrics.backlog.set(4)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    print(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
    """
)


def test_the_worker_serves_every_pool_process_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != multiprocess.ENV}
    result = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, str(port), str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(result.stdout)
        for s in f.samples
    }
    assert scraped[("potluck_task_duration_seconds_count", (("task", "events.relay"),))] == 9
    # Both pool processes exited without shutting down: the scrape reaped their live gauges.
    assert ("potluck_outbox_backlog", ()) not in scraped


def test_the_worker_serves_nothing_more_without_a_port() -> None:
    from potluck.worker import runtime

    assert runtime.serve_pool_metrics(Settings()) is None
    assert multiprocess.directory() is None
