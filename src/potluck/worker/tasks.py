"""The tasks: thin, idempotent, no arguments beyond ids; each runs a service call in the process's container."""

from __future__ import annotations

from datetime import timedelta

from potluck.bootstrap import Container
from potluck.db.base import utcnow
from potluck.events.repository import OutboxRepository


async def relay_events(container: Container) -> int:
    """Deliver due outbox events until none is left or the drain budget is spent. Any number may run at once."""
    return await container.events.relay.drain()


async def flush_views(container: Container) -> int:
    """Move counted views from Redis to the database, exactly once."""
    return await container.events.stats.flush()


async def purge_events(container: Container) -> int:
    """Forget delivered events past their retention."""
    retention = timedelta(days=container.settings.events.delivered_retention_days)
    async with container.database.write_session() as session:
        return await OutboxRepository(session).purge_delivered(session, utcnow() - retention)
