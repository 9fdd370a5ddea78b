"""The tasks: thin, idempotent, no arguments beyond ids; each runs a service call in the process's container."""

from __future__ import annotations

from datetime import timedelta

from potluck.bootstrap import Container
from potluck.db.base import utcnow
from potluck.events.repository import OutboxRepository
from potluck.search.service import TRENDING_QUERIES_WINDOW_HOURS


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


async def warm_cache(container: Container) -> int:
    """The design's warm_cache: popular recipes, trending searches and trending lists, through guarded fills."""
    return (await container.background.warmer.run()).recipes


async def refresh_trending(container: Container) -> int:
    """Recompute every period's trending list and replace the cached one."""
    return sum((await container.background.trending.refresh()).values())


async def rollup_searches(container: Container) -> int:
    """Merge the last 24 hours of search counts into the set GET /search/trending reads."""
    return await container.search_analytics.rollup(hours=TRENDING_QUERIES_WINDOW_HOURS)
