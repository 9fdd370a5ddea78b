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
from potluck.recipe.service import RecipeService
from potluck.user.security import PasswordHasher, TokenService
from potluck.user.service import UserService


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

    async def start(self) -> None:
        await self.database.start()
        self.cache.start()

    async def aclose(self) -> None:
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
        control = redis_client(settings.redis.url, max(1.0, 2 * cfg.ack_timeout_ms / 1000))
        bus = InvalidationBus(control, local, metrics, ack_timeout=cfg.ack_timeout_ms / 1000)
    return Cache(store, metrics, cfg, local=local, bus=bus, faults=faults)


def bootstrap(settings: Settings) -> Container:
    registry = CollectorRegistry()
    database = Database.from_settings(settings.database_url, settings.database, registry)
    faults = FaultInjection() if settings.cache.test_hooks else None
    cache = build_cache(settings, registry, faults)
    tokens = TokenService.from_settings(settings.auth, settings.data_dir)
    hasher = PasswordHasher.from_settings(settings.auth)
    media_base = settings.media.public_base_url
    return Container(
        settings=settings,
        registry=registry,
        database=database,
        cache=cache,
        faults=faults,
        tokens=tokens,
        users=UserService(database, cache, hasher, tokens, media_base),
        recipes=RecipeService(database, cache, media_base),
    )
