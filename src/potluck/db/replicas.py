"""Which replicas may serve reads: a monitor measures each one at a short interval.

A replica leaves the rotation when it is unreachable, when its replay is paused, or when it is more than
`max_lag_seconds` behind the primary; it comes back once it has caught up. The monitor also remembers each
replica's replayed position, which read-your-writes compares with a client's consistency token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from potluck.db.lag import PrimaryHistory, parse_lsn

logger = logging.getLogger("potluck.db.replicas")

# The primary's insert position and its timeline (the first 8 hex digits of the current WAL segment's name).
PRIMARY_POSITION = (
    "SELECT pg_current_wal_lsn()::text, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
)
REPLICA_POSITION = (
    "SELECT pg_last_wal_replay_lsn()::text, pg_is_wal_replay_paused(), (SELECT received_tli FROM pg_stat_wal_receiver)"
)


@dataclass
class ReplicaState:
    name: str
    engine: AsyncEngine
    healthy: bool = False  # not until first measured
    replayed_lsn: int = 0
    lag_seconds: float = float("inf")
    lag_bytes: int = 0
    paused: bool = False
    timeline: int = 0  # the timeline its WAL receiver streams (0: not streaming)
    down_since: float = 0.0  # when a request last found it failing (time.monotonic()); see mark_down


class ReplicaMonitor:
    def __init__(
        self,
        primary: AsyncEngine,
        replicas: list[ReplicaState],
        registry: CollectorRegistry,
        *,
        interval: float = 0.5,
        max_lag_seconds: float = 1.0,
        timeout: float = 1.0,
        on_driver: bool = True,
    ) -> None:
        self.primary = primary
        # Probes on asyncpg outside a transaction (`_fetch_one`) where the Database runs reads so
        # (`Database._prepared_on_driver`): not behind PgBouncer in transaction mode, where a statement's prepare and
        # execute must share a transaction.
        self.on_driver = on_driver
        self.replicas = replicas
        self.interval = interval
        self.max_lag_seconds = max_lag_seconds
        self.timeout = timeout
        self.history = PrimaryHistory()
        self.timeline = 0  # the primary's, from its current WAL segment's name (0: not known yet)
        self._task: asyncio.Task[None] | None = None
        # Each process measures for itself; where a server's processes share one /metrics, the worst live view
        # is reported: the largest lag, a replica healthy (or the primary up) only if every process says so.
        self.lag_gauge = Gauge(
            "potluck_db_replication_lag_seconds",
            "Replay lag of each replica.",
            ["replica"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.lag_bytes_gauge = Gauge(
            "potluck_db_replication_lag_bytes",
            "WAL bytes each replica has yet to replay.",
            ["replica"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.healthy_gauge = Gauge(
            "potluck_db_replica_healthy",
            "1 while the replica is in the read rotation.",
            ["replica"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.primary_up = Gauge(
            "potluck_db_up", "1 while the primary answers.", registry=registry, multiprocess_mode="livemin"
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="potluck-replica-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """Measure the primary, then every replica, once."""
        try:
            async with asyncio.timeout(self.timeout):
                lsn, timeline = await _fetch_one(self.primary, PRIMARY_POSITION, on_driver=self.on_driver)
            if timeline != self.timeline:
                # A promotion: positions sampled on the old primary say nothing about the new one's.
                self.history = PrimaryHistory()
                self.timeline = timeline
            self.history.record(time.monotonic(), parse_lsn(lsn))
            self.primary_up.set(1)
        except Exception as exc:  # the primary is down: replicas can still serve reads
            self.primary_up.set(0)
            logger.warning("db.primary_unreachable", extra={"error": repr(exc)})
        await asyncio.gather(*(self._check_replica(r) for r in self.replicas))

    async def _check_replica(self, replica: ReplicaState) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                row = await _fetch_one(replica.engine, REPLICA_POSITION, on_driver=self.on_driver)
        except Exception as exc:
            self._set(replica, healthy=False)
            replica.lag_seconds = float("inf")
            logger.info("db.replica_unreachable", extra={"replica": replica.name, "error": repr(exc)})
            return
        replayed = parse_lsn(row[0]) if row[0] else 0
        replica.replayed_lsn = replayed
        replica.paused = bool(row[1])
        replica.timeline = row[2] or 0
        replica.lag_seconds = self.history.lag_seconds(replayed, time.monotonic())
        replica.lag_bytes = max(0, self.history.latest - replayed)
        self.lag_gauge.labels(replica.name).set(replica.lag_seconds)
        self.lag_bytes_gauge.labels(replica.name).set(replica.lag_bytes)
        caught_up = not replica.paused and replica.lag_seconds <= self.max_lag_seconds
        # Quarantine: a probe that began before a request found the replica failing says nothing about it now.
        self._set(replica, healthy=caught_up and started > replica.down_since)

    def _set(self, replica: ReplicaState, *, healthy: bool) -> None:
        if healthy != replica.healthy:
            logger.info("db.replica_rotation", extra={"replica": replica.name, "healthy": healthy})
        replica.healthy = healthy
        self.healthy_gauge.labels(replica.name).set(1 if healthy else 0)

    def forget(self, replica: ReplicaState) -> None:
        """It left the cluster's replica set: drop its series, so no alert fires on a node that is not a replica."""
        for gauge in (self.lag_gauge, self.lag_bytes_gauge, self.healthy_gauge):
            with contextlib.suppress(KeyError):
                gauge.remove(replica.name)

    def mark_down(self, replica: ReplicaState) -> None:
        """A request could not reach it: out of rotation until a probe that begins after now measures it."""
        replica.down_since = time.monotonic()
        self._set(replica, healthy=False)


async def _fetch_one(engine: AsyncEngine, sql: str, *, on_driver: bool) -> Any:
    """The one row of `sql`. `on_driver` (asyncpg only): on the driver itself, outside a transaction, one round
    trip once the connection has the statement (through SQLAlchemy a probe was BEGIN, the query, ROLLBACK: three,
    ~3 ms of CPU a second per process at two probes of three servers a second). Probes are not counted as queries
    (no cursor events): they are the monitor's, not the application's. A driver probe that fails or is cancelled
    mid-statement leaves the connection's state unknown: terminated at once (a graceful close could wait seconds on
    a silent server) and never returned to the pool."""
    async with engine.connect() as conn:
        if not on_driver:
            return (await conn.exec_driver_sql(sql)).one()
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        try:
            return await driver.fetchrow(sql)
        except BaseException:
            driver.terminate()
            await conn.invalidate()
            raise
