"""Brotli for responses over a threshold when the client accepts `br`; gzip (starlette's, outside this one) stays.

Sits inside starlette's GZipMiddleware, which leaves a response that already has a Content-Encoding alone: a
client that accepts br gets br, any other that accepts gzip gets gzip. Compressed here, once per response the API
builds; behind the edge that is once per fill, and the edge keeps the br variant (`Vary: Accept-Encoding`, the
VCL keys variants by the normalised encoding) for every later hit. Why the API and not the gateway:
docs/benchmarks.md ("Brotli"). Quality 4 for responses made for one client (about gzip-9's CPU on list pages,
slightly smaller); quality 5 for `public` ones, which a shared cache keeps and serves many times (5-6% fewer bytes
than gzip-9 for 1.6-2.2x its CPU, paid once per fill; bench/brotli_cost.py).
"""

from __future__ import annotations

import re
from typing import Any

import brotli
from starlette.datastructures import Headers
from starlette.middleware.gzip import IdentityResponder
from starlette.types import ASGIApp, Receive, Scope, Send

QUALITY = 4
SHARED_QUALITY = 5  # Cache-Control: public (the edge's objects)
# `br` listed, without q=0 (RFC 9110 12.5.3: q=0 means "not acceptable").
_ACCEPTS_BR = re.compile(r"(?:^|,)\s*br\s*(?:;\s*q\s*=\s*(?P<q>[0-9.]+))?\s*(?:,|$)", re.IGNORECASE)
_PUBLIC = re.compile(r"(?:^|,)\s*public\s*(?:,|$)", re.IGNORECASE)


def accepts_br(accept_encoding: str) -> bool:
    match = _ACCEPTS_BR.search(accept_encoding)
    if match is None:
        return False
    q = match.group("q")
    try:
        return q is None or float(q) > 0
    except ValueError:
        return False


def offers_coding(accept_encoding: str) -> bool:
    """Whether app.compression()'s layers may encode an answer for this Accept-Encoding: starlette's GZip takes any
    header containing "gzip", this module any that accepts br. When neither does, all they do to an answer is add
    `Vary: Accept-Encoding` once its body reaches their minimum size (what the recipe fast path does itself)."""
    return "gzip" in accept_encoding or accepts_br(accept_encoding)


class BrotliResponder(IdentityResponder):
    """Starlette's responder (threshold, excluded types, Vary, Content-Length, streaming) with a brotli stream."""

    content_encoding = "br"

    def __init__(self, app: ASGIApp, minimum_size: int, quality: int, shared_quality: int) -> None:
        super().__init__(app, minimum_size)
        self.quality = quality
        self.shared_quality = shared_quality
        self._compressor: Any = None  # brotli.Compressor (untyped)

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        if self._compressor is None:
            cache_control = Headers(raw=self.initial_message["headers"]).get("cache-control", "")
            shared = _PUBLIC.search(cache_control) is not None
            quality = self.shared_quality if shared else self.quality
            self._compressor = brotli.Compressor(mode=brotli.MODE_TEXT, quality=quality)
        out: bytes = self._compressor.process(body)
        tail: bytes = self._compressor.flush() if more_body else self._compressor.finish()
        return out + tail


class BrotliMiddleware:
    def __init__(
        self, app: ASGIApp, minimum_size: int = 1024, quality: int = QUALITY, shared_quality: int = SHARED_QUALITY
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.quality = quality
        self.shared_quality = shared_quality

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_br(Headers(scope=scope).get("accept-encoding", "")):
            await self.app(scope, receive, send)
            return
        await BrotliResponder(self.app, self.minimum_size, self.quality, self.shared_quality)(scope, receive, send)
