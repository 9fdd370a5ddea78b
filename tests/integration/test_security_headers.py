"""Security headers on every response (issue 18, finding 6), CORS from settings, and the self-hosted /docs."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import swagger_ui_bundle

from potluck.config import ApiSettings, Settings
from potluck.middleware import API_CSP, DOCS_CSP
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of

EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _assert_secured(resp: httpx.Response, csp: str = API_CSP) -> None:
    for name, value in EVERYWHERE.items():
        assert resp.headers.get(name) == value, (resp.request.url, name, dict(resp.headers))
    assert resp.headers.get("content-security-policy") == csp, resp.request.url
    assert "strict-transport-security" not in resp.headers  # plain HTTP, and nginx owns HSTS by default


async def test_every_kind_of_response_carries_the_security_headers(client: httpx.AsyncClient, api: Api) -> None:
    author = await api.register()
    recipe = await api.create_recipe(author)
    responses = [
        await client.get("/healthz"),
        await client.get(f"/api/v1/recipes/{recipe['id']}"),  # a route
        await client.get("/api/v1/recipes/not-a-uuid"),  # a 422 from the error handler
        await client.get("/api/v1/nowhere"),  # a 404 from the router
        await client.post("/api/v1/recipes", content=b"x" * 2_000_000, headers=author["headers"]),  # middleware 413
        await client.get("/openapi.json"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 422, 404, 413, 200]
    for resp in responses:
        _assert_secured(resp)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_recipe_fast_path_answers_with_the_security_headers(client: httpx.AsyncClient, api: Api) -> None:
    """recipe/fast_path.py answers before routing: its 200 and 304 carry the headers too."""
    author = await api.register()
    recipe = await api.create_recipe(author)
    url = f"/api/v1/recipes/{recipe['id']}"
    await client.get(url)  # fills the first tier
    registry = container_of(client).registry
    before = registry.get_sample_value("potluck_cache_hits_total", {"family": "recipe_detail", "tier": "l1"}) or 0
    fast = await client.get(url)
    after = registry.get_sample_value("potluck_cache_hits_total", {"family": "recipe_detail", "tier": "l1"}) or 0
    assert after == before + 1  # the fast path answered
    _assert_secured(fast)
    not_modified = await client.get(url, headers={"If-None-Match": fast.headers["etag"]})
    assert not_modified.status_code == 304
    _assert_secured(not_modified)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_hsts_only_over_tls_and_when_configured(settings: Settings) -> None:
    settings = settings.model_copy(update={"api": ApiSettings(hsts_seconds=63072000)})
    async with running_app(settings) as client:
        plain = await client.get("/healthz")
        assert "strict-transport-security" not in plain.headers
        tls = await client.get("https://potluck.test/healthz")
        assert tls.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_cors_follows_the_settings(settings: Settings) -> None:
    allowed, other = "https://app.example.com", "https://evil.example.net"
    preflight = {"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization,if-match"}
    async with running_app(settings) as client:  # no origins configured: no CORS at all
        resp = await client.get("/healthz", headers={"Origin": allowed})
        assert "access-control-allow-origin" not in resp.headers
    settings = settings.model_copy(update={"api": ApiSettings(cors_origins=[allowed])})
    async with running_app(settings) as client:
        resp = await client.get("/healthz", headers={"Origin": allowed})
        assert resp.headers["access-control-allow-origin"] == allowed
        assert "etag" in resp.headers["access-control-expose-headers"].lower()
        ok = await client.options("/api/v1/recipes/x", headers={"Origin": allowed, **preflight})
        assert ok.status_code == 200
        assert "PATCH" in ok.headers["access-control-allow-methods"]
        _assert_secured(ok)
        refused = await client.options("/api/v1/recipes/x", headers={"Origin": other, **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        resp = await client.get("/healthz", headers={"Origin": other})
        assert "access-control-allow-origin" not in resp.headers


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_docs_load_nothing_from_elsewhere_under_a_strict_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    _assert_secured(page, DOCS_CSP)
    assert "'unsafe-inline'" not in DOCS_CSP
    assert "script-src 'self'" in DOCS_CSP
    html = page.text
    assert "<script>" not in html  # nothing inline: the CSP would refuse it
    assert "<style" not in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    assert all(s.startswith("/docs/") for s in sources), sources  # no CDN
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        _assert_secured(asset, DOCS_CSP)
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    shipped = Path(swagger_ui_bundle.swagger_ui_path) / "swagger-ui-bundle.js"
    assert bundle.content == shipped.read_bytes()  # the pinned package's file, byte for byte
    init = await client.get("/docs/init.js")
    assert '"/openapi.json"' in init.text
    assert (await client.get("/redoc")).status_code == 404  # FastAPI's CDN page is gone
