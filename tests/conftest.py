"""Root pytest configuration: real servers on loopback, started once per session on first use.

* ``pg_cluster``: PostgreSQL 15 primary + 2 streaming replicas (tests.harness.PgCluster), database
  ``potluck`` on every node. ``pg_cluster.dsn()`` / ``pg_cluster.dsn(0)`` give SQLAlchemy asyncpg URLs.
* ``redis_server``: Redis 7 without persistence (tests.harness.RedisServer), ``redis_server.url``.
* ``sentinel_set``: per role (cache, coord) a Redis master and replica under three Sentinels
  (tests.harness.SentinelSet), ``sentinel_set.addresses``.
* ``patroni_cluster``: etcd + three Patroni-managed PostgreSQL 15 nodes (tests.harness.PatroniCluster), database
  ``potluck``; ``primary_url()`` is the multi-host URL that finds the leader. Only tests that need Patroni use it.

Tests that pause, stop or kill a server must restore it (try/finally): the servers are shared.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from tests.harness import PatroniCluster, PgCluster, RedisServer, SentinelSet

# Hypothesis's per-example deadline times a test on a shared, loaded machine: what these tests check is behaviour;
# speed is measured in bench/ (house rule), so no example fails for being slow.
hypothesis_settings.register_profile("potluck", deadline=None)
hypothesis_settings.load_profile("potluck")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    with PgCluster(replicas=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def sentinel_set() -> Iterator[SentinelSet]:
    with SentinelSet() as sentinels:
        yield sentinels


@pytest.fixture(scope="session")
def patroni_cluster() -> Iterator[PatroniCluster]:
    with PatroniCluster() as cluster:
        yield cluster
