"""Tracing against the real backends: one trace per recipe read (server span, SQL, Redis), exported over
OTLP/HTTP to a collector, and the request's log line carrying its trace id; nothing at all when tracing is off.

The app runs under uvicorn (with its access log, as `potluck serve --access-log` runs it) so the log line for
the request is the real one; a small HTTP server stands in for the collector's OTLP/HTTP receiver.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from potluck.app import create_app
from potluck.config import ObservabilitySettings, Settings
from potluck.observability.logging import configure_logging
from tests.integration.conftest import Api
from tests.support.eventually import eventually

SERVER = ProtoSpan.SpanKind.SPAN_KIND_SERVER


class Collector:
    """Accepts OTLP/HTTP exports (POST /v1/traces, protobuf) on loopback and keeps their bodies."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []  # (path, content type, body)
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.requests.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received: name, kind, trace and parent ids (hex), attributes, service name."""
        out = []
        for path, _, body in self.requests:
            assert path == "/v1/traces"
            export = ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "name": span.name,
                                "kind": span.kind,
                                "trace_id": span.trace_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "attributes": {a.key: a.value for a in span.attributes},
                                "service": resource["service.name"],
                            }
                        )
        return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Where the app's JSON log lines go (create_app() installs the handler; each test re-points it here)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield io.StringIO()
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def traced(settings: Settings, endpoint: str, *, enabled: bool = True) -> Settings:
    observability = ObservabilitySettings(tracing_enabled=enabled, otlp_endpoint=endpoint, service_name="potluck-test")
    events = settings.events.model_copy(update={"enabled": False})
    return settings.model_copy(update={"observability": observability, "events": events})


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn on a loopback port, lifespan and access log included, and a client on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", access_log=True, log_config=None, log_level="info")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        def started() -> bool:
            assert not task.done(), "uvicorn did not start"
            return server.started

        await eventually(started, 30, interval=0.01)
        container = app.state.container
        if container.cache.bus is not None:
            await asyncio.wait_for(container.cache.bus.connected.wait(), 5)
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)  # the lifespan's end: tracing.shutdown() exports what is buffered
        sock.close()


def access_line(lines: io.StringIO, path: str) -> dict[str, Any]:
    found = [
        line
        for line in map(json.loads, lines.getvalue().splitlines())
        if line["logger"] == "uvicorn.access" and f"GET {path} " in line["message"]
    ]
    assert len(found) == 1, lines.getvalue()
    line: dict[str, Any] = found[0]
    return line


def same_trace(spans: Sequence[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    """The spans of root's trace, each checked to hang from root through its parents."""
    trace_id = root.context.trace_id
    members = [s for s in spans if s.context.trace_id == trace_id]
    ids = {s.context.span_id for s in members}
    for span in members:
        if span is not root:
            assert span.parent is not None, span.name
            assert span.parent.span_id in ids, span.name
    return members


async def test_a_recipe_read_is_one_trace_exported_over_otlp(
    settings: Settings, collector: Collector, log_lines: io.StringIO
) -> None:
    app = create_app(traced(settings, collector.endpoint))
    configure_logging("INFO", json=True, stream=log_lines)
    tracing = app.state.tracing
    assert tracing.enabled
    memory = InMemorySpanExporter()  # alongside the OTLP exporter, to read the spans as the SDK made them
    tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    path = ""
    async with served(app) as http:
        api = Api(http)
        recipe = await api.create_recipe(await api.register())
        path = f"/api/v1/recipes/{recipe['id']}"
        memory.clear()
        response = await http.get(path)  # a cache miss (nothing warmed it): the cache, then the database
        assert response.status_code == 200, response.text
        assert ("redis" in tracing.instrumented) == (settings.redis.url is not None)
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry  # the lifespan's end undid the patch

    spans = memory.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "GET /api/v1/recipes/{recipe_id}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/api/v1/recipes/{recipe_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert server.parent is None
    members = same_trace(spans, server)
    assert len(members) == len(spans), "every span of the request is in its trace"
    by_system: dict[str, list[ReadableSpan]] = {}
    for span in members:
        system = (span.attributes or {}).get("db.system")
        if system is not None:
            assert span.kind is SpanKind.CLIENT
            by_system.setdefault(str(system), []).append(span)
    expected = {"sqlite"} if settings.redis.url is None else {"postgresql", "redis"}
    assert set(by_system) == expected
    sql = by_system.get("sqlite") or by_system["postgresql"]
    statements = [str((s.attributes or {}).get("db.statement")) for s in sql]
    assert any(q.startswith("SELECT") and "FROM recipe " in q for q in statements), statements
    if settings.redis.url is not None:
        commands = {s.name for s in by_system["redis"]}
        assert "GET" in commands, commands  # the second tier's lookup before the database
        assert all("?" in str((s.attributes or {}).get("db.statement")) for s in by_system["redis"])  # no values

    line = access_line(log_lines, path)
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["span_id"] == format(server.context.span_id, "016x")
    assert line["request_id"] == response.headers["X-Request-ID"]

    # The same spans reached the collector over OTLP/HTTP, as protobuf.
    assert collector.requests, "nothing was exported"
    assert {(p, t) for p, t, _ in collector.requests} == {("/v1/traces", "application/x-protobuf")}
    exported = collector.spans()
    assert {s["service"] for s in exported} == {"potluck-test"}
    trace_id = format(server.context.trace_id, "032x")
    in_trace = [s for s in exported if s["trace_id"] == trace_id]
    assert sorted(s["name"] for s in in_trace) == sorted(s.name for s in members)
    # Traces start only at requests: no background poll or loop exported a client call of its own.
    roots = [s for s in exported if not s["parent_id"]]
    assert roots
    assert all(s["kind"] == SERVER for s in roots), {s["name"] for s in roots}


