"""OpenTelemetry tracing, off by default: request, SQL, Redis and Celery spans exported over OTLP/HTTP.

`setup_tracing(settings)` returns a `Tracing`. When tracing is off it holds nothing and instruments nothing:
no provider, no patched library, no per-request work. When it is on, it owns one SDK tracer provider (a
`BatchSpanProcessor` in front of an `OTLPSpanExporter`) and hands it explicitly to each instrumentation:

- HTTP server spans come from FastAPI's own telemetry (`FastAPI(telemetry=tracing.telemetry(...))`), named by
  route template (`GET /api/v1/recipes/{recipe_id}`);
- SQL: every engine of each `Database` (primary, its reader, replicas), listened to engine by engine;
- Redis: redis-py's clients, sync and asyncio, patched process-wide for as long as this `Tracing` is live;
- Celery: task spans in a worker process, set up by `instrument_celery()` in `worker_process_init`.

The global tracer provider is left alone, so an application that did not enable tracing is never traced by
one that did earlier in the same process (tests build many apps); `shutdown()` exports what is buffered and
undoes the process-wide patches. `TraceContextFilter` puts `trace_id`/`span_id` on log records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from potluck import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastapi.telemetry import TelemetryConfig

    from potluck.config import Settings
    from potluck.db.engine import Database

logger = logging.getLogger("potluck.observability.tracing")

# Not worth a span each: the scrape and the probes run every few seconds.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

_lock = threading.Lock()
# Process-wide patches (Redis, Celery) belong to one live Tracing at a time; it undoes them at shutdown.
_patched: dict[str, Tracing] = {}


def untraced(scope: MutableMapping[str, Any]) -> bool:
    """For FastAPI(telemetry={"exclude": untraced}): no spans for the scrape endpoint and the probes."""
    return scope.get("path") in UNTRACED_PATHS


def name_server_span(method: str, route: str) -> None:
    """Names the current request's server span by route template, for a response sent before FastAPI routes
    the request (which is what names it otherwise): `name_server_span("GET", "/api/v1/recipes/{recipe_id}")`."""
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


def traces_endpoint(otlp_endpoint: str | None) -> str | None:
    """The OTLP/HTTP traces URL for a collector base URL (`http://collector:4318` -> `.../v1/traces`)."""
    if not otlp_endpoint:
        return None
    base = otlp_endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class RootSampler(Sampler):
    """Starts a trace only at a request or a task, and then only for `ratio` of them.

    A span with no parent that is a client call — a SQL statement or Redis command from a poller, the replica
    monitor, the relay loop — would make a one-span trace every few seconds: it is dropped, while the same call
    inside a request or a task is kept as that trace's child (`ParentBased` follows the parent's decision).
    """

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)
        self._drop = TraceIdRatioBased(0.0)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = self._drop if kind is SpanKind.CLIENT else self._ratio
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"RootSampler{{{self._ratio.get_description()}, client roots dropped}}"


def sampler(ratio: float) -> Sampler:
    """The sampler of every Potluck trace: a caller's decision (`traceparent`) if any, else `RootSampler`."""
    return ParentBased(root=RootSampler(ratio))


