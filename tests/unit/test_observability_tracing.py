"""Tracing: off by default and then inert, the sampler's choices, trace ids on log records, and the spans each
instrumentation makes in process (FastAPI's server span, SQL on a traced engine, a Celery task's run).

The real backends (PostgreSQL, Redis, the OTLP export, uvicorn's access log) are in
tests/integration/test_tracing.py.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from celery import Celery  # type: ignore[import-untyped]
from celery.signals import worker_process_shutdown  # type: ignore[import-untyped]
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import ASGIApp, Receive, Scope, Send

from potluck.config import ObservabilitySettings, Settings
from potluck.observability.logging import RequestIdMiddleware, configure_logging
from potluck.observability.tracing import (
    TraceContextFilter,
    Tracing,
    instrument_celery,
    name_server_span,
    sampler,
    setup_tracing,
    traces_endpoint,
    untraced,
)

log = logging.getLogger("potluck.test.tracing")
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def tracing_settings(**observability: Any) -> Settings:
    return Settings(
        observability=ObservabilitySettings(tracing_enabled=True, service_name="potluck-test", **observability)
    )


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    tracing = setup_tracing(tracing_settings(), exporter=exporter)
    yield tracing
    tracing.shutdown()


def finished(tracing: Tracing, exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    tracing.flush()
    return exporter.get_finished_spans()


def _span(flags: int = 1) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(flags)))


# --- off by default -------------------------------------------------------------------------------------------


def test_off_by_default_builds_and_instruments_nothing() -> None:
    assert not Settings().observability.tracing_enabled
    tracing = setup_tracing(Settings(observability=ObservabilitySettings(otlp_endpoint="http://collector:4318")))
    assert not tracing.enabled
    assert tracing.provider is None
    # FastAPI then falls back to the global provider: a no-op unless something else configured one.
    assert tracing.telemetry() == {"tracer_provider": None, "exclude": untraced}
    engine = create_engine("sqlite://")
    tracing.trace_engines([engine])
    tracing.trace_redis()
    tracing.trace_celery()
    assert tracing.instrumented == []
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    tracing.flush()
    tracing.shutdown()  # no-ops, never errors
    engine.dispose()


def test_the_global_tracer_provider_is_left_alone(tracing: Tracing) -> None:
    # Another app in this process (tests build many) must not be traced because this one is.
    assert tracing.enabled
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("", None),
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
    ],
)
def test_traces_endpoint(given: str | None, expected: str | None) -> None:
    assert traces_endpoint(given) == expected


def test_probes_and_scrapes_are_untraced() -> None:
    assert untraced({"type": "http", "path": "/metrics"})
    assert untraced({"type": "http", "path": "/readyz"})
    assert not untraced({"type": "http", "path": "/api/v1/recipes"})


def test_the_sample_ratio_is_validated() -> None:
    assert ObservabilitySettings().tracing_sample_ratio == 1.0
    with pytest.raises(ValueError, match="less than or equal to 1"):
        ObservabilitySettings(tracing_sample_ratio=1.5)


# --- sampling -------------------------------------------------------------------------------------------------


def _decide(ratio: float, kind: SpanKind, parent: trace.Span | None = None) -> Decision:
    context = trace.set_span_in_context(parent) if parent is not None else None
    return sampler(ratio).should_sample(context, TRACE_ID, "x", kind).decision


def test_traces_start_at_requests_and_tasks_not_at_client_calls() -> None:
    assert _decide(1.0, SpanKind.SERVER) is Decision.RECORD_AND_SAMPLE
    assert _decide(1.0, SpanKind.CONSUMER) is Decision.RECORD_AND_SAMPLE
    # A poller's Redis command or the relay loop's SQL, with no request around it: no one-span trace.
    assert _decide(1.0, SpanKind.CLIENT) is Decision.DROP
    # The same call inside a sampled request is part of its trace.
    assert _decide(1.0, SpanKind.CLIENT, parent=_span()) is Decision.RECORD_AND_SAMPLE


def test_the_ratio_applies_to_new_traces_and_a_callers_decision_is_followed() -> None:
    assert _decide(0.0, SpanKind.SERVER) is Decision.DROP
    remote = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1)))
    assert _decide(0.0, SpanKind.SERVER, parent=remote) is Decision.RECORD_AND_SAMPLE  # traceparent sampled=1
    unsampled = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(0)))
    assert _decide(1.0, SpanKind.SERVER, parent=unsampled) is Decision.DROP


def test_a_zero_ratio_exports_no_request(exporter: InMemorySpanExporter) -> None:
    tracing = setup_tracing(tracing_settings(tracing_sample_ratio=0.0), exporter=exporter)
    try:
        assert tracing.provider is not None
        with tracing.provider.get_tracer("t").start_as_current_span("GET /x", kind=SpanKind.SERVER):
            pass
        assert finished(tracing, exporter) == ()
    finally:
        tracing.shutdown()


# --- trace ids in the logs ------------------------------------------------------------------------------------


def test_filter_adds_trace_and_span_ids_inside_a_span() -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None)
    with trace.use_span(_span()):
        assert TraceContextFilter().filter(record)
    assert record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # type: ignore[attr-defined]
    assert record.span_id == "00f067aa0ba902b7"  # type: ignore[attr-defined]


@pytest.mark.parametrize("span", [None, _span(flags=0)], ids=["no span", "unsampled span"])
def test_filter_adds_nothing_outside_a_sampled_span(span: trace.Span | None) -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None)
    with trace.use_span(span if span is not None else trace.INVALID_SPAN):
        assert TraceContextFilter().filter(record)
    assert not hasattr(record, "trace_id")
    assert not hasattr(record, "span_id")


def test_json_log_lines_carry_the_trace_id(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    with trace.use_span(_span()):
        log.info("recipe.read")
    log.info("outside.span")
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inside["span_id"] == "00f067aa0ba902b7"
    assert "trace_id" not in outside
    assert "span_id" not in outside


# --- spans, in process ----------------------------------------------------------------------------------------


class AnswersEarly:
    """Like RecipeFastPath: answers /early before FastAPI routes it, naming the span itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/early/"):
            name_server_span("GET", "/early/{item_id}")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await self.app(scope, receive, send)


