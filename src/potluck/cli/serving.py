"""How `potluck serve` runs uvicorn: the HTTP protocol with a header deadline, and the server's limits.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) but nothing else: a client that opens a
connection and sends half a header block, a byte every few seconds, holds it (and its buffers) for ever — the
slowloris attack. The protocols here give every request's header block `api.header_timeout_seconds` from the
first byte (or from the connection, for the first request) and `api.max_header_bytes`; past either the client
gets a 408 or a 431 and the connection is closed. The body has its own deadline in the app
(`middleware.BodyReadTimeoutMiddleware`), since only the app knows when it reads the body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from potluck.config import ApiSettings, get_settings

try:  # uvicorn[standard] brings httptools; "auto" prefers it, and so do we
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - only without the C parser
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def _raw_response(status: str) -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode("ascii")


class _HeaderDeadline:
    """Mixed into uvicorn's protocols: bound the time and the bytes a request's header block may take."""

    # Class-level overrides (tests); None: the settings' values.
    header_timeout_seconds: float | None = None
    max_header_bytes: int | None = None

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        api: ApiSettings = get_settings().api
        self._header_timeout = self.header_timeout_seconds or api.header_timeout_seconds
        self._header_limit = self.max_header_bytes or api.max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def _between_requests(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_bytes = 0

    def _refuse(self, status: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status))
            self.transport.close()

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self._between_requests():
            return
        if self._header_bytes:
            self._refuse("408 Request Timeout")
        elif not self.transport.is_closing():
            self.transport.close()  # nothing sent at all: just hang up

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        waiting = self._between_requests()
        if waiting:
            self._arm()
            self._header_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if not self._between_requests():
            self._disarm()  # the header block is complete: the app's body deadline takes over
        elif waiting and self._header_bytes > self._header_limit:
            self._refuse("431 Request Header Fields Too Large")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class DeadlineH11Protocol(_HeaderDeadline, H11Protocol):
    pass


if HttpToolsProtocol is not None:

    class DeadlineHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        pass

    DEFAULT_PROTOCOL: type[asyncio.Protocol] = DeadlineHttpToolsProtocol
else:  # pragma: no cover
    DEFAULT_PROTOCOL = DeadlineH11Protocol


def server_options(api: ApiSettings, *, keep_alive: int) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keyword arguments for the limits above."""
    return {
        "http": DEFAULT_PROTOCOL,
        "h11_max_incomplete_event_size": api.max_header_bytes,
        "timeout_keep_alive": keep_alive,
    }


def internal_listener(config: uvicorn.Config, host: str, port: int) -> uvicorn.Config:
    """The config that binds the internal listener's socket for the API's server (`config`): only the socket is
    used, but building a uvicorn.Config sets up uvicorn's loggers again, so it gets the API's access-log choice
    (a default one turned the access log back on under `--no-access-log`: a JSON line per request, 9% of a warm
    recipe read's CPU; docs/benchmarks.md)."""
    return uvicorn.Config(config.app, host=host, port=port, access_log=config.access_log, log_config=config.log_config)
