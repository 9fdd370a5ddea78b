"""Composition root: every engine, client and service is built here, once, from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from potluck.cache.bus import InvalidationBus
from potluck.cache.cache import Cache, FaultInjection
from potluck.cache.local import LocalCache
from potluck.cache.memory_store import MemoryStore
from potluck.cache.metrics import CacheMetrics
from potluck.cache.redis_store import RedisStore, redis_client
from potluck.config import Settings
from potluck.db.engine import Database
from potluck.events.handlers import install_default_handlers
from potluck.events.metrics import EventsMetrics
from potluck.events.outbox import Outbox
from potluck.events.registry import HandlerRegistry
from potluck.events.relay import Relay
from potluck.events.runtime import EventsRuntime
from potluck.media.handlers import install_media_handlers
from potluck.media.service import MediaService
from potluck.media.storage import ImageStorage, LocalDiskStorage, S3Storage
from potluck.notification.service import NotificationService
from potluck.observability import DbPoolCollector, RedisInfoPoller, database_pools
from potluck.recipe.service import RecipeService
from potluck.search.analytics import InMemorySearchAnalytics, RedisSearchAnalytics, SearchAnalytics
from potluck.search.handlers import install_search_handlers
from potluck.search.service import SearchService
from potluck.stats.service import ViewStats
from potluck.stats.views import ViewCounter
from potluck.trending.service import TrendingService
from potluck.user.security import PasswordHasher, TokenService
from potluck.user.service import UserService
from potluck.warming.service import CacheWarmer
from potluck.worker.schedule import TRENDING_TASK, WARM_TASK


@dataclass
class Container:
    settings: Settings
    registry: CollectorRegistry
    database: Database
    cache: Cache
    faults: FaultInjection | None
    tokens: TokenService
    users: UserService
    recipes: RecipeService
    media: MediaService
    redis_info: RedisInfoPoller | None
    # Kept here: in multiprocess mode its sampling thread holds it only weakly, and nothing else refers to it.
    db_pools: DbPoolCollector
    search_analytics: SearchAnalytics
    outbox: Outbox
    notifications: NotificationService
    views: ViewCounter
    events: EventsRuntime
    background: Background

    async def start(self) -> None:
        await self.database.start()
        self.cache.start()
        if self.redis_info is not None:
            self.redis_info.start()
        await self.events.start()
        if self.events.in_process:
            # The embedded default has no beat: this process runs the scheduled jobs itself (worker/schedule.py).
            worker = self.settings.worker
            self.events.schedule(worker.warm_interval_seconds, WARM_TASK, self.background.warmer.run)
            self.events.schedule(worker.trending_interval_seconds, TRENDING_TASK, self.background.trending.refresh)

    async def aclose(self) -> None:
        self.db_pools.close()
        await self.search_analytics.aclose()
        if self.redis_info is not None:
            await self.redis_info.aclose()
        await self.events.aclose()
        await self.media.aclose()
        await self.cache.aclose()
        await self.database.dispose()


def build_cache(settings: Settings, registry: CollectorRegistry, faults: FaultInjection | None) -> Cache:
    """Redis with an in-process first tier when Redis is configured; otherwise the same cache in memory."""
    metrics = CacheMetrics(registry)
    cfg = settings.cache
    if settings.redis.url is None:
        return Cache(MemoryStore(cfg.memory_max_entries), metrics, cfg, faults=faults)
    store = RedisStore(redis_client(settings.redis.url, cfg.timeout_ms / 1000))
    local = LocalCache(cfg.local_max_entries, cfg.local_ttl_seconds) if cfg.local_enabled else None
    bus = None
    if local is not None:
        # Its own connections, with room for blocking waits on acknowledgements.
        control = redis_client(settings.redis.url, max(1.0, 2 * cfg.ack_timeout_ms / 1000), reconnect=False)
        bus = InvalidationBus(control, local, metrics, ack_timeout=cfg.ack_timeout_ms / 1000)
    return Cache(store, metrics, cfg, local=local, bus=bus, faults=faults)


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


def build_background(settings: Settings, cache: Cache, analytics: SearchAnalytics) -> Background:
    db_settings = settings.database.model_copy(update={"replica_urls": [], "pool_size": 2, "max_overflow": 8})
    database = Database.from_settings(settings.database_url, db_settings)
    own_cache = Cache(cache.store, cache.metrics, cache.settings, faults=cache.faults, report_breaker=False)
    recipes = RecipeService(database, own_cache, settings.media.public_base_url)
    trending = TrendingService(database, own_cache, recipes)
    search = SearchService(database, own_cache, recipes, analytics)
    return Background(database, own_cache, recipes, trending, CacheWarmer(database, recipes, search, trending))


def build_media_storage(settings: Settings) -> ImageStorage:
    """An S3 bucket (behind a CDN) or, the embedded default, files under data_dir/media that the app serves."""
    media = settings.media
    if media.storage == "s3":
        key_id, secret = media.s3_access_key_id, media.s3_secret_access_key
        return S3Storage.connect(
            media.s3_bucket,
            endpoint_url=media.s3_endpoint_url,
            region=media.s3_region,
            access_key_id=key_id.get_secret_value() if key_id else None,
            secret_access_key=secret.get_secret_value() if secret else None,
            timeout_seconds=media.s3_timeout_seconds,
        )
    return LocalDiskStorage(media.local_dir or settings.data_dir / "media")


def build_events(
    settings: Settings,
    registry: CollectorRegistry,
    cache: Cache,
    outbox: Outbox,
    views: ViewCounter,
    background: Background,
    media: MediaService,
) -> EventsRuntime:
    """The outbox's relay and handlers, and where they run: this process (embedded default) or `potluck worker`."""
    database = background.database
    metrics = EventsMetrics(registry)
    warmer = background.recipes
    notifications = NotificationService(settings.events.fanout_batch_size)
    handlers = install_default_handlers(
        HandlerRegistry(), database=database, cache=cache, recipes=warmer, notifications=notifications
    )
    install_search_handlers(handlers, cache)  # the search.index hook: a strict generation bump
    install_media_handlers(handlers, database=database, cache=cache, media=media)  # deletes replaced images
    coord_url = settings.coord_redis_url
    coord = redis_client(coord_url, 1.0) if coord_url is not None else None
    in_process = settings.events.relay_in_process
    return EventsRuntime(
        settings=settings,
        database=database,
        outbox=outbox,
        handlers=handlers,
        relay=Relay(database, handlers, metrics, settings.events),
        metrics=metrics,
        views=views,
        stats=ViewStats(database, views, coord),
        coord=coord,
        in_process=coord is None if in_process is None else in_process,
    )


