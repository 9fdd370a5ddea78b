"""Tracing: off by default, a logged no-op without the OpenTelemetry SDK, trace ids on log records.

The end-to-end check (spans exported for a request and its SQL, the log line carrying the trace id) needs the
SDK: it runs in a subprocess, because the global tracer provider can be set only once per process.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from potluck.observability.logging import configure_logging
from potluck.observability.tracing import (
    TraceContextFilter,
    Tracing,
    setup_tracing,
    traces_endpoint,
    untraced,
)

log = logging.getLogger("potluck.test.tracing")
ROOT = Path(__file__).resolve().parents[2]
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


def _span() -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1)))


def test_off_by_default_does_nothing() -> None:
    tracing = setup_tracing(None, enabled=False, otlp_endpoint="http://collector:4318")
    assert tracing == Tracing(enabled=False, reason="disabled")
    tracing.flush()  # a no-op, never an error


def test_without_the_sdk_it_logs_why_and_does_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with caplog.at_level(logging.WARNING, logger="potluck.observability.tracing"):
        tracing = setup_tracing(None, enabled=True, otlp_endpoint=None)
    assert not tracing.enabled
    assert "opentelemetry-sdk" in tracing.reason
    assert [r.getMessage() for r in caplog.records] == ["tracing.unavailable"]
    assert caplog.records[0].missing == "opentelemetry-sdk"  # type: ignore[attr-defined]


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


def test_filter_adds_trace_and_span_ids_inside_a_span() -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None)
    with trace.use_span(_span()):
        assert TraceContextFilter().filter(record)
    assert record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # type: ignore[attr-defined]
    assert record.span_id == "00f067aa0ba902b7"  # type: ignore[attr-defined]


def test_filter_adds_nothing_outside_a_span() -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None)
    assert TraceContextFilter().filter(record)
    assert not hasattr(record, "trace_id")


def test_filter_without_the_api_lets_records_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None)
    assert TraceContextFilter().filter(record)
    assert not hasattr(record, "trace_id")


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


_END_TO_END = textwrap.dedent(
    """
    import asyncio, io, json, logging

    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from potluck.observability import HttpMetricsMiddleware, RequestIdMiddleware, configure_logging, setup_tracing
    from prometheus_client import CollectorRegistry

    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT :v"), {"v": item_id})).scalar_one()
        logging.getLogger("potluck.item").info("item.read", extra={"item_id": item_id})
        return {"id": value}

    app.add_middleware(HttpMetricsMiddleware, registry=CollectorRegistry())
    app.add_middleware(RequestIdMiddleware)
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(app, enabled=True, service_name="potluck-test", engines=[engine], exporter=exporter)
    again = setup_tracing(app, enabled=True, service_name="potluck-test", engines=[engine], exporter=exporter)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/items/7")
            assert response.status_code == 200, response.text
        await engine.dispose()

    asyncio.run(main())
    tracing.flush()
    spans = [
        {"name": s.name, "kind": s.kind.name, "trace_id": format(s.context.trace_id, "032x"),
         "service": s.resource.attributes.get("service.name")}
        for s in exporter.get_finished_spans()
    ]
    logs = [json.loads(line) for line in out.getvalue().splitlines()]
    import importlib
    available = []
    for lib in ("sqlalchemy", "redis", "celery"):
        try:
            importlib.import_module(f"opentelemetry.instrumentation.{lib}")
        except ImportError:
            continue
        available.append(lib)
    print(json.dumps({"enabled": tracing.enabled, "instrumented": tracing.instrumented, "available": available,
                      "same_provider": again.provider is tracing.provider, "spans": spans,
                      "logs": [l for l in logs if l["logger"] == "potluck.item"]}))
    """
)


needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.sdk") is None,
    reason="opentelemetry-sdk is not installed (tracing is optional; see potluck.observability.tracing)",
)


@needs_sdk
def test_without_the_otlp_exporter_it_logs_why_and_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    tracing = setup_tracing(None, enabled=True, otlp_endpoint="http://127.0.0.1:4318")
    assert not tracing.enabled
    assert "opentelemetry-exporter-otlp-proto-http" in tracing.reason


@needs_sdk
def test_end_to_end_spans_and_log_correlation_with_the_sdk() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _END_TO_END], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["enabled"]
    assert result["same_provider"]
    assert "fastapi" in result["instrumented"]
    # Every instrumentation package that is installed did instrument (none declined over a version range).
    assert set(result["available"]) <= set(result["instrumented"])
    server = [s for s in result["spans"] if s["kind"] == "SERVER"]
    assert [s["name"] for s in server] == ["GET /items/{item_id}"]
    assert server[0]["service"] == "potluck-test"
    [line] = result["logs"]
    assert line["trace_id"] == server[0]["trace_id"]
    assert line["item_id"] == 7
    if "sqlalchemy" in result["instrumented"]:
        sql = [s for s in result["spans"] if s["kind"] == "CLIENT"]
        assert any(s["name"].upper().startswith("SELECT") for s in sql), sql
        assert {s["trace_id"] for s in sql} == {server[0]["trace_id"]}  # the query is a child of the request
