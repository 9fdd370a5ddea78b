"""Observability: HTTP metrics, structured logs with request ids, optional tracing, Redis and pool metrics."""

from potluck.observability.db_pool import DbPoolCollector, database_pools
from potluck.observability.http_metrics import HttpMetrics, HttpMetricsMiddleware
from potluck.observability.logging import RequestIdMiddleware, configure_logging, current_request_id
from potluck.observability.redis_info import RedisInfoPoller
from potluck.observability.tracing import Tracing, setup_tracing

__all__ = [
    "DbPoolCollector",
    "HttpMetrics",
    "HttpMetricsMiddleware",
    "RedisInfoPoller",
    "RequestIdMiddleware",
    "Tracing",
    "configure_logging",
    "current_request_id",
    "database_pools",
    "setup_tracing",
]
