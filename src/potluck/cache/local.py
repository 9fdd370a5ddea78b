"""The first tier: a small in-process cache with a short hard TTL, kept honest by invalidation messages.

Every invalidation or flush bumps `epoch`. A reader notes the epoch before it reads the second tier and may only
store what it read if no invalidation arrived meanwhile, so a message that overtakes a slow read still wins.

`fresh_until` (this process's monotonic clock) is set by the invalidation bus: the tier answers only while the
bus has recently proved that it has applied every invalidation published up to a moment close enough to now
(cache/bus.py). Past it the tier holds its entries but answers nothing until the bus catches up.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from potluck.cache.entry import Entry


class LocalCache:
    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._data: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self.epoch = 0
        # Off until the invalidation subscription is up, and again whenever it drops.
        self.enabled = False
        # Answers only before this instant (the bus moves it on); without a bus, always.
        self.fresh_until = math.inf

    def get(self, key: str) -> Entry | None:
        if not self.enabled:
            return None
        item = self._data.get(key)
        if item is None:
            return None
        entry, expires = item
        now = self._clock()
        if now >= self.fresh_until:
            return None  # the bus is behind: an invalidation may be waiting unread
        if now >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, epoch_seen: int, now_ms: int) -> bool:
        """Store unless disabled or an invalidation arrived since `epoch_seen`."""
        if not self.enabled or epoch_seen != self.epoch:
            return False
        remaining = (entry.expires_at_ms - now_ms) / 1000
        if remaining <= 0:
            return False
        self._data[key] = (entry, self._clock() + min(self.ttl_seconds, remaining))
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return True

    def invalidate(self, keys: Iterable[str]) -> None:
        self.epoch += 1
        for key in keys:
            self._data.pop(key, None)

    def flush(self) -> None:
        self.epoch += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
