"""Liveness and readiness probes for the load balancer and the orchestrator."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from potluck.cache.store import CacheStoreError
from potluck.deps import ContainerDep
from potluck.errors import ServiceUnavailableError
from potluck.observability import multiprocess

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(container: ContainerDep) -> dict[str, str]:
    """The process can serve: its primary database answers (503 otherwise).

    Redis is reported but does not fail readiness: the cache fails open, and pulling every process out of the
    load balancer because the cache is down would turn a cache outage into a full outage.
    """
    try:
        async with container.database.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailableError("the database does not answer", extra={"check": "database"}) from exc
    result = {"status": "ready", "database": "ok"}
    if container.settings.redis.url is not None:
        try:
            await container.cache.store.ping()
            result["redis"] = "ok"
        except CacheStoreError:
            result["redis"] = "unavailable"
            result["status"] = "degraded"
    return result


@router.get("/metrics", include_in_schema=False)
async def metrics(container: ContainerDep) -> Response:
    """Prometheus exposition: this process's metrics, or every worker process's when they share the port.

    In multiprocess mode the counters, histograms and gauges come merged from every process's files (read in a
    thread: that is file I/O), and Redis INFO, the same from any process, from this one.
    """
    path = multiprocess.directory()
    if path is None:
        return Response(generate_latest(container.registry), media_type=CONTENT_TYPE_LATEST)
    registry = multiprocess.exposition_registry(path, [c for c in (container.redis_info,) if c is not None])
    return Response(await asyncio.to_thread(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)