async def test_tracing_off_exports_nothing_and_logs_no_trace_ids(
    settings: Settings, collector: Collector, log_lines: io.StringIO
) -> None:
    app = create_app(traced(settings, collector.endpoint, enabled=False))  # an endpoint, but tracing off
    configure_logging("INFO", json=True, stream=log_lines)
    assert not app.state.tracing.enabled
    path = ""
    async with served(app) as http:
        api = Api(http)
        recipe = await api.create_recipe(await api.register())
        path = f"/api/v1/recipes/{recipe['id']}"
        response = await http.get(path)
        assert response.status_code == 200, response.text
        assert not RedisInstrumentor().is_instrumented_by_opentelemetry  # not left over from a traced app
        assert app.state.tracing.instrumented == []
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # the global one was never set
    assert collector.requests == []
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert lines
    assert not [line for line in lines if "trace_id" in line or "span_id" in line]
    assert access_line(log_lines, path)["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_read_answered_before_routing_is_named_by_its_route(settings: Settings, collector: Collector) -> None:
    """The first-tier fast path (recipe/fast_path.py) answers before FastAPI routes: its span still has the name."""
    app = create_app(traced(settings, collector.endpoint))
    memory = InMemorySpanExporter()
    app.state.tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    async with served(app) as http:
        api = Api(http)
        recipe = await api.create_recipe(await api.register())
        path = f"/api/v1/recipes/{recipe['id']}"
        assert (await http.get(path)).status_code == 200  # fills both tiers
        hits = app.state.container.registry.get_sample_value
        before = hits("potluck_cache_hits_total", {"family": "recipe_detail", "tier": "l1"}) or 0
        memory.clear()
        assert (await http.get(path)).status_code == 200
        assert (hits("potluck_cache_hits_total", {"family": "recipe_detail", "tier": "l1"}) or 0) == before + 1
    [server] = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /api/v1/recipes/{recipe_id}"
    assert (server.attributes or {})["http.route"] == "/api/v1/recipes/{recipe_id}"


async def test_a_replica_added_at_run_time_is_traced(pg_cluster: Any) -> None:
    """Under Patroni the replica set comes from the cluster after tracing was set up (Database.set_replicas): the
    new replica's statements are traced too, and stop being once tracing shuts down."""
    from sqlalchemy import text

    from potluck.config import DatabaseSettings
    from potluck.db.engine import Database, create_engine
    from potluck.observability.tracing import setup_tracing

    exporter = InMemorySpanExporter()
    tracing = setup_tracing(Settings(observability=ObservabilitySettings(tracing_enabled=True)), exporter=exporter)
    settings = DatabaseSettings()
    database = Database(create_engine(pg_cluster.dsn("primary"), settings), settings=settings, dynamic_replicas=True)
    try:
        tracing.trace_databases(database)
        replica_port = pg_cluster.port(1)
        await database.set_replicas({f"127.0.0.1:{replica_port}": pg_cluster.dsn(1)})
        assert tracing.provider is not None
        tracer = tracing.provider.get_tracer("test")
        with tracer.start_as_current_span("request", kind=SpanKind.SERVER):  # SQL alone starts no trace
            async with database.replicas[0].connect() as conn:
                await conn.execute(text("SELECT 41 + 1"))
        tracing.provider.force_flush()
        spans = [s for s in exporter.get_finished_spans() if "SELECT 41 + 1" in str(s.attributes)]
        assert spans, [s.attributes for s in exporter.get_finished_spans()]
        assert spans[0].attributes is not None
        assert spans[0].attributes.get("net.peer.port") == replica_port, spans[0].attributes
        tracing.shutdown()
        assert database.engine_listeners == []
    finally:
        tracing.shutdown()
        await database.dispose()
