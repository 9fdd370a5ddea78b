"""Cache metrics, per family and tier, on the container's registry (potluck_cache_*).

The gauges describe one process's cache; `multiprocess_mode` says how a server's processes add up when they
share one /metrics (observability/multiprocess.py): waiting invalidations are summed, the breaker counts as open
while any process has it open, the first tier as in use only while every process uses it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.hits = Counter("potluck_cache_hits_total", "Cache hits.", ["family", "tier"], registry=registry)
        self.misses = Counter("potluck_cache_misses_total", "Cache misses.", ["family", "tier"], registry=registry)
        self.fills = Counter(
            "potluck_cache_fills_total",
            "Second-tier fills by outcome (stored, refused: a writer invalidated the key meanwhile).",
            ["family", "outcome"],
            registry=registry,
        )
        self.lease_waits = Counter(
            "potluck_cache_lease_waits_total",
            "Readers that waited for another reader's fill, by outcome (served, timeout, invalidated).",
            ["family", "outcome"],
            registry=registry,
        )
        self.errors = Counter(
            "potluck_cache_errors_total", "Store errors and timeouts.", ["family", "operation"], registry=registry
        )
        self.bypasses = Counter(
            "potluck_cache_bypasses_total",
            "Reads sent straight to the database because the breaker is open.",
            ["family"],
            registry=registry,
        )
        self.time_saved = Counter(
            "potluck_cache_time_saved_seconds_total",
            "Database time that hits avoided (the recorded cost of each fill).",
            ["family"],
            registry=registry,
        )
        self.early_refreshes = Counter(
            "potluck_cache_early_refreshes_total",
            "Hot entries refreshed before expiry (XFetch).",
            ["family"],
            registry=registry,
        )
        self.loads = Histogram(
            "potluck_cache_load_seconds", "Time to load a value from the database.", ["family"], registry=registry
        )
        self.invalidations = Counter(
            "potluck_cache_invalidations_total",
            "Keys invalidated after commit, by outcome (sent, deferred: the store was unavailable).",
            ["outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "potluck_cache_pending_invalidations",
            "Invalidations waiting for the store.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.breaker_open = Gauge(
            "potluck_cache_breaker_open",
            "1 while the circuit breaker keeps requests off the store.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.local_enabled = Gauge(
            "potluck_cache_local_enabled",
            "1 while the in-process tier is in use (its invalidation subscription is up).",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.ack_timeouts = Counter(
            "potluck_cache_invalidation_ack_timeouts_total",
            "Invalidations not acknowledged by every API process in time.",
            registry=registry,
        )
