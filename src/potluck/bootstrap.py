"""Composition root: every engine, client and service is built here, once per process, from Settings.

Adapters are chosen here by settings alone (Redis or in-process cache, S3 or local disk, PostgreSQL or SQLite), and
nowhere else. Routes receive the services as typed dependencies (`kit/wiring.py`: the `Container` is the process's
`Provider`); the worker and the CLI read the Container's fields; every domain's event reactions are installed by
`build_events` from the domain's own `handlers.py`; the periodic jobs come from `schedule.py`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from potluck.cache.bus import InvalidationBus
from potluck.cache.cache import Cache, FaultInjection
from potluck.cache.edge import EdgePurger
from potluck.cache.local import LocalCache
from potluck.cache.memory_store import MemoryStore
from potluck.cache.metrics import CacheMetrics
from potluck.cache.redis_store import RedisStore, redis_client
from potluck.cache.surrogate import SurrogateKeys
from potluck.config import Settings
from potluck.db.engine import Database
from potluck.events.metrics import EventsMetrics
from potluck.events.outbox import Outbox
from potluck.events.registry import HandlerRegistry
from potluck.events.relay import Relay
from potluck.events.runtime import EventsRuntime
from potluck.events.topics import EDGE_PURGE
from potluck.kit.mail import DirectoryMailer, Mailer, SmtpMailer
from potluck.kit.throttle import Limiter, MemoryWindowStore, RedisWindowStore, Throttles, WindowStore
from potluck.kit.wiring import Services
from potluck.media.handlers import install_media_handlers
from potluck.media.service import MediaService
from potluck.media.signing import UrlSigner
from potluck.media.storage import ImageStorage, LocalDiskStorage, S3Storage
from potluck.notification.handlers import install_notification_handlers
from potluck.notification.service import NotificationService
from potluck.observability import DbPoolCollector, RedisInfoPoller, database_pools
from potluck.observability.exposition import MetricsExposition
from potluck.recipe.handlers import install_recipe_handlers
from potluck.recipe.service import RecipeService
from potluck.recipe.views import ViewCounter
from potluck.recommendation.artefact import ArtefactStore, LocalArtefacts, ModelHolder, S3Artefacts
from potluck.recommendation.service import ModelTrainer, RecommendationService
from potluck.schedule import SCHEDULE, Background
from potluck.search.analytics import InMemorySearchAnalytics, RedisSearchAnalytics, SearchAnalytics
from potluck.search.handlers import install_search_handlers
from potluck.search.service import SearchService
from potluck.stats.service import EdgeTrafficMetrics, ViewStats
from potluck.trending.service import TrendingService
from potluck.user.account_mail import AccountMail
from potluck.user.audit import SecurityEvents
from potluck.user.handlers import install_user_handlers
from potluck.user.revocation import (
    MemoryRevocationStore,
    RedisRevocationStore,
    RevocationStore,
    SessionRevocations,
)
from potluck.user.security import PasswordHasher, TokenService
from potluck.user.service import UserService
from potluck.warming.service import CacheWarmer

logger = logging.getLogger("potluck.bootstrap")

T = TypeVar("T")


@dataclass
class Container:
    """Everything one process built. Routes never see it: they get its services through `get` (`Provider`)."""

    settings: Settings
    registry: CollectorRegistry
    database: Database
    cache: Cache
    faults: FaultInjection | None
    tokens: TokenService
    users: UserService
    revocations: SessionRevocations
    throttles: Throttles
    recipes: RecipeService
    search: SearchService
    trending: TrendingService
    recommendations: RecommendationService
    model_trainer: ModelTrainer
    media: MediaService
    redis_info: RedisInfoPoller | None
    # Kept here: in multiprocess mode its sampling thread holds it only weakly, and nothing else refers to it.
    db_pools: DbPoolCollector
    search_analytics: SearchAnalytics
    outbox: Outbox
    notifications: NotificationService
    views: ViewCounter
    stats: ViewStats
    events: EventsRuntime
    background: Background
    edge: EdgePurger | None = None
    services: Services = field(default_factory=Services)

    def get(self, kind: type[T]) -> T:
        """The one instance of `kind` this process built (kit/wiring.py)."""
        return self.services.get(kind)

    # The schedule's jobs use the relay (schedule.JobContext).
    @property
    def relay(self) -> Relay:
        return self.events.relay

    async def start(self) -> None:
        await self.database.start()
        await self.background.database.start()
        self.cache.start()
        # The background's own Cache (its own breaker and what it owes the store) recovers like the requests' one.
        self.background.cache.start()
        if self.edge is not None:
            self.edge.start()
        if self.redis_info is not None:
            self.redis_info.start()
        await self.events.start()
        events = self.settings.events
        if self.events.coord is not None:
            # This process's counts (views, searches) to Redis, where every process reads them: per process, so not
            # in the schedule, whose jobs run once for the whole deployment.
            self.events.every(events.views_push_seconds, "views.push", self.stats.push)
            self.events.every(events.views_push_seconds, "search.push", self.search_analytics.push)
        if self.events.in_process:
            # The embedded default has no beat: this process runs the scheduled jobs itself.
            for job in SCHEDULE:
                if job.in_process:
                    self.events.every(job.interval(self.settings), job.name, partial(job.run, self))
        elif self.events.coord is None:
            # Without Redis the counts can only go from this process's memory to the database.
            self.events.every(events.views_flush_seconds, "stats.flush_views", self.stats.flush)

    async def aclose(self) -> None:
        self.db_pools.close()
        self.users.hasher.close()
        await self.events.stop()
        await self._keep_views()
        await self.search_analytics.aclose()
        if self.redis_info is not None:
            await self.redis_info.aclose()
        await self.events.aclose()
        await self.media.aclose()
        if self.edge is not None:
            await self.edge.aclose()
        await self.background.cache.stop_recovering()
        await self.cache.aclose()
        await self.database.dispose()

    async def _keep_views(self) -> None:
        """What this process counted must not be lost with it."""
        try:
            if self.events.coord is not None:
                await self.stats.push()
            else:
                await self.stats.flush()
        except Exception:
            logger.exception("stats.final_flush_failed", extra={"recipes": len(self.views)})


def build_cache(settings: Settings, registry: CollectorRegistry, faults: FaultInjection | None) -> Cache:
    """Redis with an in-process first tier when Redis is configured; otherwise the same cache in memory."""
    metrics = CacheMetrics(registry)
    cfg = settings.cache
    target = settings.cache_redis
    if target is None:
        return Cache(MemoryStore(cfg.memory_max_entries), metrics, cfg, faults=faults)
    store = RedisStore(redis_client(target, cfg.timeout_ms / 1000))
    local = LocalCache(cfg.local_max_entries, cfg.local_ttl_seconds) if cfg.local_enabled else None
    bus = None
    if local is not None:
        # Its own connections, with room for blocking waits on acknowledgements.
        control = redis_client(target, max(1.0, 2 * cfg.ack_timeout_ms / 1000), reconnect=False)
        bus = InvalidationBus(control, local, metrics, ack_timeout=cfg.ack_timeout_ms / 1000)
    return Cache(store, metrics, cfg, local=local, bus=bus, faults=faults)


def build_edge(settings: Settings, registry: CollectorRegistry) -> EdgePurger | None:
    """The edge purger when edge nodes are configured; its purge debt lives in the coordination Redis."""
    if not settings.edge.purge_urls:
        return None
    target = settings.coord_redis
    if target is None:
        raise ValueError("edge.purge_urls needs a coordination Redis for the purge debt (redis.url or sentinels)")
    return EdgePurger(settings.edge, redis_client(target, settings.edge.purge_timeout_ms / 1000), registry)


def build_background(settings: Settings, cache: Cache, analytics: SearchAnalytics) -> Background:
    db_settings = settings.database.model_copy(update={"pool_size": 2, "max_overflow": 8})
    # The primary only, following the leader under Patroni like the requests' pool (db/topology.py).
    database = Database.from_settings(settings.database_url, db_settings, primary_only=True)
    own_cache = Cache(
        cache.store, cache.metrics, cache.settings, faults=cache.faults, edge=cache.edge, report_breaker=False
    )
    recipes = RecipeService(database, own_cache, settings.media.public_base_url)
    trending = TrendingService(database, own_cache, recipes)
    search = SearchService(database, own_cache, recipes, analytics)
    return Background(database, own_cache, recipes, trending, CacheWarmer(database, recipes, search, trending))


def build_media_storage(settings: Settings, signing_key: bytes) -> ImageStorage:
    """An S3 bucket (behind a CDN) or, the embedded default, files under data_dir/media that the app serves (a
    private image's with an HMAC signature made with `signing_key`)."""
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
    signer = UrlSigner(signing_key, media.public_base_url)
    return LocalDiskStorage(media.local_dir or settings.data_dir / "media", signer)


def build_artefact_store(storage: ImageStorage) -> ArtefactStore:
    """Trained models live beside the images: the same bucket or directory (recommendation/artefact.py)."""
    if isinstance(storage, S3Storage):
        return S3Artefacts(storage)
    if isinstance(storage, LocalDiskStorage):
        return LocalArtefacts(storage)
    raise TypeError(f"no model store for {type(storage).__name__}")


def build_search_analytics(settings: Settings) -> SearchAnalytics:
    # Search counts are data, not cache: on the non-evicting instance, so neither eviction nor a cold restart of
    # the cache instance loses them (the warm job after such a restart needs them most).
    target = settings.coord_redis
    if target is None:
        return InMemorySearchAnalytics()
    return RedisSearchAnalytics(redis_client(target, settings.cache.timeout_ms / 1000))


def build_security(
    settings: Settings, coord: aioredis.Redis | None, audit: SecurityEvents
) -> tuple[Throttles, RevocationStore]:
    """Throttle windows and the revoked-session set: on the non-evicting coordination Redis (an evicted window or
    revocation would be a hole), or in memory for the one-process embedded default."""
    store: WindowStore = MemoryWindowStore() if coord is None else RedisWindowStore(coord)
    revoked: RevocationStore = MemoryRevocationStore() if coord is None else RedisRevocationStore(coord)
    throttles = Throttles(Limiter(store), settings.throttle, on_refused=audit.refused, on_store_error=audit.store_error)
    return throttles, revoked


def build_users(
    settings: Settings,
    database: Database,
    cache: Cache,
    tokens: TokenService,
    outbox: Outbox,
    coord: aioredis.Redis | None,
    registry: CollectorRegistry,
) -> UserService:
    audit = SecurityEvents(registry)
    throttles, revoked = build_security(settings, coord, audit)
    users: UserService | None = None

    async def ask_database(session_id: uuid.UUID) -> bool:
        assert users is not None
        return await users.is_session_revoked(session_id)

    revocations = SessionRevocations(
        revoked,
        # An access token outlives its session's revocation by at most this (and the clock skew it allows).
        ttl=tokens.access_ttl.total_seconds() + 60,
        fallback=ask_database,
        recheck_seconds=settings.auth.revocation_recheck_seconds,
        on_store_error=audit.store_error,
    )
    users = UserService(
        database,
        cache,
        PasswordHasher.from_settings(settings.auth),
        tokens,
        settings.media.public_base_url,
        revocations=revocations,
        throttles=throttles,
        audit=audit,
        outbox=outbox,
    )
    return users


def build_mailer(settings: Settings) -> Mailer:
    """SMTP when a server is configured; otherwise .eml files under data_dir/mail (the embedded default)."""
    if settings.mail.smtp_host:
        return SmtpMailer(settings.mail)
    return DirectoryMailer(settings.data_dir / "mail")


def build_handlers(
    cache: Cache,
    background: Background,
    notifications: NotificationService,
    media: MediaService,
    account_mail: AccountMail | None = None,
) -> HandlerRegistry:
    """Every domain's reactions to events, from its own handlers.py, run on the background pool and cache."""
    registry = HandlerRegistry()
    database = background.database
    install_search_handlers(registry, cache)  # a strict, once-per-event search generation bump
    install_notification_handlers(registry, database=database, notifications=notifications)
    install_recipe_handlers(registry, cache=cache, recipes=background.recipes)
    install_user_handlers(registry, cache=cache, account_mail=account_mail)
    install_media_handlers(registry, database=database, cache=cache, media=media)  # deletes replaced images
    if cache.edge is not None:  # purges the edge missed, retried until every node acks (cache/edge.py)
        registry.register(EDGE_PURGE, "edge.purge", cache.edge.deliver)
    return registry


def build_events(
    settings: Settings,
    registry: CollectorRegistry,
    outbox: Outbox,
    handlers: HandlerRegistry,
    background: Background,
    coord: aioredis.Redis | None,
) -> EventsRuntime:
    """The outbox's relay and where it runs: this process (embedded default) or `potluck worker`."""
    database = background.database
    metrics = EventsMetrics(registry)
    in_process = settings.events.relay_in_process
    return EventsRuntime(
        settings=settings,
        database=database,
        outbox=outbox,
        handlers=handlers,
        relay=Relay(database, handlers, metrics, settings.events),
        metrics=metrics,
        coord=coord,
        in_process=coord is None if in_process is None else in_process,
    )


def _provide(container: Container) -> None:
    """What routes may ask for (kit/wiring.py), each under its own type."""
    services = container.services
    services.add(Settings, container.settings)
    services.add(Database, container.database)
    services.add(Cache, container.cache)
    services.add(SurrogateKeys, SurrogateKeys.from_settings(container.settings.edge))
    services.add(TokenService, container.tokens)
    services.add(UserService, container.users)
    services.add(SessionRevocations, container.revocations)
    services.add(Throttles, container.throttles)
    services.add(RecipeService, container.recipes)
    services.add(ViewCounter, container.views)
    services.add(SearchService, container.search)
    services.add(TrendingService, container.trending)
    services.add(RecommendationService, container.recommendations)
    services.add(MediaService, container.media)
    services.add(NotificationService, container.notifications)
    process_wide = (container.redis_info,) if container.redis_info is not None else ()
    services.add(MetricsExposition, MetricsExposition(container.registry, process_wide))
    if container.faults is not None:
        services.add(FaultInjection, container.faults)


def bootstrap(settings: Settings) -> Container:
    registry = CollectorRegistry()
    database = Database.from_settings(settings.database_url, settings.database, registry)
    faults = FaultInjection() if settings.cache.test_hooks else None
    cache = build_cache(settings, registry, faults)
    cache.edge = build_edge(settings, registry)
    redis_info = None
    cache_target = settings.cache_redis
    if cache_target is not None:
        redis_info = RedisInfoPoller(
            redis_client(cache_target, 1.0),
            registry,
            interval=settings.observability.redis_info_interval_seconds,
            owns_client=True,
        )
    media_base = settings.media.public_base_url
    outbox = Outbox(enabled=settings.events.enabled)
    if cache.edge is not None:  # a write's keys owed to the edge: one outbox row in the write's transaction
        cache.edge.journal = lambda session, purge_id, payload: outbox.record_at_commit(
            session, EDGE_PURGE, purge_id, payload
        )
        cache.edge.retiers = cache.redo_tiers
    recipes = RecipeService(database, cache, media_base, outbox)
    notifications = NotificationService(settings.events.fanout_batch_size)
    views = ViewCounter()
    search_analytics = build_search_analytics(settings)
    background = build_background(settings, cache, search_analytics)
    tokens = TokenService.from_settings(settings.auth, settings.data_dir)
    storage = build_media_storage(settings, tokens.derived_key("potluck media url"))
    local_files = storage if isinstance(storage, LocalDiskStorage) else None
    artefacts = build_artefact_store(storage)
    media = MediaService(storage, recipes, settings.media, local_files=local_files)
    coord_target = settings.coord_redis
    coord = redis_client(coord_target, 1.0) if coord_target is not None else None
    account_mail = AccountMail(build_mailer(settings), settings.mail)
    handlers = build_handlers(cache, background, notifications, media, account_mail)
    tokens = TokenService.from_settings(settings.auth, settings.data_dir)
    users = build_users(settings, database, cache, tokens, outbox, coord, registry)
    users.deletion_hooks.append(recipes.forget_user)
    container = Container(
        settings=settings,
        registry=registry,
        database=database,
        cache=cache,
        faults=faults,
        tokens=tokens,
        users=users,
        revocations=users.revocations,
        throttles=users.throttles,
        recipes=recipes,
        search=SearchService(database, cache, recipes, search_analytics),
        trending=TrendingService(database, cache, recipes),
        recommendations=RecommendationService(database, cache, recipes, ModelHolder(artefacts)),
        model_trainer=ModelTrainer(background.database, artefacts),
        media=media,
        redis_info=redis_info,
        db_pools=DbPoolCollector(lambda: database_pools(database), registry),
        search_analytics=search_analytics,
        outbox=outbox,
        notifications=notifications,
        views=views,
        stats=ViewStats(background.database, views, coord, EdgeTrafficMetrics(registry)),
        events=build_events(settings, registry, outbox, handlers, background, coord),
        background=background,
        edge=cache.edge,
    )
    _provide(container)
    return container
