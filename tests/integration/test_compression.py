"""Response compression on the real app: Brotli for JSON over 1 KB when the client accepts br, gzip otherwise."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import httpx
import orjson

from potluck.kit.compression import QUALITY, SHARED_QUALITY
from tests.integration.conftest import Api


async def _raw(client: httpx.AsyncClient, url: str, accept: str) -> tuple[httpx.Headers, bytes]:
    """The bytes as sent (httpx would decode them)."""
    async with client.stream("GET", url, headers={"Accept-Encoding": accept}) as response:
        assert response.status_code == 200
        return response.headers, b"".join([chunk async for chunk in response.aiter_raw()])


async def _large_recipe(api: Api) -> tuple[str, Any]:
    author = await api.register()
    recipe = await api.create_recipe(author, description="Slow-cooked, stirred often. " * 60, is_public=True)
    return f"/api/v1/recipes/{recipe['id']}", recipe


async def test_brotli_when_accepted_gzip_otherwise_same_json(client: httpx.AsyncClient, api: Api) -> None:
    url, _ = await _large_recipe(api)
    headers, plain = await _raw(client, url, "identity")
    assert "content-encoding" not in headers
    assert len(plain) > 1024
    expected = orjson.loads(plain)
    # Twice each: the routed read, then the fast path's answer from the cache (both inside the compression).
    for _ in range(2):
        headers, body = await _raw(client, url, "gzip, deflate, br")
        assert headers["content-encoding"] == "br"
        assert "accept-encoding" in headers["vary"].lower()
        assert int(headers["content-length"]) == len(body) < len(plain)
        assert orjson.loads(brotli.decompress(body)) == expected
        # Public (the edge keeps it): the shared quality, paid once per fill.
        assert body == brotli.compress(plain, mode=brotli.MODE_TEXT, quality=SHARED_QUALITY)
        for accept in ("gzip, deflate", "gzip, br;q=0"):
            headers, body = await _raw(client, url, accept)
            assert headers["content-encoding"] == "gzip", accept
            assert "accept-encoding" in headers["vary"].lower()
            assert orjson.loads(gzip.decompress(body)) == expected


async def test_a_response_for_one_client_gets_the_cheaper_quality(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author, description="Only mine, stirred often. " * 60, is_public=False)
    url = f"/api/v1/recipes/{recipe['id']}"
    plain = (await client.get(url, headers={**author["headers"], "Accept-Encoding": "identity"})).content
    async with client.stream("GET", url, headers={**author["headers"], "Accept-Encoding": "br"}) as response:
        assert response.headers["cache-control"].startswith("private")
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "br"
    assert body == brotli.compress(plain, mode=brotli.MODE_TEXT, quality=QUALITY)


async def test_small_responses_are_not_compressed(client: httpx.AsyncClient, api: Api) -> None:
    headers, body = await _raw(client, "/healthz", "br, gzip")
    assert len(body) < 1024
    assert "content-encoding" not in headers
