"""Purging the edge (the HTTP cache in front of the API, deploy/varnish) by surrogate key, as strongly as the tiers.

`Cache.invalidate` calls `purge(keys)` after the API's own tiers are invalidated, before the write's response: it
sends one `PURGE` (keys in `xkey-purge`) to every edge node and waits up to `purge_timeout_ms` for all of them.

A node that does not acknowledge must not serve those keys afterwards. The mechanism is a **lease**:

- A node serves from its cache only while its lease runs (`deploy/varnish/potluck.vcl`: otherwise it passes
  every request to the API). Leases are granted by `heartbeat()`, every `heartbeat_ms`, from every API process.
- The purge debt lives in the coordination Redis (noeviction, AOF): one sorted set per node, member = key,
  score = when it was owed. `purge` records the keys as owed by every node **before** sending, and clears a
  node's entries once it acknowledges (only entries not re-owed since: the score is compared in Lua).
- A heartbeat reads a node's debt at time `t`, then sends one request that purges that debt and sets the
  node's lease to `t + lease_ms`. So every lease granted from a read made before a write's debt was recorded
  (time `t0`) ends before `t0 + lease_ms`; every lease from a later read comes with the key purged first.
- `purge` returns, when a node has not acknowledged, no earlier than `t0 + lease_ms` (the timeout is never
  shorter than the lease: settings refuse it). When the response leaves, that node either purged the key or
  passes every request until a heartbeat delivers the debt.

A fill that began before a purge (a miss racing a write) is not stored: the VCL refuses to store a response
whose fetch started before the node's last purge (the edge's version of the cache's lease on a fill).

Durable retry through the outbox: the write's transaction also records an `edge.purge` event with its keys
(`owe`, through the `journal` bootstrap wires to the outbox; one row per write that has keys, named by a fresh
purge id). The purge after commit stays the fast path; once every node acknowledged it, and the API's tiers had
taken the write's invalidation, it marks the purge id done in the coordination Redis (`DONE_PREFIX`, an hour).
The relay delivers the event to `deliver`: a purge marked done is delivered without sending anything (one PURGE
per node per write, not two); otherwise it first invalidates the API's tiers strictly (`retiers`: raises while
the cache store is down, so the edge is never refilled from a tier that still holds the old version), then
purges every node again (idempotent) and raises while any node does not acknowledge, so the relay retries it
with its backoff. The tiers are redone once per write, not once per attempt: when the write's own invalidation
landed, or a delivery's `retiers` did, the purge id's tiers are marked done (`tiers_done_key`, an hour), and later
attempts only purge (a redone bump empties a namespace once more: while a node was down, every retry emptied the
list pages the write's scopes name). A lost or expired mark costs one more purge (or redo), never a missed one.
Each attempt records the debt again, so a debt lost with the coordination Redis comes back with the next attempt;
the debt is settled (the node serves those keys again) once the node acknowledges. While Redis is unreachable no
lease is granted, so the edge passes everything (it degrades to a proxy, never to stale). What remains: a node that
misses the purge while Redis also loses the debt may serve the old object until the relay's next attempt
re-records it (its backoff: 1 s, doubling), no longer until the object's TTL.
The outbox handlers' strict invalidations (recipe, user, media) do not purge the edge: each of those writes owed
the edge the same keys or more in its own `edge.purge` event.
The lease compares the API's clock with the node's: one machine here; NTP-bounded skew in production belongs
in the margin between `lease_ms` and `purge_timeout_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import httpx
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge

from potluck.cache.keys import Bump
from potluck.config import EdgeSettings
from potluck.db.session import WriteSession

logger = logging.getLogger(__name__)

DEBT_PREFIX = "edge:debt:"
# A write's purge every node acknowledged after commit: its `edge.purge` event has nothing left to do.
DONE_PREFIX = "edge:done:"
DONE_TTL_SECONDS = 3600
PURGE_HEADER = "xkey-purge"
LEASE_HEADER = "X-Edge-Lease"
# Remove members whose score (when they were owed) is not newer than the one read: a key owed again since stays.
_SETTLE = """
local n = 0
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
"""


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.purges = Counter(
            "potluck_edge_purges_total",
            "Purge requests to edge nodes by outcome (sent, acked, failed: left as debt).",
            ["outcome"],
            registry=registry,
        )
        self.debt = Gauge(
            "potluck_edge_purge_debt_keys",
            "Keys owed to edge nodes (as the last heartbeat read them); those nodes pass every request meanwhile.",
            ["node"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.leases = Counter(
            "potluck_edge_leases_total", "Heartbeats by outcome (granted, refused).", ["outcome"], registry=registry
        )


class _NoPurgeLines(logging.Filter):
    """httpx logs every request at INFO: the heartbeats alone would write ~12 lines/s per node and process."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, tuple) and record.args and record.args[0] == "PURGE")


