"""CacheStore over Redis: leases and compare-and-set fills in Lua, tight timeouts, no retries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from potluck.cache.entry import lease_prefix
from potluck.cache.store import CacheStoreError
from potluck.config import RedisTarget

# Take the lease if the key is empty or holds a lease past its deadline (its holder died mid-fill).
# The deadline uses the Redis server's clock, so API processes need not agree on the time.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if cur then
  if string.sub(cur, 1, 2) ~= 'L|' then return cur end
  local deadline = tonumber(string.match(cur, '|(%d+)$'))
  if deadline and deadline > now then return cur end
end
redis.call('SET', KEYS[1], 'L|' .. ARGV[1] .. '|' .. (now + tonumber(ARGV[2])))
return false
"""

# Compare-and-set: only the holder of the lease that is still there may fill.
_FILL = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# Early refresh: replace exactly the entry that was read, nothing newer, nothing deleted.
_REPLACE = _FILL

# KEYS[1] the marker, the others the generations; ARGV[1] the marker's TTL in ms.
_INCR_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  for i = 2, #KEYS do
    redis.call('INCR', KEYS[i])
  end
  return 1
end
return 0
"""


class SentinelRedis(aioredis.Redis):
    """A client of the master a Sentinel set names; closing it also closes its connections to the sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


def redis_client(target: RedisTarget | str, timeout: float, *, reconnect: bool = True) -> aioredis.Redis:
    """A client that fails fast: tens of milliseconds, no retry on a timeout (the caller falls back to the database).

    One immediate retry on a *connection* error only: after Redis restarts, every pooled connection is dead and
    fails on its first use; the retry reconnects at once (or is refused at once if Redis is really down), where
    failing would open the breaker and send a whole second of reads to the database for nothing.
    `reconnect=False` for the invalidation bus: a subscription must notice that it was dropped (messages published
    meanwhile are lost and the first tier must be flushed), not be silently re-made.

    Through Sentinel (`target.via_sentinel`): every new connection asks the sentinels where the master is, so after
    a failover the same client reaches the new master (its idle connections to the old one are dropped when the
    address changes; one in use fails, counts as a cache error, and is replaced). A master that is down and not
    yet replaced is "not found" at once (a connection error): the breaker opens and reads go to the database.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1 if reconnect else 0, supported_errors=(RedisConnectionError,)),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    if isinstance(target, str) or not target.via_sentinel:
        url = target if isinstance(target, str) else target.url
        assert url is not None
        return aioredis.Redis.from_url(url, max_connections=256, **options)
    # The sentinels answer as fast as Redis does; redis-py's default retries (with backoff) would make a dead
    # sentinel cost every new connection seconds.
    sentinel_options = {**options, "retry": Retry(NoBackoff(), 0)}
    del sentinel_options["retry_on_timeout"]  # deprecated as a Redis() argument; the Retry above decides
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    client: SentinelRedis = sentinel.master_for(
        target.master, redis_class=SentinelRedis, max_connections=256, **options
    )
    client.sentinel_manager = sentinel
    return client


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._fill = client.register_script(_FILL)
        self._replace = client.register_script(_REPLACE)
        self._incr_once = client.register_script(_INCR_ONCE)

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError, TimeoutError) as exc:
            raise CacheStoreError(f"{type(exc).__name__}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(self.client.get(key))
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values: list[bytes | None] = await self._call(self.client.mget(keys))
        return values

    async def acquire_lease(self, key: str, token: bytes, lease_ms: int) -> bytes | None:
        current: bytes | None = await self._call(self._acquire(keys=[key], args=[token, lease_ms]))
        return current

    async def fill(self, key: str, token: bytes, value: bytes, ttl_ms: int) -> bool:
        return bool(await self._call(self._fill(keys=[key], args=[lease_prefix(token), value, ttl_ms])))

    async def acquire_leases(self, keys: Sequence[str], token: bytes, lease_ms: int) -> list[bytes | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                await self._acquire(keys=[key], args=[token, lease_ms], client=pipe)
            currents: list[bytes | None] = await self._call(pipe.execute())
        return currents

    async def fill_many(self, token: bytes, items: Sequence[tuple[str, bytes, int]]) -> list[bool]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key, value, ttl_ms in items:
                await self._fill(keys=[key], args=[lease_prefix(token), value, ttl_ms], client=pipe)
            stored = await self._call(pipe.execute())
        return [bool(s) for s in stored]

    async def replace(self, key: str, identity: bytes, value: bytes, ttl_ms: int) -> bool:
        return bool(await self._call(self._replace(keys=[key], args=[identity, value, ttl_ms])))

    async def try_lock(self, key: str, ttl_ms: int) -> bool:
        return bool(await self._call(self.client.set(key, b"1", nx=True, px=ttl_ms)))

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self._call(self.client.delete(*keys))

    async def incr(self, key: str) -> int:
        return int(await self._call(self.client.incr(key)))

    async def incr_many(self, keys: Sequence[str]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
            await self._call(pipe.execute())

    async def incr_once(self, keys: Sequence[str], marker: str, marker_ttl_ms: int) -> bool:
        return bool(await self._call(self._incr_once(keys=[marker, *keys], args=[marker_ttl_ms])))

    async def get_int(self, key: str) -> int:
        value = await self._call(self.client.get(key))
        return int(value) if value is not None else 0

    async def ping(self) -> None:
        await self._call(self.client.ping())

    async def aclose(self) -> None:
        await self.client.aclose()
