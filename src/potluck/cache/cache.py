"""The two-tier cache-aside: where every cached read decides, and where every invalidation goes.

Read (`get_or_fill`): first tier -> second tier -> one lease holder loads from the database and fills with a
compare-and-set; other readers wait briefly for that fill or read through. Many keys (`get_many`, then
`fill_many` for its misses): one MGET, then the misses' leases, one load and their fills, each in one round
trip. Hot entries are refreshed early (XFetch) by one reader. Any store error, timeout or open breaker sends the
read to the database.

The state, the store's failure handling and the write path (`invalidate`, after commit) are in cache/base.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from potluck.cache.base import CacheBase
from potluck.cache.entry import Entry, decode, encode, new_token, should_refresh_early
from potluck.cache.families import Family
from potluck.cache.keys import Bump, refresh_lock_key
from potluck.cache.loaded import FaultInjection, Loaded, Loader, not_stored
from potluck.cache.store import CacheStoreError
from potluck.db.engine import LeaderUnavailableError

__all__ = ["Bump", "Cache", "FaultInjection", "Loaded", "Loader", "not_stored"]


# Loads many keys at once (one database statement): what exists, by key; a key left out does not exist.
ManyLoader = Callable[[Sequence[str]], Awaitable[dict[str, Loaded]]]
T = TypeVar("T")


def _every(keys: Sequence[str], found: dict[str, Loaded]) -> dict[str, Loaded]:
    """What a ManyLoader found, with Loaded(None) for each key it left out (it does not exist)."""
    return {key: found.get(key, Loaded(None)) for key in keys}


class _FillAbandonedError(Exception):
    """Set on a single-flight future whose owner was cancelled: its waiters load the key themselves."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Cache(CacheBase):
    async def get_or_fill(self, family: Family, key: str, loader: Loader, *, unstored: Loader | None = None) -> Loaded:
        """The value for `key`, from the fastest tier that has it, loading it at most once across processes.

        Fills read the primary. While there is none (`LeaderUnavailableError`, between a leader's death and a
        promotion), `unstored` answers instead (a replica's read) and nothing is stored; without it, the error
        propagates (the failover middleware retries the request)."""
        try:
            return await self._get_or_fill(family, key, loader)
        except LeaderUnavailableError:
            if unstored is None:
                raise
            return await unstored()

    async def _get_or_fill(self, family: Family, key: str, loader: Loader) -> Loaded:
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
                return await self._get_or_fill(family, key, loader)
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
        one MGET for the rest. Leases and misses are left out: the caller fills them (`fill_many`, which counts
        the second tier's misses, or `get_or_fill`). Counted here: each tier's hits and the first tier's misses,
        so that hits over first-tier lookups stays a hit rate. A store error returns the first tier's hits."""
        if not self.settings.enabled or not keys:
            return {}
        found: dict[str, Loaded] = {}
        local = self.local
        epoch = local.epoch if local is not None else 0
        rest = list(keys)
        saved_ms = 0  # the hits' metrics, counted once per tier and call (a page has 20 items)
        if local is not None and local.enabled:
            rest = []
            for key in keys:
                entry = local.get(key)
                if entry is None:
                    rest.append(key)
                else:
                    found[key] = Loaded(entry.payload, entry.meta)
                    saved_ms += entry.delta_ms
            self._count_hits(family, "l1", len(found), saved_ms)
            if rest:
                self.metrics.misses.labels(family.name, "l1").inc(len(rest))
        if not rest or not await self._store_usable():
            return found
        try:
            raws = await self.store.get_many(rest)
            self.breaker.record_success()
        except CacheStoreError:
            self._record_failure(family, "get")
            return found
        hits, saved_ms = 0, 0
        for key, raw in zip(rest, raws, strict=True):
            entry = decode(raw) if raw is not None else None
            if entry is not None:
                found[key] = Loaded(entry.payload, entry.meta)
                hits, saved_ms = hits + 1, saved_ms + entry.delta_ms
                self._remember(key, entry, epoch)
        self._count_hits(family, "l2", hits, saved_ms)
        return found

    def _count_hits(self, family: Family, tier: str, hits: int, saved_ms: int) -> None:
        if hits:
            self.metrics.hits.labels(family.name, tier).inc(hits)
            self.metrics.time_saved.labels(family.name).inc(saved_ms / 1000)

    async def fill_many(
        self, family: Family, keys: Sequence[str], load: ManyLoader, *, unstored: ManyLoader | None = None
    ) -> dict[str, Loaded]:
        """The misses of a `get_many`, filled together: every key's lease in one round trip, one `load` of the keys
        leased (one statement, from the primary), every fill in one round trip, each still a compare-and-set on
        its own lease (a writer's delete in between refuses that key's fill, as in `get_or_fill`). A key filled
        meanwhile is served as a hit; one whose lease another reader holds waits for that fill like
        `get_or_fill`'s readers. Without a leader, `unstored` (a replica's read) answers and nothing is stored.
        The result has every key of `keys`; a key `load` leaves out holds Loaded(None) (cached as missing)."""
        try:
            return await self._fill_many(family, keys, load)
        except LeaderUnavailableError:
            if unstored is None:
                raise
            return _every(keys, await unstored(keys))

    async def _fill_many(self, family: Family, keys: Sequence[str], load: ManyLoader) -> dict[str, Loaded]:
        async def loaded(subset: Sequence[str]) -> dict[str, Loaded]:
            return _every(subset, await load(subset))

        if not keys:
            return {}
        if not self.settings.enabled or not await self._store_usable():
            if self.settings.enabled:
                self.metrics.bypasses.labels(family.name).inc(len(keys))
            return await loaded(keys)
        epoch = self.local.epoch if self.local is not None else 0
        token = new_token()
        try:
            currents = await self.store.acquire_leases(keys, token, self.settings.lease_ms)
            self.breaker.record_success()
        except CacheStoreError:
            self._record_failure(family, "lease")
            return await loaded(keys)
        result: dict[str, Loaded] = {}
        leased: list[str] = []
        others: list[str] = []  # another reader's lease: wait for its fill
        for key, current in zip(keys, currents, strict=True):
            entry = decode(current) if current is not None else None
            if current is None:
                leased.append(key)
            elif entry is not None:  # filled since the caller's get_many
                result[key] = self._hit(family, "l2", entry)
                self._remember(key, entry, epoch)
            else:
                others.append(key)
        if leased or others:
            self.metrics.misses.labels(family.name, "l2").inc(len(leased) + len(others))
        if leased:
            result.update(await self._load_and_fill_many(family, leased, token, loaded, epoch))
        if others:

            def one(key: str) -> Loader:
                async def load_one() -> Loaded:
                    return (await loaded([key]))[key]

                return load_one

            waits = [self._wait_for_fill(family, key, one(key), epoch) for key in others]
            result.update(zip(others, await asyncio.gather(*waits), strict=True))
        return {key: result[key] for key in keys}

    async def _load_and_fill_many(
        self,
        family: Family,
        keys: Sequence[str],
        token: bytes,
        load: ManyLoader,
        epoch: int,
    ) -> dict[str, Loaded]:
        try:
            found, delta_ms = await self._load(family, lambda: load(keys))
        except Exception:
            await self._release_lease(family, keys)
            raise
        if self.faults is not None:
            for key in keys:
                await self.faults.pause_if_asked(key)
        values = [(key, self._encode(family, found[key], delta_ms), self._ttl_ms(family, found[key])) for key in keys]
        try:
            stored = await self.store.fill_many(token, values)
        except CacheStoreError:
            self._record_failure(family, "fill")
            return found
        for (key, value, _), ok in zip(values, stored, strict=True):
            self.metrics.fills.labels(family.name, "stored" if ok else "refused").inc()
            entry = decode(value) if ok else None
            if entry is not None:
                self._remember(key, entry, epoch)
        return found

    def _hit(self, family: Family, tier: str, entry: Entry) -> Loaded:
        self._count_hits(family, tier, 1, entry.delta_ms)
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

        try:
            loaded, delta_ms = await self._load(family, loader)
        except Exception:
            await self._release_lease(family, [key])
            raise
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

    async def _release_lease(self, family: Family, keys: Sequence[str]) -> None:
        """A load failed: no fill will follow our leases, so the next readers need not wait them out. Deleting a key
        is safe even if the lease was since taken over (that fill is refused: one more miss, never a stale value)."""
        try:
            await self.store.delete(list(keys))
        except CacheStoreError:
            self._record_failure(family, "lease")

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

    async def _load(self, family: Family, loader: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """What `loader` returns (one key's Loaded, or many keys' at once), and the load's time in ms."""
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
