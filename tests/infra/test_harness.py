"""Smoke tests of the test harness itself: real replication lag control and Redis fault injection."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.harness import HarnessError, PgCluster, RedisServer

TABLE = "harness_smoke"  # in the "postgres" database, away from the app's schema


def _sql(pg: PgCluster, sql: str, role: str | int = "primary") -> str:
    return pg.psql(sql, role=role, dbname="postgres")


def _count(pg: PgCluster, marker: str, role: str | int) -> int:
    return int(_sql(pg, f"SELECT count(*) FROM {TABLE} WHERE marker = '{marker}'", role))


def _insert(pg: PgCluster) -> str:
    marker = uuid.uuid4().hex
    _sql(pg, f"CREATE TABLE IF NOT EXISTS {TABLE} (marker text); INSERT INTO {TABLE} VALUES ('{marker}')")
    return marker


def _client(server: RedisServer, timeout: float | None = None) -> redis.Redis:
    # redis-py 8 retries timeouts 10 times with exponential backoff by default: disable for fast failures.
    return redis.Redis.from_url(
        server.url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def test_cluster_topology(pg_cluster: PgCluster) -> None:
    assert len(pg_cluster.replica_ports) == 2
    assert len({pg_cluster.primary_port, *pg_cluster.replica_ports}) == 3
    assert pg_cluster.dsn() == f"postgresql+asyncpg://postgres@127.0.0.1:{pg_cluster.primary_port}/potluck"
    assert pg_cluster.dsn(1).endswith(f":{pg_cluster.replica_ports[1]}/potluck")
    assert pg_cluster.libpq_dsn(0) == (
        f"host=127.0.0.1 port={pg_cluster.replica_ports[0]} user=postgres dbname=potluck"
    )
    streaming = _sql(
        pg_cluster, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1"
    )
    assert streaming.splitlines() == ["r1", "r2"]
    assert pg_cluster.psql("SELECT current_database(), pg_is_in_recovery()") == "potluck|f"
    for i in range(2):
        assert pg_cluster.psql("SELECT current_database(), pg_is_in_recovery()", role=i) == "potluck|t"
        assert pg_cluster.psql("SHOW max_connections", role=i) == "200"


def test_replicas_see_primary_writes(pg_cluster: PgCluster) -> None:
    marker = _insert(pg_cluster)
    pg_cluster.wait_replicas_caught_up()
    assert [_count(pg_cluster, marker, i) for i in range(2)] == [1, 1]


def test_replica_is_read_only(pg_cluster: PgCluster) -> None:
    _insert(pg_cluster)
    pg_cluster.wait_replicas_caught_up()
    with pytest.raises(HarnessError, match="read-only transaction"):
        _sql(pg_cluster, f"INSERT INTO {TABLE} VALUES ('nope')", role=0)


def test_paused_replica_lags_behind(pg_cluster: PgCluster) -> None:
    _insert(pg_cluster)
    pg_cluster.wait_replicas_caught_up()
    pg_cluster.pause_replay(0)
    try:
        marker = _insert(pg_cluster)
        pg_cluster.wait_replicas_caught_up()  # skips the paused replica
        assert _count(pg_cluster, marker, 1) == 1
        assert _count(pg_cluster, marker, 0) == 0
        with pytest.raises(TimeoutError):
            pg_cluster.wait_replicas_caught_up(timeout=0.2, replicas=[0])
    finally:
        pg_cluster.resume_replay(0)
    pg_cluster.wait_replicas_caught_up()
    assert _count(pg_cluster, marker, 0) == 1


def test_stopped_replica_catches_up_after_restart(pg_cluster: PgCluster) -> None:
    port = pg_cluster.replica_ports[1]
    pg_cluster.stop_replica(1)
    try:
        with pytest.raises(HarnessError, match="psql on port"):
            _sql(pg_cluster, "SELECT 1", role=1)
        marker = _insert(pg_cluster)
    finally:
        pg_cluster.start_replica(1)
    assert pg_cluster.replica_ports[1] == port
    pg_cluster.wait_replicas_caught_up()
    assert _count(pg_cluster, marker, 1) == 1


def test_redis_set_get(redis_server: RedisServer) -> None:
    with _client(redis_server, timeout=1) as client:
        client.set("harness-smoke:key", "value")
        assert client.get("harness-smoke:key") == b"value"


def test_paused_redis_times_out_then_recovers(redis_server: RedisServer) -> None:
    with _client(redis_server, timeout=0.05) as client:
        client.set("harness-smoke:paused", "1")
        redis_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                client.get("harness-smoke:paused")
            assert time.monotonic() - started < 1
        finally:
            redis_server.resume()
        assert client.get("harness-smoke:paused") == b"1"


def test_redis_kill_and_restart_on_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    with _client(redis_server, timeout=1) as client:
        client.set("harness-smoke:lost", "1")
        redis_server.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("harness-smoke:lost")
        redis_server.restart()
        assert redis_server.port == port
        assert client.get("harness-smoke:lost") is None  # no persistence