_QUIET = _NoPurgeLines()


# Records a write's keys as owed to the edge under a purge id, in the write's transaction (bootstrap: an `edge.purge`
# outbox row whose aggregate is the purge id; payload: `keys` for the edge, `tiers` for the API's tiers, `bumps`
# for the generations the write bumped).
PurgeJournal = Callable[[WriteSession, uuid.UUID, Mapping[str, list[Any]]], None]
# Redoes the write's invalidation of the API's tiers strictly before a redelivery: keys, then owed generation
# bumps (bootstrap: Cache.redo_tiers).
Retiers = Callable[[list[str], list[Bump]], Awaitable[None]]


class EdgePurgeUndelivered(Exception):
    """Some node did not acknowledge a purge: the outbox relay tries the event again later."""


class OwedPurge(Protocol):
    """What `deliver` reads of an outbox event (events/repository.Event): the purge id is its aggregate."""

    @property
    def aggregate_id(self) -> uuid.UUID: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


def debt_key(node: str) -> str:
    return f"{DEBT_PREFIX}{node}"


def done_key(purge_id: uuid.UUID) -> str:
    return f"{DONE_PREFIX}{purge_id}"


def tiers_done_key(purge_id: uuid.UUID) -> str:
    """Marks that a write's invalidation of the API's tiers (keys and bumps) has landed: nothing to redo there."""
    return f"{DONE_PREFIX}{purge_id}:tiers"


