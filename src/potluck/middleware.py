"""ASGI middleware: the request body limit and read deadline, the allowed hosts (before anything else runs), load
shedding, the internal listener's gate and the security headers; and `FrontRules`, the parts of them the recipe
fast path (which answers before the chain) applies itself."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from starlette.datastructures import MutableHeaders
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


class BodyReadTimeoutMiddleware:
    """408 problem+json when a request body is not complete `timeout_seconds` after the request began.

    The server's header deadline (potluck.cli.serving) bounds a request whose headers never finish; this bounds
    one whose body never does (a client dribbling a byte at a time holds a connection and a task otherwise).
    The connection is closed after the answer: what is left of the body is never read.
    """

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.timeout_seconds
        body_done = False
        started = False
        timed_out = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:  # after the body: only the disconnect remains, which may come whenever
                return await receive()
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                if not started:
                    await _problem(
                        send,
                        408,
                        "request-timeout",
                        "Request Timeout",
                        f"the request body did not arrive within {self.timeout_seconds:g} s",
                        close=True,
                    )
                raise _BodyTimeoutError from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except _BodyTimeoutError:
            pass


class HostNames:
    """The host names this deployment serves: `*` any, `*.example.com` subdomains, else exact names."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.any = "*" in allowed
        self.exact = frozenset(h.lower() for h in allowed if not h.startswith("*"))
        self.suffixes = tuple(h[1:].lower() for h in allowed if h.startswith("*."))

    def allows(self, host: str) -> bool:
        if self.any:
            return True
        name = host.lower()
        if name.startswith("["):  # [v6]:port
            name = name.partition("]")[0] + "]"
        else:
            name = name.rpartition(":")[0] if name.count(":") == 1 else name
        return name in self.exact or name.endswith(self.suffixes)


class AllowedHostsMiddleware:
    """400 problem+json unless the Host header names one of `allowed` (a `HostNames` or its list).

    URLs the API writes (Location, Link) never come from Host (kit/links.py), so this is defence in depth: a
    request for a name this deployment does not serve is refused before it reaches a cache or a route.
    `exempt` paths (the probes, which orchestrators call by address) skip the check.
    """

    def __init__(self, app: ASGIApp, allowed: HostNames | Sequence[str], exempt: Sequence[str] = ()) -> None:
        self.app = app
        self.names = allowed if isinstance(allowed, HostNames) else HostNames(allowed)
        self.exempt = frozenset(exempt)

    def allows(self, host: str) -> bool:
        return self.names.allows(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.names.any or scope.get("path", "") in self.exempt:
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
        if not self.allows(host):
            await _problem(send, 400, "invalid-host", "Bad Request", "this server does not serve that host name")
            return
        await self.app(scope, receive, send)


class Admission:
    """The requests in flight in this process and their bound (`max_in_flight`, 0 = unbounded): one count for
    LoadShedMiddleware and for the layer that answers recipe reads before the middleware chain."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def full(self) -> bool:
        return 0 < self.max_in_flight <= self.in_flight


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
        max_in_flight: int | Admission,
        retry_after_seconds: int = 1,
        exempt: Sequence[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        self.app = app
        self.admission = max_in_flight if isinstance(max_in_flight, Admission) else Admission(max_in_flight)
        self.retry_after = str(retry_after_seconds).encode()
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission = self.admission
        if scope["type"] != "http" or admission.max_in_flight <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if admission.full():
            detail = "the server is busy; retry after the time in Retry-After"
            await _problem(send, 503, "overloaded", "Service Unavailable", detail, [(b"retry-after", self.retry_after)])
            return
        admission.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            admission.in_flight -= 1


async def _problem(
    send: Send,
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    close: bool = False,
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
                *([(b"connection", b"close")] if close else []),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLargeError(Exception):
    pass


class _BodyTimeoutError(Exception):
    pass


class InternalListenerGate:
    """Internal paths (/metrics) only on the internal listener, and nothing else there.

    `potluck serve` binds the API's socket and the internal one (observability.metrics_port) in the same
    processes; which one a request came in on is `scope["server"]`'s port. With no internal port configured the
    internal paths are served nowhere.
    """

    def __init__(self, app: ASGIApp, *, internal_port: int | None, internal_paths: frozenset[str]) -> None:
        self.app = app
        self.internal_port = internal_port
        self.internal_paths = internal_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            internal = self.internal_port is not None and server is not None and server[1] == self.internal_port
            if internal != (scope.get("path", "") in self.internal_paths):
                await _problem(send, 404, "not-found", "Not Found", "no such resource on this listener")
                return
        await self.app(scope, receive, send)


# JSON and images only: nothing on the API may run script, load anything, or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The interactive docs (Swagger UI from the app's own /docs/assets, swagger-ui-bundle pinned in uv.lock): its
# scripts and styles from this origin only, no inline script, the OpenAPI document fetched from this origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_PREFIX = "/docs"


class SecurityHeaders:
    """The security headers every response gets: nosniff, a CSP (stricter under /docs), no referrer, no framing,
    and HSTS when the request came over TLS (`scope["scheme"]`, which uvicorn's proxy headers set from the
    trusted proxy's X-Forwarded-Proto)."""

    def __init__(self, hsts_seconds: int = 0) -> None:
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds > 0 else None

    def for_request(self, path: str, scheme: str | None) -> list[tuple[str, str]]:
        docs = path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/")
        defaults = [
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", DOCS_CSP if docs else API_CSP),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ]
        if self.hsts is not None and scheme == "https":
            defaults.append(("Strict-Transport-Security", self.hsts))
        return defaults


class SecurityHeadersMiddleware:
    """`SecurityHeaders` on every response, whoever answered it (a route, an error handler, another middleware);
    the recipe fast path, which answers before this middleware, adds the same ones itself. A header a route set
    itself is kept.
    """

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0, headers: SecurityHeaders | None = None) -> None:
        self.app = app
        self.headers = headers or SecurityHeaders(hsts_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = self.headers.for_request(scope.get("path", ""), scope.get("scheme"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in defaults:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True)
class FrontRules:
    """What the middleware chain (app.py) does to a plain GET, for the layer that answers before it (the recipe
    fast path): which requests the chain passes to the app untouched (only those may be answered up front),
    and what it adds to every answer. app.py builds one and hands its parts to the middlewares themselves, so
    the two cannot drift apart.
    """

    hosts: HostNames
    admission: Admission
    security: SecurityHeaders
    internal_port: int | None  # InternalListenerGate: nothing but internal paths on that listener
    cors: bool  # CORSMiddleware is installed: a request with an Origin is left to it

    def passes(self, scope: Scope, *, host: str, origin: bool, body: bool) -> bool:
        """True when the chain would hand this GET to the app unchanged: the host is served, the process takes
        more requests, not the internal listener, no CORS handling, no body for the body limits to check."""
        if body or (origin and self.cors) or self.admission.full():
            return False
        server = scope.get("server")
        if self.internal_port is not None and server is not None and server[1] == self.internal_port:
            return False
        return self.hosts.allows(host)
