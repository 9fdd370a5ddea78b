"""Anonymous reads of a hot public recipe, answered from the in-process first tier before FastAPI routes them.

On a warm cache nearly all of a recipe read's CPU went to dependency resolution and routing, none of which
such a read needs (bench/cache_read.py, docs/benchmarks.md). This layer answers `GET /api/v1/recipes/{id}`
with no query string and no Authorization header when the first tier holds the recipe and it is public: the
same bytes, ETag, 304 handling, Cache-Control, view count and cache metrics as `routes.get_recipe`. Anything
else — a token, `fields`/`include`, a first-tier miss, a private recipe — goes the ordinary way.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Receive, Scope, Send

from potluck.cache.surrogate import SurrogateKeys
from potluck.kit.etag import if_none_match_hit
from potluck.kit.wiring import provider_of
from potluck.observability.tracing import name_server_span
from potluck.recipe.http import full_document_etag, read_headers
from potluck.recipe.service import RecipeService
from potluck.recipe.views import ViewCounter

ROUTE = "/api/v1/recipes/{recipe_id}"  # the template the route has: spans and metrics name it so
_PATH = re.compile(r"^/api/v1/recipes/([0-9a-fA-F-]{36})$")


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
        for name, value in scope["headers"]:
            if name == b"authorization":
                return False  # the caller's view may differ: the ordinary path decides
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        try:
            recipe_id = uuid.UUID(raw_id)
        except ValueError:
            return False
        provider = provider_of(scope["app"])
        cached = provider.get(RecipeService).peek_public(recipe_id)
        if cached is None:
            return False
        provider.get(ViewCounter).record(recipe_id)
        etag = full_document_etag(recipe_id, cached.meta.version)
        headers = read_headers(etag, viewer=None, is_public=True)
        headers.update(provider.get(SurrogateKeys).recipe(recipe_id, cached.meta.author_id))
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
        return True
