"""Connection pool use per database node (potluck_db_pool_*), read from the pools at scrape time.

Reading a pool's counters is a few integer reads in memory: no I/O, so the scrape does it directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from potluck.db.engine import Database

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
    """potluck_db_pool_checked_out and potluck_db_pool_size by {role, node}; engines of one node are summed."""

    def __init__(self, targets: Iterable[PoolTarget], registry: CollectorRegistry | None = None) -> None:
        self.targets: Sequence[PoolTarget] = list(targets)
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        checked_out, size = self._families()
        totals: dict[tuple[str, str], list[int]] = {}
        for role, node, engine in self.targets:
            pool = getattr(getattr(engine, "sync_engine", engine), "pool", None)
            # Only queue pools count connections (SQLite :memory: and NullPool have nothing to report).
            if pool is None or not hasattr(pool, "checkedout") or not hasattr(pool, "size"):
                continue
            total = totals.setdefault((role, node), [0, 0])
            total[0] += int(pool.checkedout())
            total[1] += int(pool.size())
        for (role, node), (used, configured) in sorted(totals.items()):
            checked_out.add_metric([role, node], used)
            size.add_metric([role, node], configured)
        yield checked_out
        yield size

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "potluck_db_pool_checked_out",
                "Connections in use (checked out of the pool, overflow included), by database role and node.",
                labels=["role", "node"],
            ),
            GaugeMetricFamily(
                "potluck_db_pool_size",
                "Connections the pool keeps (pool_size; up to max_overflow more may be opened).",
                labels=["role", "node"],
            ),
        )
