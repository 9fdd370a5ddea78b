"""create_app(): the FastAPI application; its lifespan builds everything once via bootstrap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from potluck import __version__
from potluck.api import api_router
from potluck.bootstrap import bootstrap
from potluck.config import Settings, get_settings
from potluck.db.consistency import ConsistencyTokenMiddleware
from potluck.db.failover import ReplicaFailoverMiddleware
from potluck.errors import install_error_handlers
from potluck.health import router as health_router
from potluck.kit.wiring import STATE_KEY as PROVIDER_KEY
from potluck.kit.wiring import provider_of, required_by
from potluck.media.routes import files_router as media_files_router
from potluck.media.routes import upload_body_limits
from potluck.middleware import BodySizeLimitMiddleware, LoadShedMiddleware
from potluck.observability import HttpMetricsMiddleware, RequestIdMiddleware, configure_logging, setup_tracing
from potluck.observability.exposition import MetricsExposition
from potluck.observability.multiprocess import mark_dead
from potluck.observability.tracing import untraced
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
        try:
            yield
        finally:
            await container.aclose()
            tracing.shutdown()
            mark_dead()  # multiprocess mode: this worker's live gauges leave the merged /metrics

    app = FastAPI(
        title="Potluck",
        version=__version__,
        description="The backend of a recipe-sharing platform. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        telemetry=tracing.telemetry(exclude=untraced),
    )
    app.state.tracing = tracing
    install_error_handlers(app)
    app.add_middleware(RecipeFastPath)
    app.add_middleware(GZipMiddleware, minimum_size=settings.api.gzip_minimum_bytes)
    app.add_middleware(ReplicaFailoverMiddleware)
    app.add_middleware(ConsistencyTokenMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.api.max_body_bytes, path_limits=upload_body_limits(settings)
    )
    # Outside everything that touches a database or Redis; inside the request id and the HTTP metrics, which
    # count the 503s it answers (route label <unmatched>: routing never ran).
    app.add_middleware(
        LoadShedMiddleware,
        max_in_flight=settings.api.max_in_flight,
        retry_after_seconds=settings.api.retry_after_seconds,
    )
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, registry=lambda: provider_of(app).get(MetricsExposition).registry)
    app.include_router(health_router)
    app.include_router(api_router)
    app.include_router(media_files_router)  # /media/{key}: image files, when they are on this app's disk
    if settings.cache.test_hooks:
        from potluck.testing_hooks import router as testing_router

        app.include_router(testing_router)
    return app
