"""A least-recently-used memo bounded by entry count and by bytes: what the response compression
(kit/compression.py) and the page projections (kit/fields.py) keep of work already done, keyed by the bytes it
was done on."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """At most `entries` values holding at most `max_bytes` together (each value's size is the caller's to say:
    its key's bytes and its own); the least recently used go first."""

    def __init__(self, entries: int, max_bytes: int) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, size: int) -> None:
        self._items[key] = (value, size)
        self._bytes += size
        while len(self._items) > self.entries or self._bytes > self.max_bytes:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped
