"""CacheStore in process memory for the embedded default: the same leases, fills and TTLs as Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from potluck.cache.entry import is_lease, lease_prefix


class MemoryStore:
    """Bounded by entry count; evicts least-recently-used entries with a TTL, never a lease or a counter."""

    def __init__(self, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and self._clock() >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def _set(self, key: str, value: bytes, ttl_ms: int | None) -> None:
        self._data[key] = (value, None if ttl_ms is None else self._clock() + ttl_ms / 1000)
        self._data.move_to_end(key)
        if len(self._data) > self.max_entries:
            for victim, (_, expires) in list(self._data.items()):
                if len(self._data) <= self.max_entries:
                    break
                if expires is not None:
                    del self._data[victim]

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._live(key) for key in keys]

    async def acquire_lease(self, key: str, token: bytes, lease_ms: int) -> bytes | None:
        current = self._live(key)
        now = self._now_ms()
        if current is not None:
            if not is_lease(current):
                return current
            if int(current.rsplit(b"|", 1)[1]) > now:
                return current
        self._set(key, lease_prefix(token) + str(now + lease_ms).encode(), None)
        return None

    async def fill(self, key: str, token: bytes, value: bytes, ttl_ms: int) -> bool:
        current = self._live(key)
        if current is None or not current.startswith(lease_prefix(token)):
            return False
        self._set(key, value, ttl_ms)
        return True

    async def acquire_leases(self, keys: Sequence[str], token: bytes, lease_ms: int) -> list[bytes | None]:
        return [await self.acquire_lease(key, token, lease_ms) for key in keys]

    async def fill_many(self, token: bytes, items: Sequence[tuple[str, bytes, int]]) -> list[bool]:
        return [await self.fill(key, token, value, ttl_ms) for key, value, ttl_ms in items]

    async def replace(self, key: str, identity: bytes, value: bytes, ttl_ms: int) -> bool:
        current = self._live(key)
        if current is None or not current.startswith(identity):
            return False
        self._set(key, value, ttl_ms)
        return True

    async def try_lock(self, key: str, ttl_ms: int) -> bool:
        if self._live(key) is not None:
            return False
        self._set(key, b"1", ttl_ms)
        return True

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def incr(self, key: str) -> int:
        value = int(self._live(key) or b"0") + 1
        self._set(key, str(value).encode(), None)
        return value

    async def incr_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self.incr(key)

    async def incr_once(self, keys: Sequence[str], marker: str, marker_ttl_ms: int) -> bool:
        if self._live(marker) is not None:
            return False
        self._set(marker, b"1", marker_ttl_ms)
        await self.incr_many(keys)
        return True

    async def get_int(self, key: str) -> int:
        return int(self._live(key) or b"0")

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._data.clear()
