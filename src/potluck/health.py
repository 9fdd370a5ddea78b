"""Liveness and readiness probes for the load balancer and the orchestrator."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from potluck.deps import ContainerDep
from potluck.errors import ServiceUnavailableError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(container: ContainerDep) -> dict[str, str]:
    """The process can serve: its primary database answers."""
    try:
        async with container.database.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailableError("the database does not answer", extra={"check": "database"}) from exc
    return {"status": "ready", "database": "ok"}
