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


def test_the_memo_is_bounded_by_bytes_and_keeps_no_huge_body() -> None:
    coding = ContentCoding(minimum_size=10, max_bytes=2 * len(_BIG))
    coding.apply([], _BIG, "gzip")
    coding.apply([], _BIG + b" ", "gzip")  # the two bodies alone exceed the budget: the first is dropped
    assert coding.compressions == 2
    coding.apply([], _BIG + b" ", "gzip")
    coding.apply([], _BIG, "gzip")
    assert coding.compressions == 3
    huge = b"[" + b"1," * 200_000 + b"1]"  # over MEMO_MAX_BODY: encoded every time, never kept
    for _ in range(2):
        assert gzip.decompress(coding.apply([], huge, "gzip")) == huge
    assert coding.compressions == 5


def _serve(coding: ContentCoding, chunks: list[bytes], accept: str, requests: int = 1) -> list[bytes]:
    """Decoded bodies of `requests` GETs of an app sending `chunks` (one message each) through the middleware."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"public, max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})

    wrapped: ASGIApp = app
    for cls, args, kwargs in reversed(coding.layers()):
        wrapped = cls(wrapped, *args, **kwargs)

    async def get() -> list[bytes]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t") as client:
            return [(await client.get("/", headers={"Accept-Encoding": accept})).content for _ in range(requests)]

    return asyncio.run(get())


@pytest.mark.parametrize("accept", ["br", "gzip"])
def test_a_routed_answer_sent_whole_is_encoded_once(accept: str) -> None:
    coding = ContentCoding(minimum_size=1024)
    assert _serve(coding, [_BIG], accept, requests=3) == [_BIG] * 3
    assert coding.compressions == 1  # the second and third answers came from the memo


@pytest.mark.parametrize("accept", ["br", "gzip"])
def test_a_streamed_answer_is_encoded_as_it_comes(accept: str) -> None:
    coding = ContentCoding(minimum_size=1024)
    chunks = [_BIG[:2000], _BIG[2000:2500], _BIG[2500:]]
    assert _serve(coding, chunks, accept, requests=2) == [_BIG] * 2
    assert coding.compressions == 0  # streams are not memoized
