"""ASGI middleware: the request body limit (before anything reads the body) and load shedding."""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from potluck.errors import PROBLEM_BASE, PROBLEM_JSON


class BodySizeLimitMiddleware:
    """413 problem+json for a body over `max_bytes`, by Content-Length or while streaming a chunked body.

    `path_limits` gives matching paths a limit of their own (the first match wins): image uploads are larger.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = tuple(path_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        max_bytes = next((limit for pattern, limit in self.path_limits if pattern.match(path)), self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():
                    await _problem(send, 400, "invalid-content-length", "Bad Request", "Content-Length is not a number")
                    return
                if int(value) > max_bytes:
                    await self._reject(send, max_bytes)
                    return
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes and not rejected:
                    # Answer now: the framework turns any error raised while reading the body into a 400.
                    rejected = True
                    await self._reject(send, max_bytes)
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLargeError:
            pass

    async def _reject(self, send: Send, max_bytes: int) -> None:
        detail = f"the request body is larger than {max_bytes} bytes"
        await _problem(send, 413, "payload-too-large", "Content Too Large", detail)


class LoadShedMiddleware:
    """At most `max_in_flight` requests at once in this process; the rest get 503 + Retry-After at once.

    Past the knee a process that takes every request serves all of them late: latency grows without bound and
    timeouts turn into retries. Refusing the excess before any database or Redis work (this sits outside
    everything that does any) keeps the admitted requests fast and the refusals cheap; the load balancer or the
    client retries them elsewhere or later. `exempt` paths (probes, the scrape) are never refused: an overloaded
    process is alive and must not be restarted for being busy.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        retry_after_seconds: int = 1,
        exempt: Sequence[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = str(retry_after_seconds).encode()
        self.exempt = frozenset(exempt)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_in_flight <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            detail = "the server is busy; retry after the time in Retry-After"
            await _problem(send, 503, "overloaded", "Service Unavailable", detail, [(b"retry-after", self.retry_after)])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _problem(
    send: Send, status: int, kind: str, title: str, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with RFC 9457 problem+json straight from the middleware (nothing below has run)."""
    body = orjson.dumps({"type": PROBLEM_BASE + kind, "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLargeError(Exception):
    pass
