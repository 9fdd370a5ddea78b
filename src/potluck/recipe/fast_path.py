"""Reads of a cached recipe, answered before FastAPI routes them: from the first tier or one Redis GET.

On a warm cache nearly all of a recipe read's CPU went to dependency resolution and routing, none of which such
a read needs (bench/cache_read.py, docs/benchmarks.md). This layer answers `GET /api/v1/recipes/{id}` with no
query string when either cache tier holds the recipe and the caller may see it: anonymous callers, and callers
with a valid bearer access token (its claims come from the token service's per-process cache, so a signed-in
read costs one dictionary lookup more than an anonymous one). The same bytes, ETag, 304 handling, Cache-Control,
Vary, view count and cache metrics as `routes.get_recipe`. Anything else — `fields`/`include`, a miss or a lease
(the route takes the lease and fills), a recipe the caller may not see (the route answers 404), a token that does
not verify (401), another Authorization scheme — goes the ordinary way, which decides it again from scratch.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Receive, Scope, Send

from potluck.cache.surrogate import SurrogateKeys
from potluck.kit.etag import if_none_match_hit
from potluck.kit.wiring import Provider, provider_of
from potluck.observability.tracing import name_server_span
from potluck.recipe.http import full_document_etag, read_headers
from potluck.recipe.service import CachedRecipe, RecipeService
from potluck.recipe.views import ViewCounter
from potluck.user.revocation import SessionRevocations, live_claims
from potluck.user.security import InvalidTokenError, TokenService

ROUTE = "/api/v1/recipes/{recipe_id}"  # the template the route has: spans and metrics name it so
_PATH = re.compile(r"^/api/v1/recipes/([0-9a-fA-F-]{36})$")


class _NotHere(Exception):
    """This request is not one the fast path may answer: the routed path decides it."""


class RecipeFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            match = _PATH.match(scope["path"])
            if match is not None and await self._answer(scope, match.group(1), send):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, raw_id: str, send: Send) -> bool:
        if_none_match: str | None = None
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        try:
            recipe_id = uuid.UUID(raw_id)
        except ValueError:
            return False
        provider = provider_of(scope["app"])
        try:
            viewer = await _viewer(provider, authorization)
        except _NotHere:
            return False
        try:
            cached = await provider.get(RecipeService).get_hit(recipe_id, viewer)
        except Exception:  # an early refresh's load failed: the routed path reads again and its handlers answer
            return False
        if cached is None:
            return False
        provider.get(ViewCounter).record(recipe_id)
        await _respond(send, recipe_id, cached, viewer, if_none_match, provider.get(SurrogateKeys))
        return True


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


async def _respond(
    send: Send,
    recipe_id: uuid.UUID,
    cached: CachedRecipe,
    viewer: uuid.UUID | None,
    if_none_match: str | None,
    surrogate: SurrogateKeys,
) -> None:
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
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})
