"""create_app(): the FastAPI application; its lifespan builds everything once via bootstrap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from potluck import __version__
from potluck.api import API_PREFIX, API_ROUTERS
from potluck.bootstrap import bootstrap
from potluck.config import Settings, get_settings
from potluck.db.consistency import TOKEN_HEADER, ConsistencyTokenMiddleware
from potluck.db.failover import ReplicaFailoverMiddleware
from potluck.errors import install_error_handlers
from potluck.health import INTERNAL_PATHS
from potluck.health import router as health_router
from potluck.kit import heap
from potluck.kit.compression import ContentCoding
from potluck.kit.links import set_public_base_url
from potluck.kit.wiring import STATE_KEY as PROVIDER_KEY
from potluck.kit.wiring import provider_of, required_by
from potluck.media.routes import files_router as media_files_router
from potluck.media.routes import upload_body_limits
from potluck.middleware import (
    DOCS_PREFIX,
    Admission,
    AllowedHostsMiddleware,
    BodyReadTimeoutMiddleware,
    BodySizeLimitMiddleware,
    FrontRules,
    HostNames,
    InternalListenerGate,
    LoadShedMiddleware,
    SecurityHeaders,
    SecurityHeadersMiddleware,
)
from potluck.observability import HttpMetricsMiddleware, RequestIdMiddleware, configure_logging, setup_tracing
from potluck.observability.exposition import MetricsExposition
from potluck.observability.http_metrics import HttpMetricsSource
from potluck.observability.logging import REQUEST_ID_HEADER
from potluck.observability.multiprocess import mark_dead
from potluck.observability.tracing import untraced
from potluck.openapi import install_contract
from potluck.recipe.fast_path import RecipeFastPath


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    observability = settings.observability
    configure_logging(observability.log_level, json=observability.log_json)
    tracing = setup_tracing(settings)  # off by default: then it builds and instruments nothing

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = bootstrap(settings)
        app.state.container = container
        setattr(app.state, PROVIDER_KEY, container)  # what routes' dependencies read (kit/wiring.py)
        missing = container.services.missing(required_by(app))
        if missing:
            raise RuntimeError(f"bootstrap provides no {', '.join(missing)}: add it in bootstrap._provide")
        tracing.instrument(settings, (container.database, container.events.database))
        await container.start()
        if settings.api.freeze_heap:
            heap.freeze()
        try:
            yield
        finally:
            if settings.api.freeze_heap:
                heap.thaw()
            await container.aclose()
            tracing.shutdown()
            mark_dead()  # multiprocess mode: this worker's live gauges leave the merged /metrics

    app = FastAPI(
        title="Potluck",
        version=__version__,
        description="The backend of a recipe-sharing platform. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        # FastAPI's own pages load an unpinned script from a CDN: ours are served from this app (_install_docs).
        docs_url=None,
        redoc_url=None,
        telemetry=tracing.telemetry(exclude=untraced),
    )
    app.state.tracing = tracing
    install_contract(app)
    set_public_base_url(app, settings.api.public_base_url)
    install_error_handlers(app)
    _install_middleware(app, settings)
    if settings.api.docs_enabled:
        _install_docs(app)
    for api_router in API_ROUTERS:
        app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(health_router)
    app.include_router(media_files_router)  # /media/{key}: image files, when they are on this app's disk
    if settings.cache.test_hooks:
        from potluck.testing_hooks import router as testing_router

        app.include_router(testing_router)
    return app


def compression(settings: Settings) -> ContentCoding:
    """The content coding of every answer: the chain's innermost middlewares (`layers()`), and the recipe fast
    path's answers (which never reach the chain) encoded the same way. A new coding goes in kit/compression.py's
    ContentCoding: both get it."""
    return ContentCoding(settings.api.gzip_minimum_bytes)


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware chain, innermost first, and the recipe fast path outside all of it: `FrontRules` hands the
    fast path the same host names, in-flight count, security headers and compression as the chain's middlewares,
    and `HttpMetricsSource` the same metrics, so a fast answer is what the chain would have made of a routed one."""
    api = settings.api
    coding = compression(settings)
    front = FrontRules(
        hosts=HostNames(api.allowed_hosts),
        admission=Admission(api.max_in_flight),
        security=SecurityHeaders(api.hsts_seconds),
        internal_port=settings.observability.metrics_port,
        cors=bool(api.cors_origins),
    )
    metrics = HttpMetricsSource(lambda: provider_of(app).get(MetricsExposition).registry)
    for cls, args, kwargs in reversed(coding.layers()):
        app.add_middleware(cls, *args, **kwargs)
    app.add_middleware(ReplicaFailoverMiddleware)
    app.add_middleware(ConsistencyTokenMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=api.max_body_bytes, path_limits=upload_body_limits(settings))
    app.add_middleware(BodyReadTimeoutMiddleware, timeout_seconds=api.body_timeout_seconds)
    app.add_middleware(AllowedHostsMiddleware, allowed=front.hosts, exempt=("/healthz", "/readyz"))
    # Outside everything that touches a database or Redis; inside the request id and the HTTP metrics, which
    # count the 503s it answers (route label <unmatched>: routing never ran).
    app.add_middleware(LoadShedMiddleware, max_in_flight=front.admission, retry_after_seconds=api.retry_after_seconds)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, registry=metrics)
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match", TOKEN_HEADER],
            expose_headers=["ETag", "Link", "Location", "Retry-After", REQUEST_ID_HEADER, TOKEN_HEADER],
            max_age=api.cors_max_age_seconds,
        )
    app.add_middleware(
        InternalListenerGate, internal_port=settings.observability.metrics_port, internal_paths=INTERNAL_PATHS
    )
    # Every response gets them: the middlewares' own problems included (the fast path adds the same ones).
    app.add_middleware(SecurityHeadersMiddleware, headers=front.security)
    # Outermost: a cached recipe read is answered before any of the above runs (recipe/fast_path.py).
    app.add_middleware(RecipeFastPath, front=front, metrics=metrics, coding=coding)


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Potluck API</title>
<link rel="stylesheet" href="{prefix}/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{prefix}/assets/swagger-ui-bundle.js"></script>
<script src="{prefix}/init.js"></script>
</body>
</html>
"""

_DOCS_INIT = """window.ui = SwaggerUIBundle({{
  url: "{openapi_url}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
"""


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the app itself: the pinned swagger-ui-bundle's files, no CDN, no inline script (so
    the docs' CSP can say `script-src 'self'`)."""
    page = _DOCS_PAGE.format(prefix=DOCS_PREFIX)
    init = _DOCS_INIT.format(openapi_url=app.openapi_url)
    app.mount(f"{DOCS_PREFIX}/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(DOCS_PREFIX, include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(f"{DOCS_PREFIX}/init.js", include_in_schema=False)
    async def docs_init() -> Response:
        return Response(init, media_type="text/javascript")
