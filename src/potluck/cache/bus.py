"""Invalidation messages between API processes over Redis pub/sub, acknowledged.

Pub/sub is at-most-once: a subscriber that loses its connection loses messages. So whenever the subscription is
not known to be up (not yet connected, dropped, or silent past its ping deadline) the first tier is flushed and
bypassed, and it is flushed again once the subscription is back. A writer waits (briefly) until every subscribed
process has acknowledged its message, so once a write's response is sent no process still serves the old value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
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
        ping_interval: float = 0.5,
    ) -> None:
        self.client = client
        self.local = local
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.ping_interval = ping_interval
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
        last_seen = time.monotonic()
        last_ping = 0.0
        up = False
        while not self._stopping:
            now = time.monotonic()
            if now - last_ping >= self.ping_interval:
                await pubsub.ping()
                last_ping = now
            if now - last_seen > 2 * self.ping_interval + 0.1:
                raise TimeoutError("the invalidation subscription went silent")
            message = await pubsub.get_message(timeout=self.ping_interval / 2)
            if message is None:
                continue
            last_seen = time.monotonic()
            kind = message.get("type")
            if kind == "subscribe" and up:
                # Subscribed again on this connection: it was re-made, and what was published meanwhile is lost.
                raise ConnectionError("the invalidation subscription was re-made")
            if kind == "subscribe" and not up:
                # Whatever was published while we were away is lost: start from an empty first tier.
                self.local.flush()
                self.local.enabled = True
                self.connected.set()
                self.metrics.local_enabled.set(1)
                up = True
                logger.info("cache.subscription_up")
            elif kind == "message":
                await self._handle(message["data"])

    async def _handle(self, data: bytes) -> None:
        try:
            body = orjson.loads(data)
            keys = [str(k) for k in body["keys"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("cache.bad_invalidation_message")
            return
        self.local.invalidate(keys)
        if body.get("id"):
            await self.client.rpush(ack_key(str(body["id"])), self.node)
            await self.client.pexpire(ack_key(str(body["id"])), 10_000)

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
