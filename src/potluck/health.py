"""Liveness and readiness probes for the load balancer and the orchestrator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.responses import Response

from potluck.cache.cache import Cache
from potluck.cache.store import CacheStoreError
from potluck.config import Settings
from potluck.db.dependencies import DatabaseDep
from potluck.errors import ServiceUnavailableError
from potluck.kit.wiring import provided
from potluck.observability.exposition import MetricsExposition

CacheDep = Annotated[Cache, Depends(provided(Cache))]
SettingsDep = Annotated[Settings, Depends(provided(Settings))]
ExpositionDep = Annotated[MetricsExposition, Depends(provided(MetricsExposition))]

router = APIRouter(tags=["health"])
# Served only on the internal listener (observability.metrics_port; middleware.InternalListenerGate).
INTERNAL_PATHS = frozenset({"/metrics"})


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(database: DatabaseDep, settings: SettingsDep, cache: CacheDep) -> dict[str, str]:
    """The process can serve: its primary database answers (503 otherwise).

    Redis is reported but does not fail readiness: the cache fails open, and pulling every process out of the
    load balancer because the cache is down would turn a cache outage into a full outage.
    """
    try:
        async with database.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailableError("the database does not answer", extra={"check": "database"}) from exc
    result = {"status": "ready", "database": "ok"}
    if settings.cache_redis is not None:
        try:
            await cache.store.ping()
            result["redis"] = "ok"
        except CacheStoreError:
            result["redis"] = "unavailable"
            result["status"] = "degraded"
    return result


@router.get("/metrics", include_in_schema=False)
async def metrics(exposition: ExpositionDep) -> Response:
    """Prometheus exposition: this process's metrics, or every worker process's when they share the port.

    Only on the internal listener: 371 KB of internals (routes, pools, replicas, Redis) are nobody's business."""
    return Response(await exposition.render(), media_type=CONTENT_TYPE_LATEST)
