"""Connection pool use per database node (potluck_db_pool_*), read from the pools at scrape time.

Reading a pool's counters is a few integer reads in memory: no I/O, so the scrape does it directly.

In multiprocess mode (observability/multiprocess.py) a scrape reaches one process and cannot read the others'
pools, so each process writes its numbers to gauges instead, from a thread every `interval` seconds; the scrape
sums them over live processes (the server's connections per node). They are then up to `interval` old.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from potluck.observability import multiprocess

if TYPE_CHECKING:
    from potluck.db.engine import Database

logger = logging.getLogger("potluck.observability.db_pool")
CHECKED_OUT = "potluck_db_pool_checked_out"
CHECKED_OUT_HELP = "Connections in use (checked out of the pool, overflow included), by database role and node."
SIZE = "potluck_db_pool_size"
SIZE_HELP = "Connections the pool keeps (pool_size; up to max_overflow more may be opened)."
SAMPLE_INTERVAL_SECONDS = 1.0

# (role, node, engine): the labels of potluck_db_queries_total, so the panels line up.
PoolTarget = tuple[str, str, Any]


def database_pools(database: Database) -> list[PoolTarget]:
    """The primary's engines (writer, and reader where separate) and each replica's."""
    targets: list[PoolTarget] = [("primary", "primary", database.primary)]
    if database.primary_reader is not database.primary:
        targets.append(("primary", "primary", database.primary_reader))
    targets.extend(("replica", state.name, state.engine) for state in database.replica_states)
    return targets


class DbPoolCollector(Collector):
    """potluck_db_pool_checked_out and potluck_db_pool_size by {role, node}; engines of one node are summed.

    In multiprocess mode it writes `livesum` gauges on `registry` (sampled every `interval` seconds) instead of
    registering itself; `close()` stops the sampling, as does dropping the collector.
    """

    def __init__(
        self,
        targets: Iterable[PoolTarget] | Callable[[], Iterable[PoolTarget]],
        registry: CollectorRegistry | None = None,
        *,
        interval: float = SAMPLE_INTERVAL_SECONDS,
    ) -> None:
        """`targets`: the engines, or a function giving them at each reading (a replica set that changes at run
        time, under Patroni)."""
        fixed: Sequence[PoolTarget] = [] if callable(targets) else list(targets)
        self._targets: Callable[[], Iterable[PoolTarget]] = targets if callable(targets) else (lambda: fixed)
        self.gauges: tuple[Gauge, Gauge] | None = None
        self._stop = threading.Event()
        if multiprocess.directory() is None:
            if registry is not None:
                registry.register(self)
            return
        self.gauges = (
            Gauge(CHECKED_OUT, CHECKED_OUT_HELP, ["role", "node"], registry=registry, multiprocess_mode="livesum"),
            Gauge(SIZE, SIZE_HELP, ["role", "node"], registry=registry, multiprocess_mode="livesum"),
        )
        self.sample()
        threading.Thread(
            target=_sample_every,
            args=(weakref.ref(self), self._stop, interval),
            name="potluck-db-pool-gauges",
            daemon=True,
        ).start()

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        checked_out, size = self._families()
        for (role, node), (used, configured) in self.totals().items():
            checked_out.add_metric([role, node], used)
            size.add_metric([role, node], configured)
        yield checked_out
        yield size

    def totals(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(checked out, size) by (role, node), summed over the node's engines, now."""
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for role, node, engine in self._targets():
            pool = getattr(getattr(engine, "sync_engine", engine), "pool", None)
            # Only queue pools count connections (SQLite :memory: and NullPool have nothing to report).
            if pool is None or not hasattr(pool, "checkedout") or not hasattr(pool, "size"):
                continue
            used, configured = totals.get((role, node), (0, 0))
            totals[(role, node)] = (used + int(pool.checkedout()), configured + int(pool.size()))
        return dict(sorted(totals.items()))

    def sample(self) -> None:
        """Write the current totals to the gauges (multiprocess mode; nothing to do otherwise)."""
        if self.gauges is None:
            return
        checked_out, size = self.gauges
        for (role, node), (used, configured) in self.totals().items():
            checked_out.labels(role, node).set(used)
            size.labels(role, node).set(configured)

    def close(self) -> None:
        """Stop sampling (multiprocess mode)."""
        self._stop.set()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(CHECKED_OUT, CHECKED_OUT_HELP, labels=["role", "node"]),
            GaugeMetricFamily(SIZE, SIZE_HELP, labels=["role", "node"]),
        )


def _sample_every(collector: weakref.ref[DbPoolCollector], stop: threading.Event, interval: float) -> None:
    # Holds the collector only while sampling, so a collector nobody keeps ends its thread.
    while not stop.wait(interval):
        current = collector()
        if current is None:
            return
        try:
            current.sample()
        except Exception:  # a pool mid-dispose: try again next time, never end the thread
            logger.debug("db_pool.sample_failed", exc_info=True)
        del current
