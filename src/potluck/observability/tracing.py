"""OpenTelemetry tracing, off by default: OTLP export of request, SQL, Redis and Celery spans.

Every OpenTelemetry package is optional and imported only when tracing is switched on: without them
`setup_tracing()` logs why and does nothing. HTTP server spans come from FastAPI's own telemetry, which
follows the global tracer provider set here (older FastAPI: opentelemetry-instrumentation-fastapi).
Log records get `trace_id`/`span_id` from `TraceContextFilter` while a span is current.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

logger = logging.getLogger("potluck.observability.tracing")

# Not worth a span each: the scrape and the probes run every few seconds.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

_lock = threading.Lock()
_provider: Any = None  # the SDK tracer provider this process set up (the global one can be set only once)


def _optional(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


@dataclass
class Tracing:
    """What setup_tracing() did: whether spans are exported, what is instrumented, and why not if not."""

    enabled: bool
    reason: str = ""
    instrumented: list[str] = field(default_factory=list)
    provider: Any = None

    def flush(self, timeout_millis: int = 5000) -> None:
        """Export the spans still buffered (the provider itself shuts down at process exit)."""
        if self.provider is not None:
            self.provider.force_flush(timeout_millis)


def untraced(scope: MutableMapping[str, Any]) -> bool:
    """For FastAPI(telemetry={"exclude": untraced}): no spans for the scrape endpoint and the probes."""
    return scope.get("path") in UNTRACED_PATHS


def traces_endpoint(otlp_endpoint: str | None) -> str | None:
    """The OTLP/HTTP traces URL for a collector base URL (`http://collector:4318` -> `.../v1/traces`)."""
    if not otlp_endpoint:
        return None
    base = otlp_endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def setup_tracing(
    app: Any = None,
    *,
    enabled: bool,
    otlp_endpoint: str | None = None,
    service_name: str = "potluck",
    engines: Iterable[Any] = (),
    instrument_redis: bool = True,
    instrument_celery: bool = True,
    exporter: Any = None,
) -> Tracing:
    """Export spans over OTLP/HTTP when `enabled` and the OpenTelemetry SDK is installed; else do nothing.

    `engines`: SQLAlchemy engines (async or sync) whose statements become spans. `otlp_endpoint`: the
    collector's base URL; None leaves it to the OTEL_EXPORTER_OTLP_* environment variables. `exporter`
    replaces the OTLP exporter (tests, a console exporter). Safe to call more than once per process: the
    tracer provider is set up once. Instrumentation failures are logged, never raised.
    """
    if not enabled:
        return Tracing(enabled=False, reason="disabled")
    api = _optional("opentelemetry.trace")
    sdk = _optional("opentelemetry.sdk.trace")
    sdk_export = _optional("opentelemetry.sdk.trace.export")
    resources = _optional("opentelemetry.sdk.resources")
    if api is None or sdk is None or sdk_export is None or resources is None:
        return _unavailable("opentelemetry-sdk")
    if exporter is None:
        otlp = _optional("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        if otlp is None:
            return _unavailable("opentelemetry-exporter-otlp-proto-http")
        endpoint = traces_endpoint(otlp_endpoint)
        exporter = otlp.OTLPSpanExporter(endpoint=endpoint) if endpoint else otlp.OTLPSpanExporter()

    provider = _tracer_provider(api, sdk, sdk_export, resources, service_name, exporter)
    tracing = Tracing(enabled=True, provider=provider)
    if app is not None:
        _instrument_app(app, provider, tracing)
    # Each engine once (a Database's reader may be its writer), or every statement would make two spans.
    engine_list = list({id(e): e for e in (getattr(engine, "sync_engine", engine) for engine in engines)}.values())
    if engine_list:
        _instrument(
            tracing,
            "sqlalchemy",
            "opentelemetry.instrumentation.sqlalchemy",
            "SQLAlchemyInstrumentor",
            engines=engine_list,
            tracer_provider=provider,
            # Its declared range stops below SQLAlchemy 2.1, which would make it instrument nothing; it only
            # listens to engine events, which 2.1 keeps (tests/unit/test_observability_tracing.py checks spans).
            skip_dep_check=True,
        )
    if instrument_redis:
        _instrument(
            tracing, "redis", "opentelemetry.instrumentation.redis", "RedisInstrumentor", tracer_provider=provider
        )
    if instrument_celery:
        _instrument(
            tracing, "celery", "opentelemetry.instrumentation.celery", "CeleryInstrumentor", tracer_provider=provider
        )
    logger.info(
        "tracing.enabled",
        extra={"service_name": service_name, "endpoint": otlp_endpoint, "instrumented": tracing.instrumented},
    )
    return tracing


def _unavailable(package: str) -> Tracing:
    logger.warning("tracing.unavailable", extra={"missing": package})
    return Tracing(enabled=False, reason=f"{package} is not installed")


def _tracer_provider(
    api: ModuleType, sdk: ModuleType, sdk_export: ModuleType, resources: ModuleType, service_name: str, exporter: Any
) -> Any:
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        current = api.get_tracer_provider()
        if isinstance(current, sdk.TracerProvider):
            # Someone (an auto-instrumentation agent) configured tracing already: use theirs, exporters included.
            _provider = current
            return current
        provider = sdk.TracerProvider(resource=resources.Resource.create({"service.name": service_name}))
        provider.add_span_processor(sdk_export.BatchSpanProcessor(exporter))
        api.set_tracer_provider(provider)
        _provider = provider
        return provider


def _instrument_app(app: Any, provider: Any, tracing: Tracing) -> None:
    if _optional("fastapi.telemetry") is not None:
        # FastAPI's native telemetry makes the server spans from the global provider: nothing to install.
        tracing.instrumented.append("fastapi")
        return
    module = _optional("opentelemetry.instrumentation.fastapi")
    if module is None:
        logger.info("tracing.not_instrumented", extra={"library": "fastapi"})
        return
    try:
        module.FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, excluded_urls=",".join(sorted(UNTRACED_PATHS))
        )
    except Exception:
        logger.exception("tracing.instrument_failed", extra={"library": "fastapi"})
        return
    tracing.instrumented.append("fastapi")


def _instrument(tracing: Tracing, library: str, module_name: str, class_name: str, **kwargs: Any) -> None:
    module = _optional(module_name)
    if module is None:
        logger.info("tracing.not_instrumented", extra={"library": library, "missing": module_name})
        return
    try:
        instrumentor = getattr(module, class_name)()  # instrumentors are per-process singletons
        if library == "sqlalchemy" and instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()  # a new app in this process: trace its engines
        instrumentor.instrument(**kwargs)
    except Exception:
        logger.exception("tracing.instrument_failed", extra={"library": library})
        return
    # instrument() only logs when it declines (a library version outside the instrumentation's range).
    if instrumentor.is_instrumented_by_opentelemetry:
        tracing.instrumented.append(library)
    else:
        logger.warning("tracing.not_instrumented", extra={"library": library, "reason": "declined"})


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, as trace backends show them) to records logged inside a span."""

    def __init__(self) -> None:
        super().__init__()
        api = _optional("opentelemetry.trace")
        self._current_span = getattr(api, "get_current_span", None)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._current_span is None or getattr(record, "trace_id", None) is not None:
            return True
        context = self._current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
