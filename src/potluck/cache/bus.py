"""Invalidation messages between API processes over Redis pub/sub, acknowledged.

Pub/sub is at-most-once: a subscriber that loses its connection loses messages. So whenever the subscription is
not known to be up (not yet connected, dropped, or silent past `dead_after`) the first tier is flushed and
bypassed, and it is flushed again once the subscription is back. A writer waits up to `ack_timeout` until every
subscribed process has acknowledged its message.

A slow process is not a dead subscription. Under CPU saturation the listener runs late, acknowledgements come
after the writer stopped waiting, and the old rule (no message for about a second: flush and turn the tier off)
removed the cache exactly when it was needed. Now the listener pings every `ping_interval` with its own send time
as the ping's payload. Redis answers a subscriber in order, so when the pong of a ping sent at `t` is read, every
invalidation Redis published before it received that ping (in particular every one published before `t`) has
been read and applied. The first tier answers only until `t + freshness` (`LocalCache.fresh_until`), with
`freshness` below `ack_timeout`: a writer whose acknowledgement wait ran out answers at least `ack_timeout` after
Redis published its message, and a process still serving at that moment has read a pong of a ping sent after
the publish, hence the message. So a late listener pauses its first tier (entries kept) instead of flushing it,
and the tier comes back by itself as soon as the listener catches up; only `dead_after` seconds without any pong,
checked right after the socket was found empty, count as a dead subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from potluck.cache.keys import INVALIDATION_CHANNEL, ack_key
from potluck.cache.local import LocalCache
from potluck.cache.metrics import CacheMetrics

logger = logging.getLogger("potluck.cache.bus")


class InvalidationBus:
    def __init__(
        self,
        client: aioredis.Redis,
        local: LocalCache,
        metrics: CacheMetrics,
        *,
        ack_timeout: float = 0.2,
        ping_interval: float = 0.05,
        dead_after: float = 3.0,
    ) -> None:
        self.client = client
        self.local = local
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.ping_interval = ping_interval
        self.dead_after = dead_after
        # Below ack_timeout (see the module docstring); the margin absorbs clock-rate differences between hosts.
        self.freshness = 0.75 * ack_timeout
        local.fresh_until = 0.0
        # Test hook: the listener sleeps this long once (a listener starved by a saturated event loop).
        self.stall_seconds = 0.0
        self.node = f"{os.getpid()}-{os.urandom(3).hex()}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="potluck-cache-invalidation")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.aclose()

    def _set_down(self) -> None:
        if self.local.enabled or self.connected.is_set():
            logger.warning("cache.subscription_down")
        self.local.enabled = False
        self.local.fresh_until = 0.0
        self.local.flush()
        self.connected.clear()
        self.metrics.local_enabled.set(0)

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                logger.info("cache.subscription_error", extra={"error": repr(exc)})
            finally:
                # After a subscription that was up, retry quickly: under Sentinel the new master is usually found
                # within a few retries of the failover, and the first tier stays bypassed until then.
                if self.connected.is_set():
                    backoff = 0.05
                self._set_down()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        unanswered: deque[float] = deque()  # send times of pings whose pong has not been read, oldest first
        last_ping = 0.0
        started = time.monotonic()
        up = False
        while not self._stopping:
            if self.stall_seconds:
                stall, self.stall_seconds = self.stall_seconds, 0.0
                await asyncio.sleep(stall)
            now = time.monotonic()
            if up and now - last_ping >= self.ping_interval:
                await pubsub.ping(message=repr(now))
                unanswered.append(now)
                last_ping = now
            message = await pubsub.get_message(timeout=self.ping_interval)
            if message is None:
                # The socket was empty just now: a ping this old without its pong means Redis is not answering.
                silent_since = unanswered[0] if unanswered else None if up else started
                if silent_since is not None and time.monotonic() - silent_since > self.dead_after:
                    raise TimeoutError("the invalidation subscription went silent")
                continue
            kind = message.get("type")
            if kind == "subscribe" and up:
                # Subscribed again on this connection: it was re-made, and what was published meanwhile is lost.
                raise ConnectionError("the invalidation subscription was re-made")
            if kind == "subscribe" and not up:
                # Whatever was published while we were away is lost: start from an empty first tier. Every message
                # published from here on reaches this connection, so the tier is fresh as of now.
                self.local.flush()
                self.local.fresh_until = time.monotonic() + self.freshness
                self.local.enabled = True
                self.connected.set()
                self.metrics.local_enabled.set(1)
                up = True
                logger.info("cache.subscription_up")
            elif kind == "pong":
                sent = self._ping_time(message.get("data"))
                while unanswered and unanswered[0] <= sent:
                    unanswered.popleft()
                self.local.fresh_until = max(self.local.fresh_until, sent + self.freshness)
            elif kind == "message":
                await self._handle(message["data"])

    @staticmethod
    def _ping_time(data: object) -> float:
        try:
            return float(data.decode() if isinstance(data, bytes) else str(data))
        except ValueError:
            return 0.0

    async def _handle(self, data: bytes) -> None:
        try:
            body = orjson.loads(data)
            keys = [str(k) for k in body["keys"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("cache.bad_invalidation_message")
            return
        self.local.invalidate(keys)
        if body.get("id"):
            # One MULTI/EXEC: an ack list never exists without its TTL (volatile-lru cannot evict a key without one).
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(ack_key(str(body["id"])), self.node)
                pipe.pexpire(ack_key(str(body["id"])), 10_000)
                await pipe.execute()

    async def publish(self, keys: Sequence[str]) -> None:
        """Tell every process to drop `keys` from its first tier, and wait for them to say they did."""
        message_id = os.urandom(8).hex()
        receivers = int(await self.client.publish(INVALIDATION_CHANNEL, orjson.dumps({"id": message_id, "keys": keys})))
        deadline = time.monotonic() + self.ack_timeout
        acked = 0
        while acked < receivers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.metrics.ack_timeouts.inc()
                logger.warning("cache.invalidation_ack_timeout", extra={"acked": acked, "receivers": receivers})
                return
            got = await self.client.blpop([ack_key(message_id)], timeout=max(remaining, 0.01))
            if got is not None:
                acked += 1
