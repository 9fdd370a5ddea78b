"""Which Accept-Encoding values choose Brotli (RFC 9110 12.5.3: q=0 means "not acceptable"), and ContentCoding:
an answer encoded whole is what the middleware layers make of it."""

from __future__ import annotations

import asyncio
import gzip

import brotli
import httpx
import orjson
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from potluck.kit.compression import ContentCoding, accepts_br


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("br", True),
        ("gzip, deflate, br", True),
        ("br;q=0.5, gzip", True),
        ("BR , gzip", True),
        ("gzip, br;q=1.0", True),
        ("", False),
        ("gzip", False),
        ("identity", False),
        ("br;q=0, gzip", False),
        ("gzip, br; q=0.000", False),
        ("brotli, gzip", False),
        ("xbr, gzip", False),
        ("br;q=nonsense", False),
    ],
)
def test_accepts_br(header: str, expected: bool) -> None:
    assert accepts_br(header) is expected


# --- ContentCoding.apply gives a whole answer what the middleware layers give it -------------------------------

_BIG = orjson.dumps({"title": "A warm soup", "steps": ["Simmer the stock slowly. " * 8] * 12})
_ENCODINGS = ["", "identity", "gzip", "gzip, deflate", "gzip, deflate, br", "br", "br;q=0, gzip", "deflate"]


def _through_layers(
    coding: ContentCoding, body: bytes, cache_control: str, accept: str
) -> tuple[dict[str, str], bytes]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"cache-control", cache_control.encode())]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"vary", b"Authorization"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    wrapped: ASGIApp = app
    for cls, args, kwargs in reversed(coding.layers()):
        wrapped = cls(wrapped, *args, **kwargs)

    async def get() -> tuple[dict[str, str], bytes]:
        transport = httpx.ASGITransport(app=wrapped)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
            client.stream("GET", "/", headers={"Accept-Encoding": accept}) as resp,
        ):
            return dict(resp.headers.items()), b"".join([chunk async for chunk in resp.aiter_raw()])

    return asyncio.run(get())


@pytest.mark.parametrize("accept", _ENCODINGS)
@pytest.mark.parametrize("cache_control", ["public, max-age=60", "private, max-age=0"])
@pytest.mark.parametrize("body", [_BIG, b'{"small": true}'])
def test_apply_is_what_the_layers_do(accept: str, cache_control: str, body: bytes) -> None:
    coding = ContentCoding(minimum_size=1024)
    layered_headers, layered_body = _through_layers(coding, body, cache_control, accept)
    headers = [(b"content-type", b"application/json"), (b"cache-control", cache_control.encode())]
    headers += [(b"content-length", str(len(body)).encode()), (b"vary", b"Authorization")]
    encoded = coding.apply(headers, body, accept)
    assert encoded == layered_body  # the same bytes on the wire
    assert {k.decode(): v.decode() for k, v in headers} == layered_headers


def test_a_body_is_encoded_once_per_coding_and_the_memo_is_bounded() -> None:
    coding = ContentCoding(minimum_size=10, entries=2)
    first = coding.apply([], _BIG, "gzip")
    again = coding.apply([], _BIG, "gzip")
    assert again is first  # memoized: the same object, not compressed again
    assert gzip.decompress(first) == _BIG
    assert brotli.decompress(coding.apply([], _BIG, "br")) == _BIG
    coding.apply([], _BIG + b" ", "gzip")
    assert coding.apply([], _BIG, "gzip") is not first  # the oldest of three entries was dropped
