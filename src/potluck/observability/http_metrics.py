"""RED metrics for the HTTP API (potluck_http_*), labelled by route template: a pure ASGI middleware.

The `route` label is the matched route's template (`/api/v1/recipes/{recipe_id}`), never the raw path, so the
number of series is bounded by the number of routes. Requests that match no route are labelled `<unmatched>`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"
# Bucket edges at the design's targets (p50 < 100 ms, p95 < 500 ms, p99 < 1 s) and the p95 alert (1 s).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
# Any other method is labelled _OTHER: a client must not be able to mint label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DEFAULT_EXCLUDED_PATHS = frozenset({"/metrics"})
# Status of a request cancelled before it answered (the server shut down mid-request): not a server error.
CANCELLED_STATUS = "499"

RegistrySource = CollectorRegistry | Callable[[], CollectorRegistry]


class HttpMetrics:
    """The potluck_http_* metrics on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "potluck_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "potluck_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response, by method and route template.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # Multiprocess mode: the server's requests in flight, summed over its live worker processes.
        self.in_flight = Gauge(
            "potluck_http_requests_in_flight",
            "HTTP requests being handled right now.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def observe(self, method: str, route: str, status: str, elapsed: float) -> None:
        self.requests.labels(method, route, status).inc()
        self.duration.labels(method, route).observe(elapsed)


class HttpMetricsSource:
    """The `HttpMetrics` of the app's current registry, built at the first request that needs them.

    `registry` is a registry, or a function that returns one: the app's registry is built in its lifespan, after
    the middleware stack, so `registry=lambda: app.state.container.registry` resolves it at the first request
    (and again if a new lifespan built a new registry). One source serves the middleware and the recipe fast path
    (which answers before it), so both count into the same series.
    """

    def __init__(self, registry: RegistrySource) -> None:
        self._source = registry
        self._registry: CollectorRegistry | None = None
        self._metrics: HttpMetrics | None = None

    @property
    def metrics(self) -> HttpMetrics:
        registry = self._source if isinstance(self._source, CollectorRegistry) else self._source()
        if self._metrics is None or registry is not self._registry:
            self._metrics = HttpMetrics(registry)
            self._registry = registry
        return self._metrics


class HttpMetricsMiddleware:
    """Counts, times and gauges every HTTP request except those to `excluded_paths` (the scrape endpoint).

    `registry`: a registry, a function returning one, or a shared `HttpMetricsSource`.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: RegistrySource | HttpMetricsSource,
        excluded_paths: Collection[str] = DEFAULT_EXCLUDED_PATHS,
    ) -> None:
        self.app = app
        self.source = registry if isinstance(registry, HttpMetricsSource) else HttpMetricsSource(registry)
        self.excluded_paths = frozenset(excluded_paths)

    @property
    def metrics(self) -> HttpMetrics:
        return self.source.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The path as routed: without the root path the app is served under (kept for the template prefix).
        root_path: str = scope.get("root_path", "")
        path = _strip_prefix(scope["path"], root_path)
        if path in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        status: str | None = None

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        except asyncio.CancelledError:
            status = status or CANCELLED_STATUS
            raise
        except BaseException:
            # The server-error handler (outside this middleware) answers 500 unless a response had begun.
            status = status or "500"
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_flight.dec()
            metrics.observe(method, route_template(scope, path), status or "500", elapsed)


def route_template(scope: Scope, path: str) -> str:
    """The template of the route that handled `scope`, prefixes included; `<unmatched>` when none matched.

    `scope["route"]` (set by the router) holds a template relative to the router, mount or included router it
    belongs to, so the prefix is recovered from the routed path: the shortest leading part whose remainder the
    route's pattern matches in full. Path parameters in a prefix are put back as `{name}`.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    pattern = getattr(route, "path_regex", None)
    if not isinstance(pattern, re.Pattern) or pattern.fullmatch(path):
        return template or "/"
    for index, char in enumerate(path):
        if char == "/" and index > 0 and pattern.fullmatch(path[index:]):
            return _parameterize_prefix(path[:index], scope, route) + template
    return UNMATCHED


def _parameterize_prefix(prefix: str, scope: Scope, route: Any) -> str:
    # Parameters of the prefix are the matched ones the route's own template does not declare.
    own = getattr(route, "param_convertors", None) or {}
    params: dict[str, Any] = scope.get("path_params") or {}
    foreign = {str(value): name for name, value in params.items() if name not in own}
    if not foreign:
        return prefix
    return "/".join(f"{{{foreign[part]}}}" if part in foreign else part for part in prefix.split("/"))


def _strip_prefix(path: str, root_path: str) -> str:
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path
