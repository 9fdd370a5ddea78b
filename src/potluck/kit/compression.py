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
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import brotli
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware, IdentityResponder
from starlette.types import ASGIApp, Receive, Scope, Send

QUALITY = 4
SHARED_QUALITY = 5  # Cache-Control: public (the edge's objects)
GZIP_LEVEL = 9  # starlette's GZipMiddleware default
ENCODED_ENTRIES = 2048  # ContentCoding's memo of whole encoded bodies
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


@dataclass
class ContentCoding:
    """The API's content coding, described once: the middleware layers every routed answer passes (`layers`, GZip
    outside Brotli), and the same result for an answer built whole in memory (`apply`, the recipe fast path), with
    the encoded bodies of the last ENCODED_ENTRIES distinct (body, coding, quality) memoized: a cached document is
    compressed once, not on every read. The memo is keyed by the body's bytes themselves, so it can never answer
    for content that changed."""

    minimum_size: int
    gzip_level: int = GZIP_LEVEL
    quality: int = QUALITY
    shared_quality: int = SHARED_QUALITY
    entries: int = ENCODED_ENTRIES
    _memo: OrderedDict[tuple[bytes, str, int], bytes] = field(default_factory=OrderedDict, repr=False)

    def layers(self) -> list[Middleware]:
        # Brotli inside gzip: a client that accepts br gets br, the others that accept gzip get gzip.
        return [
            Middleware(GZipMiddleware, minimum_size=self.minimum_size, compresslevel=self.gzip_level),
            Middleware(
                BrotliMiddleware,
                minimum_size=self.minimum_size,
                quality=self.quality,
                shared_quality=self.shared_quality,
            ),
        ]

    def choose(self, accept_encoding: str) -> str | None:
        """The coding the layers give a client sending this Accept-Encoding (starlette's GZip takes any header
        containing "gzip"; BrotliMiddleware any that accepts br, and it runs first)."""
        if accepts_br(accept_encoding):
            return "br"
        return "gzip" if "gzip" in accept_encoding else None

    def apply(self, headers: list[tuple[bytes, bytes]], body: bytes, accept_encoding: str) -> bytes:
        """What the layers make of a whole, uncoded JSON answer: `headers` changed in place, the body returned."""
        if len(body) < self.minimum_size:
            return body
        out = MutableHeaders(raw=headers)
        out.add_vary_header("Accept-Encoding")
        coding = self.choose(accept_encoding)
        if coding is None:
            return body
        quality = self.gzip_level
        if coding == "br":
            quality = self.shared_quality if _PUBLIC.search(out.get("cache-control", "")) else self.quality
        encoded = self._encoded(body, coding, quality)
        out["Content-Encoding"] = coding
        out["Content-Length"] = str(len(encoded))
        return encoded

    def _encoded(self, body: bytes, coding: str, quality: int) -> bytes:
        key = (body, coding, quality)
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
            return found
        if coding == "br":  # as BrotliResponder does it for a whole body
            compressor = brotli.Compressor(mode=brotli.MODE_TEXT, quality=quality)
            encoded: bytes = compressor.process(body) + compressor.finish()
        else:  # as starlette's GZipResponder does it
            gzip = zlib.compressobj(quality, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            encoded = gzip.compress(body) + gzip.flush()
        self._memo[key] = encoded
        if len(self._memo) > self.entries:
            self._memo.popitem(last=False)
        return encoded


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