class EdgePurger:
    def __init__(
        self,
        settings: EdgeSettings,
        coord: aioredis.Redis,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.nodes = list(settings.purge_urls)
        self.coord = coord
        self.metrics = EdgeMetrics(registry)
        self.clock = clock
        self.timeout = settings.purge_timeout_ms / 1000
        self.lease = settings.lease_ms / 1000
        self.http = httpx.AsyncClient(timeout=self.timeout, limits=httpx.Limits(max_keepalive_connections=32))
        self._settle = coord.register_script(_SETTLE)
        logging.getLogger("httpx").addFilter(_QUIET)  # the same object each time: added once
        self._heartbeat: asyncio.Task[None] | None = None
        self.journal: PurgeJournal | None = None
        self.retiers: Retiers | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="potluck-edge-heartbeat")

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.http.aclose()
        await self.coord.aclose()  # its own client (bootstrap.build_edge)

    # --- the write path ------------------------------------------------------------------------------------

    def owe(
        self, session: WriteSession, keys: Sequence[str], tiers: Sequence[str] = (), bumps: Sequence[Bump] = ()
    ) -> uuid.UUID | None:
        """Record `keys` as owed to every node in `session`'s transaction, so the relay purges them if need be (after
        invalidating `tiers` in the API's tiers and redoing `bumps`); the purge id to hand `purge` after commit
        (None: nothing owed)."""
        keys = list(dict.fromkeys(keys))
        if not keys or not self.nodes or self.journal is None:
            return None
        purge_id = uuid.uuid4()
        owed: dict[str, list[Any]] = {"keys": keys, "tiers": list(dict.fromkeys(tiers)), "bumps": [*map(list, bumps)]}
        self.journal(session, purge_id, owed)
        return purge_id

    async def deliver(self, event: OwedPurge) -> None:
        """The relay's handler for `edge.purge`: nothing when the write's own purge was acknowledged by every node,
        else purge every node again, or raise so the event is retried."""
        purge_id = event.aggregate_id
        done, tiers_done = await self._done(purge_id)
        if done:
            return
        tiers = [str(key) for key in event.payload.get("tiers", [])]
        owed_bumps = event.payload.get("bumps", [])
        bumps: list[Bump] = [(str(key), None if event_id is None else int(event_id)) for key, event_id in owed_bumps]
        if (tiers or bumps) and self.retiers is not None and not tiers_done:
            # Raises while the store is down: retried, the edge purged only after. The bumps too: a search page the
            # edge refilled before a deferred `gen:search` bump landed would keep the old results until its TTL.
            await self.retiers(tiers, bumps)
            await self._mark(tiers_done_key(purge_id))
        keys = [str(key) for key in event.payload["keys"]]
        if not await self.purge(keys, wait_lease=False):
            raise EdgePurgeUndelivered(f"{len(keys)} keys not acknowledged by every edge node")

    async def _done(self, purge_id: uuid.UUID) -> tuple[bool, bool]:
        """Whether the purge id is done, and whether its tiers are (one round trip)."""
        try:
            done, tiers_done = await self.coord.mget([done_key(purge_id), tiers_done_key(purge_id)])
        except Exception as exc:  # unknown: redo all (idempotent)
            logger.warning("edge.done_unknown", extra={"error": repr(exc)})
            return False, False
        return done is not None, tiers_done is not None

    async def _mark(self, key: str) -> None:
        try:
            await self.coord.set(key, b"1", ex=DONE_TTL_SECONDS)
        except Exception as exc:  # not marked: the next attempt does it once more
            logger.warning("edge.done_not_marked", extra={"error": repr(exc), "key": key})

    async def purge(self, keys: Sequence[str], *, wait_lease: bool = True, purge_id: uuid.UUID | None = None) -> bool:
        """Purge `keys` on every node; True when all acknowledged. Never raises: the write already happened.

        `wait_lease`: on a failure, return only once every lease granted before the debt was recorded has ended
        (what a write's response needs; the relay's retry answers nobody and does not wait). `purge_id` (from
        `owe`, given only once the write's tiers took its invalidation): its tiers are marked done, and once every
        node acknowledged, the purge id itself, so its outbox event redoes nothing, or only the purge."""
        keys = list(dict.fromkeys(keys))
        if not keys or not self.nodes:
            return True
        owed_at = self.clock()
        try:
            async with self.coord.pipeline(transaction=False) as pipe:
                for node in self.nodes:
                    pipe.zadd(debt_key(node), dict.fromkeys(keys, owed_at))
                if purge_id is not None:
                    pipe.set(tiers_done_key(purge_id), b"1", ex=DONE_TTL_SECONDS)
                await pipe.execute()
        except Exception as exc:
            logger.warning("edge.debt_not_recorded", extra={"error": repr(exc), "keys": len(keys)})
        self.metrics.purges.labels("sent").inc(len(self.nodes))
        acked = await asyncio.gather(*(self._send(node, keys, None) for node in self.nodes))
        settled = [node for node, ok in zip(self.nodes, acked, strict=True) if ok]
        failed = len(self.nodes) - len(settled)
        self.metrics.purges.labels("acked").inc(len(settled))
        await self._settle_debt(settled, keys, owed_at)
        if not failed and purge_id is not None:
            await self._mark(done_key(purge_id))  # not marked: the relay purges once more
        if failed:
            self.metrics.purges.labels("failed").inc(failed)
            logger.warning("edge.purge_failed", extra={"nodes": failed, "keys": len(keys)})
            # Every lease a node got from a debt read before owed_at ends by owed_at + lease (module docstring).
            if wait_lease:
                await asyncio.sleep(max(0.0, owed_at + self.lease - self.clock()))
        return not failed

    async def _send(self, node: str, keys: Sequence[str], lease_until: float | None) -> bool:
        headers = {PURGE_HEADER: " ".join(keys)} if keys else {}
        if lease_until is not None:
            headers[LEASE_HEADER] = f"{lease_until:.3f}"
        try:
            response = await self.http.request("PURGE", node, headers=headers)
        except (httpx.HTTPError, OSError):
            return False
        return response.status_code == 200

    async def _settle_debt(self, nodes: Sequence[str], keys: Sequence[str], owed_at: float) -> None:
        for node in nodes:
            try:
                await self._settle(keys=[debt_key(node)], args=[owed_at, *keys])
            except Exception as exc:  # the debt stays; the next heartbeat delivers it again (idempotent)
                logger.warning("edge.debt_not_settled", extra={"error": repr(exc)})

    # --- leases --------------------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Deliver each node's debt and renew its lease, in one request per node."""
        await asyncio.gather(*(self._renew(node) for node in self.nodes))

    async def _renew(self, node: str) -> None:
        read_at = self.clock()
        try:
            raw = cast(list[tuple[bytes, float]], await self.coord.zrange(debt_key(node), 0, -1, withscores=True))
            owed = [(bytes(member), float(score)) for member, score in raw]
        except Exception:
            self.metrics.leases.labels("refused").inc()
            return  # no debt read, no lease: the node passes requests once its current lease ends
        keys = [member.decode() for member, _ in owed]
        self.metrics.debt.labels(node).set(len(keys))
        if not await self._send(node, keys, read_at + self.lease):
            self.metrics.leases.labels("refused").inc()
            return
        self.metrics.leases.labels("granted").inc()
        if keys:
            await self._settle_debt([node], keys, max(score for _, score in owed))

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_ms / 1000
        while True:
            started = time.monotonic()
            try:
                await self.heartbeat()
            except Exception:
                logger.exception("edge.heartbeat_failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
