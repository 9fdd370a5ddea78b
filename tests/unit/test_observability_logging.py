"""Structured logging: the JSON formatter, configure_logging(), and the request-id middleware."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from potluck.cli.serving import internal_listener
from potluck.observability.logging import (
    REQUEST_ID_HEADER,
    JsonFormatter,
    RequestIdMiddleware,
    TextFormatter,
    configure_logging,
    current_request_id,
    valid_request_id,
)

log = logging.getLogger("potluck.test.observability")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state: put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    servers = {name: logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved = {name: (list(lg.handlers), lg.propagate) for name, lg in servers.items()}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lg in servers.items():
        lg.handlers[:], lg.propagate = saved[name]


@pytest.fixture
def stream(restore_logging: None) -> io.StringIO:
    out = io.StringIO()
    configure_logging("DEBUG", json=True, stream=out)
    return out


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON lines this module logged (httpx, for one, logs each request too)."""
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in parsed if line["logger"].startswith(("potluck.", "uvicorn."))]


def test_json_line_has_the_core_fields_and_extras(stream: io.StringIO) -> None:
    log.info("recipe.created", extra={"recipe_id": "r1", "price": Decimal("1.50"), "where": Path("/tmp")})
    [line] = lines(stream)
    assert line["message"] == "recipe.created"
    assert line["level"] == "INFO"
    assert line["logger"] == "potluck.test.observability"
    assert line["timestamp"].endswith("Z")
    assert "T" in line["timestamp"]
    assert line["recipe_id"] == "r1"
    assert line["price"] == "1.50"  # what JSON cannot hold is logged as its str()
    assert line["where"] == "/tmp"
    assert "request_id" not in line  # outside a request
    assert "trace_id" not in line  # outside a span


def test_extras_never_replace_the_core_fields(stream: io.StringIO) -> None:
    log.warning("cache.odd", extra={"level": "fake", "logger": "fake", "timestamp": 0, "count": 3})
    [line] = lines(stream)
    assert (line["level"], line["logger"], line["count"]) == ("WARNING", "potluck.test.observability", 3)
    assert line["timestamp"] != 0


def test_exceptions_are_one_line_of_json(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("request.unhandled_error")
    [line] = lines(stream)
    assert line["level"] == "ERROR"
    assert line["exc_type"] == "ValueError"
    assert "ValueError: bad input" in line["exc_info"]
    assert len(stream.getvalue().splitlines()) == 1


def test_configure_logging_is_idempotent_and_sets_the_level(restore_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("WARNING", json=True, stream=first)
    configure_logging("WARNING", json=True, stream=second)
    log.info("dropped.below_level")
    log.warning("kept.once")
    assert first.getvalue() == ""
    assert [line["message"] for line in lines(second)] == ["kept.once"]
    # Server loggers go through the same handler (one format for everything the process prints).
    logging.getLogger("uvicorn.error").warning("server.said")
    assert lines(second)[-1]["logger"] == "uvicorn.error"


@pytest.mark.parametrize("access_log", [True, False])
def test_the_servers_access_log_setting_survives_configure_logging(restore_logging: None, access_log: bool) -> None:
    """uvicorn configures its loggers before the app factory runs; configure_logging() must not turn an access
    log the server was told not to write back on (it did: a JSON line per request under `potluck serve`)."""
    out = io.StringIO()
    # uvicorn sets its loggers up in each Config, as `potluck serve` builds them: the API's, the internal listener's.
    internal_listener(uvicorn.Config(Starlette(), access_log=access_log), "127.0.0.1", 0)
    configure_logging("INFO", json=True, stream=out)
    logging.getLogger("uvicorn.access").info('127.0.0.1:1 - "GET / HTTP/1.1" 200')
    assert logging.getLogger("uvicorn.access").hasHandlers() is access_log  # what uvicorn's protocols check
    assert [line["logger"] for line in lines(out)] == (["uvicorn.access"] if access_log else [])


def test_configure_logging_rejects_unknown_levels(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")


def test_text_format_for_terminals(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=False, stream=out)
    log.info("recipe.created", extra={"recipe_id": "r1"})
    line = out.getvalue().strip()
    assert "INFO" in line
    assert "recipe.created" in line
    assert "recipe_id='r1'" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_formatters_work_without_the_filters() -> None:
    """A handler someone else installed, with our formatter and none of our filters, still formats."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "plain %s", ("message",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "plain message"
    assert "plain message" in TextFormatter().format(record)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("abc-123_DEF.4", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("has space", False),
        ("semi;colon", False),
        ("new\nline", False),
        ("ünïcode", False),
    ],
)
def test_request_id_shape(value: str, valid: bool) -> None:
    assert valid_request_id(value) is valid


def _app() -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        log.info("hello.said", extra={"who": "you"})
        return PlainTextResponse(f"{current_request_id()}|{request.state.request_id}")

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(RequestIdMiddleware)
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
        yield client


async def test_a_well_formed_request_id_is_kept_and_echoed(http: httpx.AsyncClient, stream: io.StringIO) -> None:
    resp = await http.get("/hello", headers={REQUEST_ID_HEADER: "edge-7f3a.01"})
    assert resp.headers[REQUEST_ID_HEADER] == "edge-7f3a.01"
    assert resp.text == "edge-7f3a.01|edge-7f3a.01"  # the contextvar and request.state agree
    [line] = lines(stream)
    assert line["message"] == "hello.said"
    assert line["request_id"] == "edge-7f3a.01"
    assert line["who"] == "you"


@pytest.mark.parametrize("incoming", [None, "x" * 129, "bad id", "inject\\u000d\\u000aX-Evil: 1"])
async def test_a_missing_or_malformed_request_id_is_replaced(
    http: httpx.AsyncClient, stream: io.StringIO, incoming: str | None
) -> None:
    headers = {REQUEST_ID_HEADER: incoming} if incoming is not None else {}
    resp = await http.get("/hello", headers=headers)
    generated = resp.headers[REQUEST_ID_HEADER]
    assert generated != incoming
    assert valid_request_id(generated)
    assert len(generated) == 32
    assert lines(stream)[0]["request_id"] == generated


async def test_each_request_gets_its_own_id(http: httpx.AsyncClient) -> None:
    ids = {(await http.get("/hello")).headers[REQUEST_ID_HEADER] for _ in range(5)}
    assert len(ids) == 5
    assert current_request_id() is None  # nothing leaks out of a request that ended normally


async def test_the_unhandled_error_log_and_500_carry_the_request_id(stream: io.StringIO) -> None:
    """The server-error handler runs outside the middleware; its log line must still name the request."""
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async def unexpected(request: Request, exc: Exception) -> PlainTextResponse:
        log.error("request.unhandled_error")
        return PlainTextResponse("internal", status_code=500, headers={REQUEST_ID_HEADER: current_request_id() or ""})

    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(RequestIdMiddleware)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        resp = await client.get("/boom", headers={REQUEST_ID_HEADER: "req-500"})
    assert resp.status_code == 500
    assert resp.headers[REQUEST_ID_HEADER] == "req-500"
    assert [line["request_id"] for line in lines(stream) if line["message"] == "request.unhandled_error"] == ["req-500"]


async def test_non_http_scopes_pass_through() -> None:
    called: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["type"])

    await RequestIdMiddleware(inner)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert called == ["lifespan"]
