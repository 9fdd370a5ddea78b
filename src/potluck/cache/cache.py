"""The two-tier cache-aside: where every cached read decides, and where every invalidation goes.

Read (`get_or_fill`): first tier -> second tier -> one lease holder loads from the database and fills with a
compare-and-set; other readers wait briefly for that fill or read through. Hot entries are refreshed early
(XFetch) by one reader. Any store error, timeout or open breaker sends the read to the database.

Write (`invalidate`, called after commit): drop the keys from this process's first tier, delete them from the
store (which also deletes any lease, so a fill racing with the write is refused), then tell every other process.
If the store is unavailable the keys wait in `pending`, and this process does not read the store again before
they are delivered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

from potluck.cache.breaker import CircuitBreaker
from potluck.cache.bus import InvalidationBus
from potluck.cache.edge import EdgePurger
from potluck.cache.entry import Entry, decode, encode, new_token, should_refresh_early
from potluck.cache.families import Family
from potluck.cache.keys import GENERATION_MARKER_TTL_MS, generation_marker, refresh_lock_key
from potluck.cache.loaded import FaultInjection, Loaded, Loader
from potluck.cache.local import LocalCache
from potluck.cache.metrics import CacheMetrics
from potluck.cache.store import CacheStore, CacheStoreError
from potluck.config import CacheSettings
from potluck.db.session import WriteSession

__all__ = ["Cache", "FaultInjection", "Loaded", "Loader"]

logger = logging.getLogger("potluck.cache")

MAX_PENDING = 100_000
Bump = tuple[str, int | None]  # a generation bumped after a write, and the outbox event owing it (None: always)


class _FillAbandonedError(Exception):
    """Set on a single-flight future whose owner was cancelled: its waiters load the key themselves."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Cache:
    def __init__(
        self,
        store: CacheStore,
        metrics: CacheMetrics,
        settings: CacheSettings,
        *,
        local: LocalCache | None = None,
        bus: InvalidationBus | None = None,
        faults: FaultInjection | None = None,
        edge: EdgePurger | None = None,
        report_breaker: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.local = local
        self.bus = bus
        self.faults = faults
        # The HTTP cache in front of the API: purged by the same keys, after the tiers (cache/edge.py).
        self.edge = edge
        self.breaker = CircuitBreaker(
            settings.breaker_failures,
            settings.breaker_reset_seconds,
            # One breaker per process drives the gauge (the requests' cache): a background Cache over the same
            # metrics would overwrite it.
            on_change=(lambda is_open: metrics.breaker_open.set(1 if is_open else 0)) if report_breaker else None,
        )
        self.pending: set[str] = set()
        self.pending_generations: set[str] = set()
        self._inflight: dict[str, asyncio.Future[Loaded]] = {}
        self._rng = rng or random.Random()
        self._drainer: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.bus is not None:
            self.bus.start()
        self._drainer = asyncio.create_task(self._recover_loop(), name="potluck-cache-recover")

    async def aclose(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
        if self.bus is not None:
            await self.bus.stop()
        await self.store.aclose()

    async def get_or_fill(self, family: Family, key: str, loader: Loader) -> Loaded:
        """The value for `key`, from the fastest tier that has it, loading it at most once across processes."""
        if not self.settings.enabled:
            return await loader()
        local = self.local
        epoch = local.epoch if local is not None else 0
        if local is not None and local.enabled:
            entry = local.get(key)
            if entry is not None:
                self.metrics.hits.labels(family.name, "l1").inc()
                self.metrics.time_saved.labels(family.name).inc(entry.delta_ms / 1000)
                return Loaded(entry.payload, entry.meta)
            self.metrics.misses.labels(family.name, "l1").inc()
        # One request per key and process goes on; the others in this process share its result.
        inflight = self._inflight.get(key)
        if inflight is not None:
            try:
                return await asyncio.shield(inflight)
            except _FillAbandonedError:
                # The request that was loading it was cancelled (its client left, or a sibling task of its
                # TaskGroup failed): that is no reason to fail this one. Load it ourselves.
                return await self.get_or_fill(family, key, loader)
        future: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._second_tier(family, key, loader, epoch)
        except asyncio.CancelledError:
            future.set_exception(_FillAbandonedError(key))
            future.exception()  # mark retrieved: waiters handle it, nobody else must
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]

    async def refresh(self, family: Family, key: str, loader: Loader) -> Loaded:
        """Reload `key` now and store the result: a scheduled recompute (trending) rather than a reader's miss.

        Guarded like every other write of the cache: an empty key is filled under a lease (a writer's delete in
        between refuses the fill), a present entry is replaced only if it is still exactly the entry read (the
        early-refresh compare-and-set), and when another process is already refreshing it, its entry is kept.
        """
        if not self.settings.enabled:
            return await loader()
        epoch = self.local.epoch if self.local is not None else 0
        return await self._second_tier(family, key, loader, epoch, refresh=True)

    async def get_hit(self, family: Family, key: str, loader: Loader) -> Loaded | None:
        """What either tier holds for `key` (one store GET at most), or None: a miss, a lease, a store error.

        Counts what it serves (a first-tier miss only when the second tier then hits), never a miss it returns:
        the caller then asks `get_or_fill` (lease, single flight, fill), which counts it. A hit XFetch picks for
        early refresh is refreshed here as in `get_or_fill`, so readers answered this way still keep a hot key
        from expiring. A key this process is loading right now is left to `get_or_fill` (single flight)."""
        if not self.settings.enabled:
            return None
        local = self.local
        epoch = local.epoch if local is not None else 0
        if local is not None:
            entry = local.get(key)
            if entry is not None:
                return self._hit(family, "l1", entry)
        if key in self._inflight or not await self._store_usable():
            return None
        try:
            raw = await self.store.get(key)
            self.breaker.record_success()
        except CacheStoreError:
            self._record_failure(family, "get")
            return None
        entry = decode(raw) if raw is not None else None
        if entry is None:
            return None
        if local is not None and local.enabled:
            self.metrics.misses.labels(family.name, "l1").inc()  # counted only now: a miss here is get_or_fill's
        self.metrics.hits.labels(family.name, "l2").inc()
        self.metrics.time_saved.labels(family.name).inc(entry.delta_ms / 1000)
        return await self._serve(family, key, entry, loader, epoch)

    async def get_many(self, family: Family, keys: Sequence[str]) -> dict[str, Loaded]:
        """The entries of `keys` that either tier holds, by key: the first tier under its rules (only while the
        subscription is up; what the store returns is remembered only if no invalidation arrived meanwhile), then
        one MGET for the rest. Leases and misses are left out and not counted: the caller asks `get_or_fill` for
        them (lease, single flight, fill), which counts them. A store error returns the first tier's hits."""
        if not self.settings.enabled or not keys:
            return {}
        found: dict[str, Loaded] = {}
        local = self.local
        epoch = local.epoch if local is not None else 0
        rest = list(keys)
        if local is not None and local.enabled:
            rest = []
            for key in keys:
                entry = local.get(key)
                if entry is None:
                    rest.append(key)
                else:
                    found[key] = self._hit(family, "l1", entry)
        if not rest or not await self._store_usable():
            return found
        try:
            raws = await self.store.get_many(rest)
            self.breaker.record_success()
        except CacheStoreError:
            self._record_failure(family, "get")
            return found
        for key, raw in zip(rest, raws, strict=True):
            entry = decode(raw) if raw is not None else None
            if entry is not None:
                found[key] = self._hit(family, "l2", entry)
                self._remember(key, entry, epoch)
        return found

    def _hit(self, family: Family, tier: str, entry: Entry) -> Loaded:
        self.metrics.hits.labels(family.name, tier).inc()
        self.metrics.time_saved.labels(family.name).inc(entry.delta_ms / 1000)
        return Loaded(entry.payload, entry.meta)

    async def _second_tier(
        self, family: Family, key: str, loader: Loader, epoch: int, *, refresh: bool = False
    ) -> Loaded:
        """Redis (or the memory store) for `key`; `refresh`: replace a present entry now (and count no read)."""
        if not await self._store_usable():
            self.metrics.bypasses.labels(family.name).inc()
            return await loader()
        try:
            raw = await self.store.get(key)
            self.breaker.record_success()
        except CacheStoreError:
            return await self._store_failed(family, "get", loader)

        entry = decode(raw) if raw is not None else None
        if entry is not None:
            if not refresh:
                self.metrics.hits.labels(family.name, "l2").inc()
                self.metrics.time_saved.labels(family.name).inc(entry.delta_ms / 1000)
            return await self._serve(family, key, entry, loader, epoch, refresh=refresh)
        if not refresh:
            self.metrics.misses.labels(family.name, "l2").inc()
        # Empty, or a lease: try for the lease (it is taken over only if its holder is past its deadline).
        return await self._lease_and_fill(family, key, loader, epoch)

    async def _serve(
        self, family: Family, key: str, entry: Entry, loader: Loader, epoch: int, *, refresh: bool = False
    ) -> Loaded:
        """A second-tier entry read: refreshed now if XFetch (or `refresh`) says so, else remembered and returned."""
        now = _now_ms()
        if refresh or should_refresh_early(now, entry, self.settings.xfetch_beta, 1.0 - self._rng.random()):
            refreshed = await self._refresh_early(family, key, entry, loader, epoch)
            if refreshed is not None:
                return refreshed
        self._remember(key, entry, epoch)
        return Loaded(entry.payload, entry.meta)

    async def _lease_and_fill(self, family: Family, key: str, loader: Loader, epoch: int) -> Loaded:
        token = new_token()
        try:
            current = await self.store.acquire_lease(key, token, self.settings.lease_ms)
        except CacheStoreError:
            return await self._store_failed(family, "lease", loader)
        if current is not None:
            entry = decode(current)
            if entry is not None:  # filled between our get and our lease
                self.metrics.hits.labels(family.name, "l2").inc()
                self._remember(key, entry, epoch)
                return Loaded(entry.payload, entry.meta)
            return await self._wait_for_fill(family, key, loader, epoch)

        loaded, delta_ms = await self._load(family, loader)
        if self.faults is not None:
            await self.faults.pause_if_asked(key)
        value = self._encode(family, loaded, delta_ms)
        try:
            stored = await self.store.fill(key, token, value, self._ttl_ms(family, loaded))
        except CacheStoreError:
            self._record_failure(family, "fill")
            return loaded
        self.metrics.fills.labels(family.name, "stored" if stored else "refused").inc()
        if stored:
            entry = decode(value)
            if entry is not None:
                self._remember(key, entry, epoch)
        return loaded

    async def _wait_for_fill(self, family: Family, key: str, loader: Loader, epoch: int) -> Loaded:
        """Another reader holds the lease: poll briefly for its fill, else read through without filling."""
        deadline = time.monotonic() + self.settings.lease_wait_ms / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(self.settings.lease_poll_ms / 1000)
            try:
                raw = await self.store.get(key)
            except CacheStoreError:
                return await self._store_failed(family, "get", loader)
            if raw is None:
                # A writer deleted the lease: the fill will be refused; don't wait for it.
                self.metrics.lease_waits.labels(family.name, "invalidated").inc()
                return await self._lease_and_fill(family, key, loader, epoch)
            entry = decode(raw)
            if entry is not None:
                self.metrics.lease_waits.labels(family.name, "served").inc()
                self._remember(key, entry, epoch)
                return Loaded(entry.payload, entry.meta)
        self.metrics.lease_waits.labels(family.name, "timeout").inc()
        loaded, _ = await self._load(family, loader)
        return loaded

    async def _refresh_early(self, family: Family, key: str, entry: Entry, loader: Loader, epoch: int) -> Loaded | None:
        """XFetch chose this reader: reload and replace exactly the entry it saw, once across processes."""
        try:
            if not await self.store.try_lock(refresh_lock_key(key), self.settings.lease_ms):
                return None
        except CacheStoreError:
            self._record_failure(family, "refresh")
            return None
        loaded, delta_ms = await self._load(family, loader)
        if self.faults is not None:
            await self.faults.pause_if_asked(key)
        value = self._encode(family, loaded, delta_ms)
        try:
            replaced = await self.store.replace(key, entry.identity, value, self._ttl_ms(family, loaded))
        except CacheStoreError:
            self._record_failure(family, "refresh")
            return loaded
        self.metrics.early_refreshes.labels(family.name).inc()
        try:
            await self.store.delete([refresh_lock_key(key)])  # the next cycle's refresher must not wait for it
        except CacheStoreError:
            self._record_failure(family, "refresh")
        if replaced:
            fresh = decode(value)
            if fresh is not None:
                self._remember(key, fresh, epoch)
        return loaded

    async def _load(self, family: Family, loader: Loader) -> tuple[Loaded, int]:
        started = time.perf_counter()
        loaded = await loader()
        elapsed = time.perf_counter() - started
        self.metrics.loads.labels(family.name).observe(elapsed)
        return loaded, max(1, int(elapsed * 1000))

    def _encode(self, family: Family, loaded: Loaded, delta_ms: int) -> bytes:
        return encode(loaded.payload, loaded.meta, _now_ms() + self._ttl_ms(family, loaded), delta_ms)

    @staticmethod
    def _ttl_ms(family: Family, loaded: Loaded) -> int:
        return (family.ttl_seconds if loaded.payload is not None else family.negative_ttl_seconds) * 1000

    def _remember(self, key: str, entry: Entry, epoch: int) -> None:
        if self.local is not None:
            self.local.put(key, entry, epoch, _now_ms())

    def _record_failure(self, family: Family, operation: str) -> None:
        self.metrics.errors.labels(family.name, operation).inc()
        self.breaker.record_failure()

    async def _store_failed(self, family: Family, operation: str, loader: Loader) -> Loaded:
        self._record_failure(family, operation)
        return await loader()

    async def _store_usable(self) -> bool:
        """Requests use the store only while the breaker is closed and this process owes it nothing."""
        return self.breaker.allow() and not self.pending and not self.pending_generations

    async def _recover(self) -> bool:
        """Probe the store and deliver what this process owes it; closes the breaker on success."""
        keys = sorted(self.pending)
        generations = sorted(self.pending_generations)
        try:
            await self.store.ping()
            for generation_key in generations:
                await self.store.incr(generation_key)
            self.pending_generations.difference_update(generations)
            if keys:
                await self.store.delete(keys)
                if self.bus is not None:
                    await self.bus.publish(keys)
        except Exception:  # the store or the bus is still unavailable
            self.breaker.record_failure()
            return False
        self.pending.difference_update(keys)
        self.metrics.pending.set(len(self.pending))
        self.breaker.record_success()
        if keys or generations:
            logger.info("cache.pending_delivered", extra={"keys": len(keys), "generations": len(generations)})
        return True

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recover_interval_ms / 1000)
            if self.pending or self.pending_generations or self.breaker.probe_due():
                await self._recover()

    # --- the write path --------------------------------------------------------------------------------------

    async def invalidate(self, keys: Sequence[str]) -> None:
        """Forget `keys` in every tier of every process, then at the edge. Never raises: the write happened."""
        await self._invalidate_tiers(keys)
        if self.edge is not None:
            await self.edge.purge(keys)

    async def _invalidate_tiers(self, keys: Sequence[str]) -> bool:
        """True once every process's tiers have dropped `keys`; False when deferred (in `pending`)."""
        if not keys or not self.settings.enabled:
            return True
        if self.local is not None:
            self.local.invalidate(keys)
        for key in keys:
            # A load that began before this write must not be joined by requests that come after it.
            self._inflight.pop(key, None)
        if not self.breaker.allow():
            self._defer(keys)
            return False
        try:
            await self.store.delete(keys)
            if self.bus is not None:
                await self.bus.publish(keys)
        except Exception:
            self._defer(keys)
            self.breaker.record_failure()
            return False
        self.breaker.record_success()
        self.metrics.invalidations.labels("sent").inc(len(keys))
        return True

    async def invalidate_strict(self, keys: Sequence[str]) -> None:
        """Forget `keys` in every tier of every process, or raise CacheStoreError: the outbox retries it until the
        store is back. Not the edge: the write owed it its keys in an `edge.purge` event of its own."""
        if not keys or not self.settings.enabled:
            return
        if self.local is not None:
            self.local.invalidate(keys)
        await self.store.delete(keys)
        if self.bus is not None:
            try:
                await self.bus.publish(keys)
            except Exception as exc:
                raise CacheStoreError(f"invalidation not published: {exc!r}") from exc
        self.metrics.invalidations.labels("sent").inc(len(keys))

    def _defer(self, keys: Sequence[str]) -> None:
        if len(self.pending) + len(keys) > MAX_PENDING:
            logger.error("cache.pending_overflow", extra={"pending": len(self.pending)})
        self.pending.update(keys)
        self.metrics.invalidations.labels("deferred").inc(len(keys))
        self.metrics.pending.set(len(self.pending))

    def invalidate_after_commit(
        self, session: WriteSession, *keys: str, edge_also: Sequence[str] = (), bumps: Sequence[Bump] = ()
    ) -> None:
        """Once `session` commits: `keys` leave the tiers, `bumps` happen, then one purge takes `keys` and `edge_also`
        (names only edge pages carry) to the edge, last. With an edge they are also owed durably (`edge.purge`)."""
        edge_keys = [*keys, *edge_also]
        purge_id = self.edge.owe(session, edge_keys, keys) if self.edge is not None else None

        async def after() -> None:
            landed = await self._invalidate_tiers(keys)
            for key, event_id in bumps:
                landed = await self._bump(key, event_id) and landed
            if self.edge is not None:  # done only if the tiers took it all; else the relay redoes tiers, then edge
                await self.edge.purge(edge_keys, purge_id=purge_id if landed else None)

        session.after_commit(after)

    async def generation(self, key: str) -> int | None:
        """A generation counter (None when the store is unavailable: the caller then skips the cache)."""
        if not self.settings.enabled or not await self._store_usable():
            return None
        try:
            return await self.store.get_int(key)
        except CacheStoreError:
            self.breaker.record_failure()
            return None

    async def bump_generation(self, key: str, *, event_id: int | None = None) -> None:
        """One INCR makes every entry under the old generation unreachable: O(1), whatever their number.

        With `event_id`, the bump owed for that outbox event happens once: the outbox's durable repeat of it
        (`search/handlers.py`) finds it done and does not empty the cache a second time."""
        await self._bump(key, event_id)
        if self.edge is not None:
            await self.edge.purge([key])  # search pages carry the generation's key as their own

    async def _bump(self, key: str, event_id: int | None) -> bool:
        if not self.settings.enabled:
            return True
        try:
            if event_id is None:
                await self.store.incr(key)
            else:
                await self.store.incr_once(key, generation_marker(key, event_id), GENERATION_MARKER_TTL_MS)
        except CacheStoreError:
            self.breaker.record_failure()
            self.pending_generations.add(key)
            logger.warning("cache.generation_bump_deferred", extra={"key": key})
            return False
        return True
