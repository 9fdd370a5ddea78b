"""The beat schedule, in one place. Pure: plain data from Settings."""

from __future__ import annotations

from typing import Any

from potluck.config import Settings

RELAY_TASK = "events.relay"
FLUSH_VIEWS_TASK = "stats.flush_views"
PURGE_TASK = "events.purge"
WARM_TASK = "cache.warm"
TRENDING_TASK = "trending.refresh"
SEARCH_ROLLUP_TASK = "search.rollup"


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Task name -> how often beat sends it. A send that waits in the queue past its interval expires: the
    next one does the same work, so a stopped worker does not come back to a pile of stale sends."""
    relay = settings.worker.relay_interval_seconds
    flush = settings.events.views_flush_seconds
    purge = settings.worker.purge_interval_seconds
    warm = settings.worker.warm_interval_seconds
    trending = settings.worker.trending_interval_seconds
    rollup = settings.worker.search_rollup_interval_seconds
    return {
        RELAY_TASK: {"task": RELAY_TASK, "schedule": relay, "options": {"expires": max(relay * 5, 5.0)}},
        FLUSH_VIEWS_TASK: {"task": FLUSH_VIEWS_TASK, "schedule": flush, "options": {"expires": max(flush * 3, 5.0)}},
        PURGE_TASK: {"task": PURGE_TASK, "schedule": purge, "options": {"expires": purge}},
        WARM_TASK: {"task": WARM_TASK, "schedule": warm, "options": {"expires": warm}},
        TRENDING_TASK: {"task": TRENDING_TASK, "schedule": trending, "options": {"expires": trending}},
        SEARCH_ROLLUP_TASK: {"task": SEARCH_ROLLUP_TASK, "schedule": rollup, "options": {"expires": rollup}},
    }
