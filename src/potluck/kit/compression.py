"""The API's content coding: Brotli when the client accepts `br`, else gzip when it accepts gzip, for responses over
a threshold; one middleware (`CompressionMiddleware`) and one memo of encoded bodies for every answer.

A whole body (one `http.response.body` message: every JSON answer the API builds) is encoded through the memo:
the last ENCODED_ENTRIES distinct (body, coding, quality), within ENCODED_BYTES, keep their encoded bytes, so the
same page served again (a cached list page, search page, trending list, recipe document) is not compressed again.
Without an edge every anonymous page read paid a Brotli pass per request: ~500 µs of a ~1.4 ms trending read in
process (bench/route_cost.py, docs/benchmarks.md). A streamed body is compressed as it goes, unmemoized.

Compressed here, once per distinct body; behind the edge that is once per fill, and the edge keeps the br variant
(`Vary: Accept-Encoding`, the VCL keys variants by the normalised encoding) for every later hit. Why the API and
not the gateway: docs/benchmarks.md ("Brotli"). Quality 4 for responses made for one client (about gzip-9's CPU
on list pages, slightly smaller); quality 5 for `public` ones, which a shared cache keeps and serves many times
(5-6% fewer bytes than gzip-9 for 1.6-2.2x its CPU, paid once per fill; bench/brotli_cost.py).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import brotli
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import IdentityResponder
from starlette.types import ASGIApp, Receive, Scope, Send

from potluck.kit.memo import BoundedMemo

QUALITY = 4
SHARED_QUALITY = 5  # Cache-Control: public (the edge's objects)
GZIP_LEVEL = 9  # starlette's GZipMiddleware default
ENCODED_ENTRIES = 2048  # ContentCoding's memo of whole encoded bodies: at most this many
ENCODED_BYTES = 16 * 1024 * 1024  # ... holding at most this many bytes, bodies and encodings together
MEMO_MAX_BODY = 256 * 1024  # a larger body is encoded but not kept: one would evict hundreds of pages
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
    """The API's content coding, described once: the middleware every routed answer passes (`layers`), and the
    same result for an answer built whole in memory (`apply`, the recipe fast path). Both encode a whole body
    through one memo (`encoded`), keyed by the body's bytes themselves, so it can never answer for content that
    changed."""

    minimum_size: int
    gzip_level: int = GZIP_LEVEL
    quality: int = QUALITY
    shared_quality: int = SHARED_QUALITY
    entries: int = ENCODED_ENTRIES
    max_bytes: int = ENCODED_BYTES
    compressions: int = 0  # bodies actually encoded whole (memo misses)
    _memo: BoundedMemo[tuple[bytes, str, int], bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._memo = BoundedMemo(self.entries, self.max_bytes)

    def layers(self) -> list[Middleware]:
        return [Middleware(CompressionMiddleware, coding=self)]

    def choose(self, accept_encoding: str) -> str | None:
        """The coding a client sending this Accept-Encoding gets: br when it accepts br (RFC 9110's q=0 honoured),
        else gzip when the header names gzip (as starlette's GZipMiddleware decides), else none."""
        if accepts_br(accept_encoding):
            return "br"
        return "gzip" if "gzip" in accept_encoding else None

    def level(self, coding: str, cache_control: str) -> int:
        """The quality (br) or level (gzip) of an answer with this Cache-Control."""
        if coding == "gzip":
            return self.gzip_level
        return self.shared_quality if _PUBLIC.search(cache_control) else self.quality

    def apply(self, headers: list[tuple[bytes, bytes]], body: bytes, accept_encoding: str) -> bytes:
        """What the middleware makes of a whole, uncoded JSON answer: `headers` changed in place, the body
        returned."""
        if len(body) < self.minimum_size:
            return body
        out = MutableHeaders(raw=headers)
        out.add_vary_header("Accept-Encoding")
        coding = self.choose(accept_encoding)
        if coding is None:
            return body
        encoded = self.encoded(body, coding, self.level(coding, out.get("cache-control", "")))
        out["Content-Encoding"] = coding
        out["Content-Length"] = str(len(encoded))
        return encoded

    def encoded(self, body: bytes, coding: str, quality: int) -> bytes:
        """`body` encoded whole, from the memo when this body was encoded so before."""
        key = (body, coding, quality)
        found = self._memo.get(key)
        if found is not None:
            return found
        encoder = _stream(coding, quality)
        encoded = encoder.compress(body) + encoder.finish()
        self.compressions += 1
        if len(body) <= MEMO_MAX_BODY:
            self._memo.put(key, encoded, len(body) + len(encoded))
        return encoded


class _Brotli:
    def __init__(self, quality: int) -> None:
        self._compressor: Any = brotli.Compressor(mode=brotli.MODE_TEXT, quality=quality)  # untyped

    def compress(self, body: bytes) -> bytes:
        return bytes(self._compressor.process(body))

    def flush(self) -> bytes:
        return bytes(self._compressor.flush())

    def finish(self) -> bytes:
        return bytes(self._compressor.finish())


class _Gzip:
    def __init__(self, level: int) -> None:  # as starlette's GZipResponder does it
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, body: bytes) -> bytes:
        return self._compressor.compress(body)

    def flush(self) -> bytes:
        return self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._compressor.flush()


def _stream(coding: str, quality: int) -> _Brotli | _Gzip:
    return _Brotli(quality) if coding == "br" else _Gzip(quality)


class _Responder(IdentityResponder):
    """Starlette's responder (threshold, excluded content types, 206, an answer already encoded, Vary,
    Content-Length, streaming) encoding with `coding`: a whole body through the memo, a stream as it comes."""

    def __init__(self, app: ASGIApp, coding: ContentCoding, content_encoding: str) -> None:
        super().__init__(app, coding.minimum_size)
        self.coding = coding
        self.content_encoding = content_encoding
        self._stream: _Brotli | _Gzip | None = None

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        if self._stream is None:
            cache_control = Headers(raw=self.initial_message["headers"]).get("cache-control", "")
            quality = self.coding.level(self.content_encoding, cache_control)
            if not more_body:  # the whole body in one message
                return self.coding.encoded(body, self.content_encoding, quality)
            self._stream = _stream(self.content_encoding, quality)
        out = self._stream.compress(body)
        return out + (self._stream.flush() if more_body else self._stream.finish())


class CompressionMiddleware:
    """br or gzip by the request's Accept-Encoding (`ContentCoding.choose`); Vary: Accept-Encoding on every
    answer over the threshold, encoded or not."""

    def __init__(self, app: ASGIApp, coding: ContentCoding) -> None:
        self.app = app
        self.coding = coding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chosen = self.coding.choose(Headers(scope=scope).get("accept-encoding", ""))
        if chosen is None:
            await IdentityResponder(self.app, self.coding.minimum_size)(scope, receive, send)
        else:
            await _Responder(self.app, self.coding, chosen)(scope, receive, send)
