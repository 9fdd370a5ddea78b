"""What a Cache is made of, how it copes with its store failing, and the write path.

State: the store (Redis, or memory in the embedded default), this process's first tier and the invalidation bus,
the breaker, and what this process owes the store (`pending` keys, `pending_generations`) while it is unavailable.
Write (`invalidate`, called after commit): drop the keys from this process's first tier, delete them from the
store (which also deletes any lease, so a fill racing with the write is refused), then tell every other process.
If the store is unavailable the keys wait in `pending`, and this process does not read the store again before
they are delivered (`_store_usable`); a background loop delivers them and closes the breaker.

The read path (`Cache`, cache/cache.py) builds on this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence

from potluck.cache.breaker import CircuitBreaker
from potluck.cache.bus import InvalidationBus
from potluck.cache.edge import EdgePurger
from potluck.cache.families import Family
from potluck.cache.keys import GENERATION_MARKER_TTL_MS, Bump, generation_marker
from potluck.cache.loaded import FaultInjection, Loaded, Loader
from potluck.cache.local import LocalCache
from potluck.cache.metrics import CacheMetrics
from potluck.cache.store import CacheStore, CacheStoreError
from potluck.config import CacheSettings
from potluck.db.session import WriteSession

logger = logging.getLogger("potluck.cache")

MAX_PENDING = 100_000


class CacheBase:
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
            on_change=self._breaker_changed,
        )
        self._report_breaker = report_breaker
        self.pending: set[str] = set()
        self.pending_generations: set[str] = set()
        self._inflight: dict[str, asyncio.Future[Loaded]] = {}
        self._rng = rng or random.Random()
        self._drainer: asyncio.Task[None] | None = None
        # Set when something becomes owed or the breaker opens: the recover loop sleeps on it otherwise.
        self._owed = asyncio.Event()

    def start(self) -> None:
        if self.bus is not None:
            self.bus.start()
        self._drainer = asyncio.create_task(self._recover_loop(), name="potluck-cache-recover")

    async def stop_recovering(self) -> None:
        """Stop the recover loop (a Cache sharing another's store stops this way: the store is not its own)."""
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None

    async def aclose(self) -> None:
        await self.stop_recovering()
        if self.bus is not None:
            await self.bus.stop()
        await self.store.aclose()

    def _breaker_changed(self, is_open: bool) -> None:
        if self._report_breaker:
            self.metrics.breaker_open.set(1 if is_open else 0)
        if is_open:
            self._owed.set()

    def _owes(self) -> bool:
        """Anything for the recover loop to do: keys or generations owed, or the breaker open."""
        return bool(self.pending or self.pending_generations or self.breaker.is_open)

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
            await self.bump_strict(generations)
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
        """Asleep while nothing is owed and the breaker is closed (a wake-up every `recover_interval_ms` cost each
        process ~3 ms of CPU a second for nothing); then a try every interval until nothing is."""
        while True:
            if not self._owes():
                self._owed.clear()
                await self._owed.wait()
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

    async def redo_tiers(self, keys: Sequence[str], bumps: Sequence[Bump]) -> None:
        """What a write owed the tiers, again, strictly (an `edge.purge` redelivery, before it purges the edge):
        `keys` forgotten everywhere, then `bumps` done (one owed by an event happens once, whoever does it first),
        or CacheStoreError, so the outbox retries it and the edge is never refilled from the old generation."""
        await self.invalidate_strict(keys)
        for event_id, owed in _by_event(bumps).items():
            await self.bump_strict(owed, event_id)

    def _defer(self, keys: Sequence[str]) -> None:
        if len(self.pending) + len(keys) > MAX_PENDING:
            logger.error("cache.pending_overflow", extra={"pending": len(self.pending)})
        self.pending.update(keys)
        self._owed.set()
        self.metrics.invalidations.labels("deferred").inc(len(keys))
        self.metrics.pending.set(len(self.pending))

    def invalidate_after_commit(
        self, session: WriteSession, *keys: str, edge_also: Sequence[str] = (), bumps: Sequence[Bump] = ()
    ) -> None:
        """Once `session` commits: `keys` leave the tiers, `bumps` happen, then one purge takes `keys` and `edge_also`
        (names only edge pages carry) to the edge, last. With an edge they are also owed durably (`edge.purge`)."""
        edge_keys = [*keys, *edge_also]
        purge_id = self.edge.owe(session, edge_keys, keys, bumps) if self.edge is not None else None

        async def after() -> None:
            landed = await self._invalidate_tiers(keys)
            # One round trip per group: those owed to no event (a write's list scopes), each event's under its marker.
            for event_id, owed in _by_event(bumps).items():
                landed = await self._bump(owed, event_id) and landed
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

    async def generations(self, keys: Sequence[str]) -> list[int] | None:
        """Several generation counters in one round trip (`generation`'s rules: None when the store is unavailable)."""
        if len(keys) == 1:
            generation = await self.generation(keys[0])
            return None if generation is None else [generation]
        if not self.settings.enabled or not await self._store_usable():
            return None
        try:
            values = await self.store.get_many(keys)
        except CacheStoreError:
            self.breaker.record_failure()
            return None
        return [int(value or b"0") for value in values]

    async def bump_generation(self, key: str, *, event_id: int | None = None) -> None:
        """One INCR makes every entry under the old generation unreachable: O(1), whatever their number.

        With `event_id`, the bump owed for that outbox event happens once: the outbox's durable repeat of it
        (`search/handlers.py`) finds it done and does not empty the cache a second time."""
        await self._bump([key], event_id)
        if self.edge is not None:
            await self.edge.purge([key])  # search pages carry the generation's key as their own

    async def bump_strict(self, keys: Sequence[str], event_id: int | None = None) -> None:
        """INCR every generation of `keys`, or raise CacheStoreError (an outbox handler's bump: retried until it
        lands). With `event_id`, the bumps owed for that outbox event happen once, all or none, whoever does them
        first (one marker, named after the first key: the writer and the handler list them in the same order)."""
        if not self.settings.enabled or not keys:
            return
        if event_id is None:
            await self.store.incr_many(keys)
        else:
            await self.store.incr_once(keys, generation_marker(keys[0], event_id), GENERATION_MARKER_TTL_MS)

    async def _bump(self, keys: Sequence[str], event_id: int | None) -> bool:
        """`bump_strict`; on failure all wait in `pending_generations` (a bump repeated on recovery only empties a
        namespace once more, never keeps a stale one)."""
        try:
            await self.bump_strict(keys, event_id)
        except CacheStoreError:
            self.breaker.record_failure()
            self.pending_generations.update(keys)
            self._owed.set()
            logger.warning("cache.generation_bump_deferred", extra={"keys": list(keys)})
            return False
        return True


def _by_event(bumps: Sequence[Bump]) -> dict[int | None, list[str]]:
    """`bumps` grouped by the event owing them, in their order: each event's group is bumped once under one marker,
    the group of None (owed to no event) every time."""
    groups: dict[int | None, list[str]] = {}
    for key, event_id in bumps:
        groups.setdefault(event_id, []).append(key)
    return groups
