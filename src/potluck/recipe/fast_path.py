"""Recipe reads answered before the middleware chain and FastAPI's routing: from the first tier, one Redis GET,
or on a miss the recipe service's own load (a fill).

On a warm cache nearly all of a recipe read's CPU went to the middleware chain, dependency resolution and routing,
none of which such a read needs (bench/cache_read.py, docs/benchmarks.md). This layer is the app's outermost
middleware (app.py). It answers `GET /api/v1/recipes/{id}` with no query string when the caller may see the recipe
(from either cache tier, else loaded and stored as the route would: an uncached read spent a fifth of its CPU in
routing and dependency solving, docs/benchmarks.md): anonymous callers, and callers with a valid bearer access token
whose session is not revoked (the claims come from the token service's per-process cache, so a signed-in read costs
one dictionary lookup more than an anonymous one). The same bytes, ETag, 304 handling, Cache-Control, Vary,
surrogate keys, view count and cache metrics as `routes.get_recipe`; and what the chain adds to a routed answer,
from the same objects the chain's middlewares use (middleware.FrontRules): the request id, the security headers, the
content coding (kit/compression.ContentCoding: the layers' result, each cached document encoded once per coding,
not per read), the HTTP metrics under the route's template, and the in-flight bound (an answer counts against it;
a full process leaves the request to the chain, which sheds it). Anything else — `fields`/`include`, a recipe the
caller may not see or that does not exist (the route answers 404), a load that failed (the route reads again, with
the failover middleware's retry and the error handlers' 503), a token that does not verify (401), another
Authorization scheme, a request the chain would refuse or alter (host, body, CORS, internal listener) — goes the
ordinary way, which decides it again from scratch.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from potluck.cache.surrogate import SurrogateKeys
from potluck.kit.compression import ContentCoding
from potluck.kit.etag import if_none_match_hit
from potluck.kit.wiring import Provider, provider_of
from potluck.middleware import FrontRules
from potluck.observability.http_metrics import HttpMetricsSource
from potluck.observability.logging import REQUEST_ID_HEADER, bind_request_id, unbind_request_id
from potluck.observability.tracing import name_server_span
from potluck.recipe.http import full_document_etag, read_headers
from potluck.recipe.service import CachedRecipe, RecipeService
from potluck.recipe.views import ViewCounter
from potluck.user.revocation import SessionRevocations, live_claims
from potluck.user.security import InvalidTokenError, TokenService

ROUTE = "/api/v1/recipes/{recipe_id}"  # the template the route has: spans and metrics name it so
_PATH = re.compile(r"^/api/v1/recipes/([0-9a-fA-F-]{36})$")


_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")


class _NotHere(Exception):
    """This request is not one the fast path may answer: the routed path decides it."""


@dataclass(slots=True)
class _Request:
    """The request headers the fast path and the chain's rules look at, read in one pass."""

    authorization: str | None = None
    if_none_match: str | None = None
    request_id: str | None = None
    accept_encoding: str = ""
    host: str = ""
    origin: bool = False
    body: bool = False

    @classmethod
    def parse(cls, headers: list[tuple[bytes, bytes]]) -> _Request:
        request = cls()
        for name, value in headers:
            if name == b"authorization":
                request.authorization = value.decode("latin-1")
            elif name == b"if-none-match":
                request.if_none_match = value.decode("latin-1")
            elif name == b"host":
                request.host = value.decode("latin-1")
            elif name == b"accept-encoding":
                request.accept_encoding = value.decode("latin-1")
            elif name == _REQUEST_ID:
                request.request_id = value.decode("latin-1")
            elif name == b"origin":
                request.origin = True
            elif name in (b"content-length", b"transfer-encoding"):
                request.body = True
        return request


class RecipeFastPath:
    def __init__(self, app: ASGIApp, *, front: FrontRules, metrics: HttpMetricsSource, coding: ContentCoding) -> None:
        self.app = app
        self.front = front
        self.metrics = metrics
        self.coding = coding  # the chain's compression layers, as applied to a whole answer (memoized)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            match = _PATH.match(scope["path"])
            if match is not None and await self._try(scope, send, match.group(1)):
                return
        await self.app(scope, receive, send)

    async def _try(self, scope: Scope, send: Send, raw_id: str) -> bool:
        request = _Request.parse(scope["headers"])
        if not self.front.passes(scope, host=request.host, origin=request.origin, body=request.body):
            return False
        try:
            recipe_id = uuid.UUID(raw_id)
        except ValueError:
            return False
        admission, metrics = self.front.admission, self.metrics.metrics
        started = time.perf_counter()
        request_id, token = bind_request_id(request.request_id)
        scope.setdefault("state", {})["request_id"] = request_id  # RequestIdMiddleware keeps it if routed
        admission.in_flight += 1
        metrics.in_flight.inc()
        try:
            answer = await _lookup(provider_of(scope["app"]), recipe_id, request)
            if answer is None:
                return False
            answer.headers.append((_REQUEST_ID, request_id.encode("latin-1")))
            for name, value in self.front.security.for_request(scope["path"], scope.get("scheme")):
                answer.headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
            answer.body = self.coding.apply(answer.headers, answer.body, request.accept_encoding)
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})
        finally:
            metrics.in_flight.dec()
            admission.in_flight -= 1
            unbind_request_id(token)
        metrics.observe("GET", ROUTE, str(answer.status), time.perf_counter() - started)
        return True


@dataclass(slots=True)
class _Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def _lookup(provider: Provider, recipe_id: uuid.UUID, request: _Request) -> _Answer | None:
    """The answer when a cache tier holds the recipe for this viewer; None to leave the request to the route."""
    try:
        viewer = await _viewer(provider, request.authorization)
    except _NotHere:
        return None
    recipes = provider.get(RecipeService)
    try:
        cached = await recipes.get_hit(recipe_id, viewer)
        if cached is None:
            cached = await recipes.get(recipe_id, viewer)  # a miss: the route's own fill (lease, single flight)
    except Exception:  # not found or not visible (404), or a load failed: the routed path decides it again
        return None
    provider.get(ViewCounter).record(recipe_id)
    return _respond(recipe_id, cached, viewer, request.if_none_match, provider.get(SurrogateKeys))


async def _viewer(provider: Provider, authorization: str | None) -> uuid.UUID | None:
    """The caller as `routes.get_recipe` sees it (OAuth2PasswordBearer's parsing); _NotHere when only the routed
    path may answer (a token that does not verify: its 401 is the error handlers' to write)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _NotHere  # the routed path treats it as anonymous; rare enough not to copy that rule here
    try:  # the routed path's own check (user.dependencies._optional_claims); it answers the 401s
        claims = await live_claims(provider.get(TokenService), provider.get(SessionRevocations), token)
    except InvalidTokenError:
        raise _NotHere from None
    return claims.user_id


def _respond(
    recipe_id: uuid.UUID,
    cached: CachedRecipe,
    viewer: uuid.UUID | None,
    if_none_match: str | None,
    surrogate: SurrogateKeys,
) -> _Answer:
    """The one place the fast path builds a response: what `routes.get_recipe` sends for the full document."""
    etag = full_document_etag(recipe_id, cached.meta.version)
    headers = read_headers(etag, viewer=viewer, is_public=cached.meta.is_public)
    if viewer is None:  # an anonymous read (of a public recipe: nothing else gets here) is for the edge to keep
        headers.update(surrogate.recipe(recipe_id, cached.meta.author_id))
    if if_none_match_hit(if_none_match, etag):
        status, body = 304, b""
    else:
        status, body = 200, cached.payload
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
    name_server_span("GET", ROUTE)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return _Answer(status, raw, body)