def bootstrap(settings: Settings) -> Container:
    registry = CollectorRegistry()
    database = Database.from_settings(settings.database_url, settings.database, registry)
    faults = FaultInjection() if settings.cache.test_hooks else None
    cache = build_cache(settings, registry, faults)
    db_pools = DbPoolCollector(database_pools(database), registry)
    redis_info = None
    if settings.redis.url is not None:
        redis_info = RedisInfoPoller(
            redis_client(settings.redis.url, 1.0),
            registry,
            interval=settings.observability.redis_info_interval_seconds,
            owns_client=True,
        )
    tokens = TokenService.from_settings(settings.auth, settings.data_dir)
    hasher = PasswordHasher.from_settings(settings.auth)
    media_base = settings.media.public_base_url
    outbox = Outbox(enabled=settings.events.enabled)
    recipes = RecipeService(database, cache, media_base, outbox)
    notifications = NotificationService(settings.events.fanout_batch_size)
    views = ViewCounter()
    # Search counts are data, not cache: on the non-evicting instance, so neither eviction nor a cold restart of
    # the cache instance loses them (the warm job after such a restart needs them most).
    analytics_url = settings.coord_redis_url
    search_analytics: SearchAnalytics = (
        RedisSearchAnalytics(redis_client(analytics_url, settings.cache.timeout_ms / 1000))
        if analytics_url is not None
        else InMemorySearchAnalytics()
    )
    background = build_background(settings, cache, search_analytics)
    storage = build_media_storage(settings)
    local_files = storage if isinstance(storage, LocalDiskStorage) else None
    media = MediaService(storage, recipes, settings.media, local_files=local_files)
    return Container(
        settings=settings,
        registry=registry,
        database=database,
        cache=cache,
        faults=faults,
        tokens=tokens,
        users=UserService(database, cache, hasher, tokens, media_base, outbox),
        recipes=recipes,
        media=media,
        redis_info=redis_info,
        db_pools=db_pools,
        search_analytics=search_analytics,
        outbox=outbox,
        notifications=notifications,
        views=views,
        events=build_events(settings, registry, cache, outbox, views, background, media),
        background=background,
    )