@dataclass(eq=False)
class Tracing:
    """What setup_tracing() built: a tracer provider when tracing is on (None when off), and what it traces."""

    provider: TracerProvider | None = None
    instrumented: list[str] = field(default_factory=list)
    _undo: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def telemetry(self, exclude: Callable[[MutableMapping[str, Any]], bool] | None = untraced) -> TelemetryConfig:
        """FastAPI's `telemetry=` argument: server spans from this provider (the global one when tracing is off,
        which is a no-op unless an agent configured it)."""
        return {"tracer_provider": self.provider, "exclude": exclude}

    def instrument(self, settings: Settings, databases: Sequence[Database]) -> None:
        """Spans for the SQL of these Databases (a process's own and its background pool) and for Redis commands."""
        if self.provider is None:
            return
        self.trace_databases(*databases)
        if settings.cache_redis is not None or settings.coord_redis is not None:
            self.trace_redis()

    def trace_databases(self, *databases: Database) -> None:
        """Spans for each statement on the engines of these Databases: primary, primary reader, replicas, and the
        replicas a Database adds later (under Patroni the replica set comes from the cluster at run time)."""
        engines = [e for db in databases for e in (db.primary, db.primary_reader, *db.replicas)]
        self.trace_engines(engines)
        for database in databases:
            listeners = database.engine_listeners

            def trace_new(engine: AsyncEngine) -> None:
                self.trace_engines([engine])

            listeners.append(trace_new)
            self._undo.append(partial(_discard, listeners, trace_new))

    def trace_engines(self, engines: Iterable[AsyncEngine | Engine]) -> None:
        """Spans for each statement on these engines (async engines are traced through their sync_engine).

        Listens to the engines' own events rather than patching `create_engine`: only these engines are traced,
        and they stop being traced with them. The instrumentation's declared range stops below SQLAlchemy 2.1;
        it only listens to `before/after_cursor_execute`, which 2.1 keeps (tests/integration/test_tracing.py).
        """
        if self.provider is None:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.instrumentation.sqlalchemy.version import __version__ as version
        from opentelemetry.metrics import get_meter

        scope = "opentelemetry.instrumentation.sqlalchemy"
        tracer = trace.get_tracer(scope, version, tracer_provider=self.provider)
        # The instrumentation wants a connection-usage counter; it stays a no-op unless a meter provider is set.
        usage = get_meter(scope, version).create_up_down_counter("db.client.connections.usage", unit="connections")
        # Each engine once (a Database's reader may be its writer), or every statement would make two spans.
        unique = {id(e): e for e in (e.sync_engine if isinstance(e, AsyncEngine) else e for e in engines)}
        for engine in unique.values():
            EngineTracer(tracer, engine, usage)  # type: ignore[no-untyped-call]
        if unique and "sqlalchemy" not in self.instrumented:
            self.instrumented.append("sqlalchemy")

    def trace_redis(self) -> None:
        """Spans for redis-py commands and pipelines (every client, sync and asyncio) until shutdown()."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        self._patch("redis", lambda: instrumentor.instrument(tracer_provider=self.provider), instrumentor.uninstrument)

    def trace_celery(self) -> None:
        """Spans for the Celery tasks this process runs (and sends), until shutdown()."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
        self._patch("celery", lambda: instrumentor.instrument(tracer_provider=self.provider), instrumentor.uninstrument)

    def _patch(self, library: str, instrument: Callable[[], object], uninstrument: Callable[[], object]) -> None:
        with _lock:
            owner = _patched.get(library)
            if owner is self:
                return
            if owner is not None:
                # Another live Tracing in this process holds the patch (one traced app per process is the norm).
                logger.warning("tracing.already_instrumented", extra={"library": library})
                return
            instrument()
            _patched[library] = self

        def undo() -> None:
            with _lock:
                if _patched.get(library) is self:
                    uninstrument()
                    del _patched[library]

        self._undo.append(undo)
        self.instrumented.append(library)

    def flush(self, timeout_millis: int = 5000) -> None:
        """Export the spans still buffered."""
        if self.provider is not None:
            self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Undo the process-wide patches, export what is buffered and stop the exporter. Idempotent."""
        while self._undo:
            self._undo.pop()()
        if self.provider is not None:
            self.provider.shutdown()


def setup_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> Tracing:
    """A tracer provider exporting over OTLP/HTTP when `observability.tracing_enabled`; else a Tracing that does
    nothing. `exporter` replaces the OTLP exporter (a console exporter, tests); nothing is instrumented yet."""
    observability = settings.observability
    if not observability.tracing_enabled:
        return Tracing()
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # None: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318.
        exporter = OTLPSpanExporter(endpoint=traces_endpoint(observability.otlp_endpoint))
    resource = Resource.create(
        {
            "service.name": observability.service_name,
            "service.version": __version__,
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=sampler(observability.tracing_sample_ratio))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    logger.info(
        "tracing.enabled",
        extra={
            "service_name": observability.service_name,
            "endpoint": observability.otlp_endpoint,
            "sample_ratio": observability.tracing_sample_ratio,
        },
    )
    return Tracing(provider=provider)


def _discard(listeners: list[Callable[[AsyncEngine], None]], listener: Callable[[AsyncEngine], None]) -> None:
    if listener in listeners:
        listeners.remove(listener)


def instrument_celery(
    settings: Settings, databases: Sequence[Database] = (), *, exporter: SpanExporter | None = None
) -> Tracing:
    """Tracing for a Celery worker process, called from `worker_process_init`: a span per task run, with the
    SQL of `databases` (the process's WorkerRuntime container's) and Redis commands as its children.

    Does nothing when tracing is off. The spans still buffered are exported when the process shuts down
    (`worker_process_shutdown`; a prefork child exits without running atexit hooks).
    """
    tracing = setup_tracing(settings, exporter=exporter)
    if not tracing.enabled:
        return tracing
    tracing.trace_celery()
    tracing.instrument(settings, databases)
    from celery.signals import worker_process_shutdown  # type: ignore[import-untyped]

    def flush_at_exit(**_: Any) -> None:
        tracing.shutdown()

    worker_process_shutdown.connect(flush_at_exit, weak=False)
    tracing._undo.append(lambda: worker_process_shutdown.disconnect(flush_at_exit))
    return tracing


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, as trace backends show them) to records logged inside a sampled span.

    An unsampled span's ids are left out: they lead to no trace (the request id still ties the lines together).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is not None:
            return True
        context = trace.get_current_span().get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