async def test_a_request_is_a_server_span_with_its_sql_and_log_lines(
    tracing: Tracing, exporter: InMemorySpanExporter, restore_logging: None
) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    tracing.trace_engines([engine, engine])  # the same engine twice (a reader that is the writer): once
    seen: list[MutableMapping[str, Any]] = []

    def exclude(scope: MutableMapping[str, Any]) -> bool:
        seen.append(scope)
        return untraced(scope)

    app = FastAPI(telemetry=tracing.telemetry(exclude=exclude))

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT :v"), {"v": item_id})).scalar_one()
        log.info("item.read", extra={"item_id": item_id})
        return {"id": value}

    @app.get("/metrics")
    async def metrics() -> dict[str, str]:
        return {}

    app.add_middleware(AnswersEarly)
    app.add_middleware(RequestIdMiddleware)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/items/7")
            assert response.status_code == 200, response.text
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/early/3")).status_code == 200
    finally:
        await engine.dispose()

    spans = finished(tracing, exporter)
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /items/{item_id}", "GET /early/{item_id}"]  # no span for /metrics
    assert servers[1].attributes is not None
    assert servers[1].attributes["http.route"] == "/early/{item_id}"
    server = servers[0]
    assert server.resource.attributes["service.name"] == "potluck-test"
    sql = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert [(s.attributes or {}).get("db.system") for s in sql] == ["sqlite"]
    assert sql[0].context.trace_id == server.context.trace_id
    assert tracing.instrumented == ["sqlalchemy"]
    [line] = [json.loads(x) for x in out.getvalue().splitlines() if '"item.read"' in x]
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["item_id"] == 7


def test_redis_is_patched_by_one_tracing_at_a_time_and_unpatched_at_shutdown(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    tracing.trace_redis()
    tracing.trace_redis()  # once
    assert tracing.instrumented == ["redis"]
    assert RedisInstrumentor().is_instrumented_by_opentelemetry
    other = setup_tracing(tracing_settings(), exporter=InMemorySpanExporter())
    other.trace_redis()  # held by the first: left to it
    assert other.instrumented == []
    other.shutdown()
    assert RedisInstrumentor().is_instrumented_by_opentelemetry
    tracing.shutdown()
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
    tracing.shutdown()  # idempotent


def test_a_celery_task_is_a_consumer_span_with_its_sql(exporter: InMemorySpanExporter) -> None:
    app = Celery("potluck-test", broker="memory://", set_as_current=False)
    engine = create_engine("sqlite://")

    @app.task(name="recipes.count")  # type: ignore[untyped-decorator]
    def count() -> int:
        with engine.connect() as conn:
            value: int = conn.execute(text("SELECT 1")).scalar_one()
        return value

    tracing = instrument_celery(tracing_settings(), exporter=exporter)
    try:
        tracing.trace_engines([engine])
        assert tracing.instrumented == ["celery", "sqlalchemy"]
        assert count.apply().get() == 1
        assert exporter.get_finished_spans() == ()  # still buffered in the batch processor
        worker_process_shutdown.send(sender=None, pid=0, exitcode=0)  # the prefork child's exit flushes them
        spans = exporter.get_finished_spans()
        [run] = [s for s in spans if s.kind is SpanKind.CONSUMER]
        assert run.name == "run/recipes.count"
        [sql] = [s for s in spans if s.kind is SpanKind.CLIENT]
        assert sql.parent is not None
        assert sql.parent.span_id == run.context.span_id
        assert not CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    finally:
        tracing.shutdown()
        engine.dispose()


def test_instrument_celery_does_nothing_when_tracing_is_off() -> None:
    tracing = instrument_celery(Settings())
    assert not tracing.enabled
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
