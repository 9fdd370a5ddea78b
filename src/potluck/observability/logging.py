"""Structured logs: one JSON object per line, carrying the request id (and the trace id when tracing is on).

`configure_logging()` installs one handler on the root logger (and routes uvicorn's loggers through it);
`RequestIdMiddleware` gives every request an id, echoed in `X-Request-ID` and stamped on every log record
emitted while the request is handled. Log with an event name and fields:
`logger.info("recipe.created", extra={"recipe_id": str(recipe.id)})`.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from potluck.observability.tracing import TraceContextFilter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("potluck_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "trace_id",
    "span_id",
}
# Loggers that servers configure with handlers of their own; they are sent to the root handler instead.
_ACCESS_LOGGER = "uvicorn.access"
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", _ACCESS_LOGGER)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str) -> bool:
    """A caller's id is kept if it is 1..128 characters of [A-Za-z0-9._-] (safe in headers and log lines)."""
    return _VALID_REQUEST_ID.fullmatch(value) is not None


def bind_request_id(incoming: str | None) -> tuple[str, Token[str | None]]:
    """The request's id (the caller's, if well-formed, else a new one), made current for log lines in this
    context; `unbind_request_id(token)` afterwards. RequestIdMiddleware and the recipe fast path use it."""
    request_id = incoming if incoming is not None and valid_request_id(incoming) else new_request_id()
    return request_id, _request_id.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


class RequestIdMiddleware:
    """Takes a well-formed `X-Request-ID` from the request or makes one; logs see it; the response echoes it."""

    def __init__(self, app: ASGIApp, header_name: str = REQUEST_ID_HEADER) -> None:
        self.app = app
        self.header_name = header_name
        self._header_key = header_name.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        # The recipe fast path (outside this middleware) bound one already when it left the request to the route.
        request_id, token = bind_request_id(state.get("request_id") or self._incoming(scope))
        state["request_id"] = request_id  # request.state.request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[self.header_name] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
        # Reset only after a normal return: when an exception escapes, the server-error handler outside this
        # middleware logs it (and answers 500) in this same context, and its log line must carry the id.
        unbind_request_id(token)

    def _incoming(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", ()):
            if name == self._header_key:
                incoming: str = value.decode("latin-1")
                return incoming
        return None


class RequestContextFilter(logging.Filter):
    """Stamps the current request id on each record, in the thread that logs it (before any queue handoff)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, request_id, trace_id/span_id (when set), the `extra` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            payload["request_id"] = request_id
        for key in ("trace_id", "span_id"):
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        for key, value in _extra_fields(record).items():
            payload.setdefault(key, value)  # a field never replaces one of the fields above
        if record.exc_info:
            exc_type = record.exc_info[0]
            if exc_type is not None:
                payload["exc_type"] = exc_type.__qualname__
            payload["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(payload, default=_jsonable, option=orjson.OPT_NON_STR_KEYS).decode()


def _jsonable(value: object) -> str:
    # Anything orjson cannot encode (Decimal, Path, sets, exceptions...) is logged as its str().
    return str(value)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal: `time LEVEL logger [request_id] message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<7}", record.name]
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            parts.append(f"[{request_id}]")
        parts.append(record.getMessage())
        parts.extend(f"{key}={value!r}" for key, value in _extra_fields(record).items())
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:
            parts.append(f"trace_id={trace_id}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _PotluckHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging() installed, so calling it again replaces it rather than adds one."""


def configure_logging(level: int | str = "INFO", json: bool = True, *, stream: TextIO | None = None) -> logging.Handler:
    """One handler on the root logger: JSON lines (or text), request and trace ids stamped on every record.

    Idempotent: a second call replaces the handler of the first. Other handlers (pytest's capture, for one)
    are left alone. uvicorn's loggers propagate to it instead of printing on their own, but for an access log
    the server turned off.
    """
    if isinstance(level, str):
        resolved = logging.getLevelNamesMapping().get(level.upper())
        if resolved is None:
            raise ValueError(f"unknown log level {level!r}")
        level = resolved
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _PotluckHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _PotluckHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(TraceContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if name == _ACCESS_LOGGER and not server_logger.propagate and not server_logger.handlers:
            # uvicorn's --no-access-log (potluck serve's default) leaves it so: it stays off. Turned back on, it
            # cost 7% of a warm recipe read's CPU (a JSON line per request nobody asked for; docs/benchmarks.md).
            continue
        server_logger.handlers.clear()
        server_logger.propagate = True
    return handler
