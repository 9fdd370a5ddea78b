"""What a scrape of /metrics returns: this process's registry, or every process's when they share the port."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from potluck.observability import multiprocess


@dataclass(frozen=True)
class MetricsExposition:
    registry: CollectorRegistry
    # Values that are the same from any process (Redis INFO): in multiprocess mode, read from the answering one.
    process_wide: tuple[Collector, ...] = ()

    async def render(self) -> bytes:
        """Prometheus text exposition. In multiprocess mode the counters, histograms and gauges come merged from
        every process's files (read in a thread: that is file I/O)."""
        path = multiprocess.directory()
        if path is None:
            return generate_latest(self.registry)
        registry = multiprocess.exposition_registry(path, self.process_wide)
        return await asyncio.to_thread(generate_latest, registry)
