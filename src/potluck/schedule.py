"""Every periodic job, declared once.

Celery beat sends each job on its interval in the full topology (`worker/app.py` builds the beat schedule and the
tasks from this list); the embedded default's API process runs the same jobs itself, in its own loop
(`bootstrap.Container.start`). A new periodic job is one more `PeriodicJob` here and nothing else: its work is a
service call on what `JobContext` offers, thin and idempotent (delivery is at least once).
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from potluck.backup.runner import BackupRunner
from potluck.cache.cache import Cache
from potluck.config import Settings
from potluck.db.base import utcnow
from potluck.db.engine import Database
from potluck.events.relay import Relay
from potluck.events.repository import OutboxRepository
from potluck.notification.repository import NotificationRepository
from potluck.recipe.service import RecipeService
from potluck.recommendation.service import ModelTrainer
from potluck.search.analytics import SearchAnalytics
from potluck.search.service import TRENDING_QUERIES_WINDOW_HOURS
from potluck.stats.repository import StatsRepository
from potluck.stats.service import ViewStats
from potluck.trending.service import TrendingService
from potluck.warming.service import CacheWarmer

RELAY_TASK = "events.relay"
FLUSH_VIEWS_TASK = "stats.flush_views"
PURGE_TASK = "events.purge"
PARTITIONS_TASK = "events.partitions"
WARM_TASK = "cache.warm"
TRENDING_TASK = "trending.refresh"
SEARCH_ROLLUP_TASK = "search.rollup"
BACKUP_FULL_TASK = "backup.full"
BACKUP_INCR_TASK = "backup.incr"
BACKUP_REDIS_TASK = "backup.redis"
RECOMMEND_TRAIN_TASK = "recommendation.train"
# Nightly: a day's likes move the model little, and training reads every like in the database.
RECOMMEND_TRAIN_SECONDS = 86_400.0
EDGE_VIEWS_TASK = "stats.ship_edge_views"
EDGE_ROTATE_TASK = "stats.rotate_edge_logs"


@dataclass(frozen=True)
class Background:
    """What background work reads and fills through (the relay's handlers, the warm job, scheduled refreshes).

    Its own small pool on the primary, so a burst of deliveries never takes the connections requests need (and its
    statements never mix with a request's). Its own Cache over the same store: the same leases and compare-and-set
    fills, but its own single-flight map, so no request joins a warm-up load that began before a write the request
    has already seen.
    """

    database: Database
    cache: Cache
    recipes: RecipeService
    trending: TrendingService
    warmer: CacheWarmer


class JobContext(Protocol):
    """What a job may use: the process's services (bootstrap's Container provides them)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def relay(self) -> Relay: ...
    @property
    def stats(self) -> ViewStats: ...
    @property
    def search_analytics(self) -> SearchAnalytics: ...
    @property
    def background(self) -> Background: ...
    @property
    def model_trainer(self) -> ModelTrainer: ...


@dataclass(frozen=True)
class PeriodicJob:
    name: str  # also the Celery task's name
    interval: Callable[[Settings], float]
    run: Callable[[JobContext], Awaitable[int]]
    # A send that waits in the broker's queue past this many seconds is dropped: the next send does the same work,
    # so a stopped worker does not come back to a pile of stale sends.
    expires: Callable[[float], float] = lambda interval: interval
    # False: the embedded default does this another way (its relay is woken by every commit, not polled).
    in_process: bool = True


async def relay_events(ctx: JobContext) -> int:
    """Deliver due outbox events until none is left or the drain budget is spent. Any number may run at once."""
    return await ctx.relay.drain()


async def flush_views(ctx: JobContext) -> int:
    """Move counted views to the database, exactly once."""
    return await ctx.stats.flush()


async def ship_edge_views(ctx: JobContext) -> int:
    """Count the views the edge answered (its nodes' hit logs) with the ones the API processes counted."""
    total = 0
    for path in ctx.settings.edge.view_logs:
        total += await ctx.stats.ship_edge_log(path)
    for path in ctx.settings.edge.gateway_logs:
        await ctx.stats.ship_gateway_log(path)  # 429s by limit, into potluck_gateway_rejected_total
    return total


async def rotate_edge_logs(ctx: JobContext) -> int:
    """Rotate each shipped log past its size or age bound (renamed to `.1`, its writer reopens the path), once the
    shipper has finished the previous generation: the edge nodes' request logs (varnishncsa reopens on SIGHUP) and
    the gateway's error logs (nginx reopens on SIGUSR1). Only the logs whose writers `cluster up` named."""
    edge = ctx.settings.edge
    logs = [
        *((path, writer, signal.SIGHUP) for path, writer in zip(edge.view_logs, edge.view_log_writers, strict=False)),
        *(
            (path, writer, signal.SIGUSR1)
            for path, writer in zip(edge.gateway_logs, edge.gateway_log_writers, strict=False)
        ),
    ]
    rotated = 0
    for path, writer, reopen in logs:
        rotated += await ctx.stats.rotate_log(
            path, writer, reopen, max_bytes=edge.view_log_rotate_bytes, max_seconds=edge.view_log_rotate_seconds
        )
    return rotated


async def purge_events(ctx: JobContext) -> int:
    """Forget delivered events past their retention."""
    retention = timedelta(days=ctx.settings.events.delivered_retention_days)
    async with ctx.background.database.write_session() as session:
        return await OutboxRepository(session).purge_delivered(utcnow() - retention)


async def maintain_partitions(ctx: JobContext) -> int:
    """Create the coming partitions and drop the expired ones (PostgreSQL; nothing to do on SQLite): the outbox's
    days, then the months of notifications and of the view-flush ledger. Each table in its own transaction.
    Returns the partitions created and dropped."""
    events, database, now = ctx.settings.events, ctx.background.database, utcnow()
    async with database.write_session() as session:
        outbox = await OutboxRepository(session).maintain_partitions(
            now, timedelta(days=events.delivered_retention_days)
        )
    async with database.write_session() as session:
        notifications = await NotificationRepository(session).maintain_partitions(
            now, timedelta(days=events.notification_retention_days)
        )
    async with database.write_session() as session:
        flushes = await StatsRepository(session).maintain_partitions(
            now, timedelta(days=events.stats_flush_retention_days)
        )
    return sum(len(c.created) + len(c.dropped) for c in (outbox, notifications, flushes))


async def warm_cache(ctx: JobContext) -> int:
    """The design's warm_cache: popular recipes, trending searches and trending lists, through guarded fills."""
    return (await ctx.background.warmer.run()).recipes


async def refresh_trending(ctx: JobContext) -> int:
    """Recompute every period's trending list and replace the cached one."""
    return sum((await ctx.background.trending.refresh()).values())


async def rollup_searches(ctx: JobContext) -> int:
    """Merge the last 24 hours of search counts into the set GET /search/trending reads."""
    return await ctx.search_analytics.rollup(hours=TRENDING_QUERIES_WINDOW_HOURS)


async def train_recommendations(ctx: JobContext) -> int:
    """Train the recommendation model on all likes and publish a new version (each process loads it itself)."""
    return (await ctx.model_trainer.train()).recipes


async def backup_full(ctx: JobContext) -> int:
    """A full pgBackRest backup (the design: daily). pgBackRest's lock makes an overlapping run fail, not double."""
    return await BackupRunner(ctx.settings.backup).postgres("full")


async def backup_incr(ctx: JobContext) -> int:
    """An incremental pgBackRest backup (hourly); the first one without a full is taken as a full."""
    return await BackupRunner(ctx.settings.backup).postgres("incr")


async def backup_redis(ctx: JobContext) -> int:
    """The coordination Redis's persistence files to the backup bucket (the cache instance refills: never)."""
    return await BackupRunner(ctx.settings.backup).redis()


SCHEDULE: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        RELAY_TASK,
        lambda s: s.worker.relay_interval_seconds,
        relay_events,
        expires=lambda i: max(i * 5, 5.0),
        in_process=False,
    ),
    PeriodicJob(
        FLUSH_VIEWS_TASK, lambda s: s.events.views_flush_seconds, flush_views, expires=lambda i: max(i * 3, 5.0)
    ),
    # On PostgreSQL the partitions job drops whole days first; the purge then deletes only what is left past
    # retention (delivered rows in the default partition). On SQLite the purge does it all.
    PeriodicJob(PARTITIONS_TASK, lambda s: s.worker.purge_interval_seconds, maintain_partitions),
    PeriodicJob(PURGE_TASK, lambda s: s.worker.purge_interval_seconds, purge_events),
    # Before the flush reads them: edge views reach the same Redis counts, then the database, within seconds.
    PeriodicJob(EDGE_VIEWS_TASK, lambda s: s.edge.views_interval_seconds, ship_edge_views, in_process=False),
    # The same logs, kept to a bound on disk: the worker that ships them knows when `.1` is finished.
    PeriodicJob(
        EDGE_ROTATE_TASK, lambda s: s.edge.view_log_rotate_interval_seconds, rotate_edge_logs, in_process=False
    ),
    PeriodicJob(WARM_TASK, lambda s: s.worker.warm_interval_seconds, warm_cache),
    PeriodicJob(TRENDING_TASK, lambda s: s.worker.trending_interval_seconds, refresh_trending),
    PeriodicJob(SEARCH_ROLLUP_TASK, lambda s: s.worker.search_rollup_interval_seconds, rollup_searches),
    PeriodicJob(RECOMMEND_TRAIN_TASK, lambda s: RECOMMEND_TRAIN_SECONDS, train_recommendations),
    # Shell out to pgBackRest on the database's host: the worker's job in the full topology, never the embedded
    # default's (it has no PostgreSQL). A send that waited a whole interval is dropped: the next one is due.
    PeriodicJob(BACKUP_FULL_TASK, lambda s: s.backup.full_interval_seconds, backup_full, in_process=False),
    PeriodicJob(BACKUP_INCR_TASK, lambda s: s.backup.incr_interval_seconds, backup_incr, in_process=False),
    PeriodicJob(BACKUP_REDIS_TASK, lambda s: s.backup.redis_interval_seconds, backup_redis, in_process=False),
)


def job(name: str) -> PeriodicJob:
    """The declared job called `name` (KeyError for an unknown one)."""
    for declared in SCHEDULE:
        if declared.name == name:
            return declared
    raise KeyError(name)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """schedule.SCHEDULE as Celery beat reads it: task name -> how often beat sends it, and when a send expires."""
    entries: dict[str, dict[str, Any]] = {}
    for job in SCHEDULE:
        interval = job.interval(settings)
        entries[job.name] = {"task": job.name, "schedule": interval, "options": {"expires": job.expires(interval)}}
    return entries
