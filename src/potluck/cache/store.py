"""The second tier's protocol: Redis in the full topology, process memory in the embedded default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CacheStoreError(Exception):
    """The store failed or timed out; the caller falls back to the database."""


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """What each of `keys` holds, in order, in one round trip (MGET)."""
        ...

    async def acquire_lease(self, key: str, token: bytes, lease_ms: int) -> bytes | None:
        """Take the fill lease when the key is empty or holds an expired lease (None), else return what it holds."""
        ...

    async def fill(self, key: str, token: bytes, value: bytes, ttl_ms: int) -> bool:
        """Store `value` only if the key still holds our lease: a writer's delete in between refuses the fill."""
        ...

    async def acquire_leases(self, keys: Sequence[str], token: bytes, lease_ms: int) -> list[bytes | None]:
        """`acquire_lease` for each of `keys` (one token), in order, in one round trip."""
        ...

    async def fill_many(self, token: bytes, items: Sequence[tuple[str, bytes, int]]) -> list[bool]:
        """`fill` for each (key, value, ttl_ms) under the leases of `token`, in order, in one round trip."""
        ...

    async def replace(self, key: str, identity: bytes, value: bytes, ttl_ms: int) -> bool:
        """Early refresh: store `value` only if the key still holds the entry we read (same kind and fill id)."""
        ...

    async def try_lock(self, key: str, ttl_ms: int) -> bool: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def incr(self, key: str) -> int: ...

    async def incr_many(self, keys: Sequence[str]) -> None:
        """INCR each of `keys`, in one round trip (not atomically: a failure may leave some bumped)."""
        ...

    async def incr_once(self, keys: Sequence[str], marker: str, marker_ttl_ms: int) -> bool:
        """INCR every one of `keys` unless `marker` exists, and set `marker`, atomically: the bumps owed for one event
        happen once whoever (the writer after commit, the outbox's retry of it) gets there first. True if it bumped."""
        ...

    async def get_int(self, key: str) -> int: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...
