"""Throttles: sliding-window counters with optional exponential back-off, domain-agnostic.

A `Policy` says how many events a key may have in a window and what happens past that; a `WindowStore` keeps the
timestamps of each key's events (Redis sorted sets on the non-evicting coordination instance, or a dict in memory for
the embedded default: chosen in bootstrap); `decide` is the pure rule; `Limiter` puts them together. A store error
fails open (the request goes on and the error is counted by the caller's metrics), so a Redis outage never locks
everyone out.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from potluck.config import ThrottleSettings
from potluck.errors import TooManyRequestsError


@dataclass(frozen=True, slots=True)
class Policy:
    """At most `limit` events per `window` seconds for one key.

    Without back-off, an event past the limit waits until the oldest one leaves the window (a plain sliding window).
    With `backoff_base`, the first `limit` events in the window are free and each further one must wait
    `backoff_base * 2 ** (count - limit)` seconds after the latest (capped at `backoff_max`); since old events leave
    the window, the wait decays by itself.
    """

    name: str
    limit: int
    window: float
    backoff_base: float | None = None
    backoff_max: float = 900.0

    def header(self) -> str:
        """The `RateLimit-Policy` item (draft-ietf-httpapi-ratelimit-headers)."""
        return f'"{self.name}";q={self.limit};w={math.ceil(self.window)}'


@dataclass(frozen=True, slots=True)
class Window:
    """What a store knows about one key's events still inside the window."""

    count: int = 0
    oldest: float = 0.0
    newest: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until the next event is allowed (0 when allowed now)
    reset: float  # seconds until the window holds no event of now

    def headers(self, policy: Policy) -> dict[str, str]:
        """`Retry-After` (when refused) and the `RateLimit-Policy` / `RateLimit` fields."""
        headers = {
            "RateLimit-Policy": policy.header(),
            "RateLimit": f'"{policy.name}";r={self.remaining};t={math.ceil(self.reset)}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


def decide(policy: Policy, window: Window, now: float) -> Decision:
    """Whether one more event is allowed now, given the events already in the window (pure)."""
    reset = max(0.0, window.newest + policy.window - now) if window.count else 0.0
    remaining = max(0, policy.limit - window.count)
    if window.count < policy.limit:
        return Decision(True, remaining, 0.0, reset)
    if policy.backoff_base is None:
        wait = window.oldest + policy.window - now
    else:
        # The exponent is capped: past 2**62 every delay is the cap anyway, and a float would overflow.
        delay = min(policy.backoff_max, policy.backoff_base * 2 ** min(62, window.count - policy.limit))
        wait = window.newest + delay - now
    if wait <= 0:
        return Decision(True, 0, 0.0, reset)
    return Decision(False, 0, wait, reset)


class ThrottleStoreError(Exception):
    """The store could not be reached; the caller fails open."""


class WindowStore(Protocol):
    async def peek(self, key: str, window: float, now: float) -> Window: ...

    async def add(self, key: str, window: float, now: float) -> Window:
        """Record one event at `now`; the window including it."""
        ...

    async def clear(self, key: str) -> None: ...


# The most events kept per key: a key past this is throttled anyway, and memory stays bounded under a flood.
MAX_EVENTS = 1000


class MemoryWindowStore:
    """One process's windows (the embedded default)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._events: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    def _trimmed(self, key: str, window: float, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    @staticmethod
    def _window(events: deque[float] | None) -> Window:
        return Window(len(events), events[0], events[-1]) if events else Window()

    async def peek(self, key: str, window: float, now: float) -> Window:
        return self._window(self._trimmed(key, window, now))

    async def add(self, key: str, window: float, now: float) -> Window:
        events = self._trimmed(key, window, now)
        if events is None:
            if len(self._events) >= self._max_keys:
                self._events.pop(next(iter(self._events)))  # the oldest key made room: bounded memory
            events = self._events[key] = deque(maxlen=MAX_EVENTS)
        events.append(now)
        return self._window(events)

    async def clear(self, key: str) -> None:
        self._events.pop(key, None)


# KEYS[1] the key; ARGV: now (s), window (s), member to add or '' to only read, max events.
_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
end
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then return {0, '0', '0'} end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {count, first[2], last[2]}
"""


class RedisWindowStore:
    """Windows as sorted sets (score = event time) on the coordination Redis; one script call per check."""

    def __init__(self, client: aioredis.Redis, prefix: str = "throttle:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_WINDOW)

    async def _run(self, key: str, window: float, now: float, member: str) -> Window:
        try:
            count, first, last = await self._script(
                keys=[self._prefix + key], args=[repr(now), repr(window), member, MAX_EVENTS]
            )
        except RedisError as exc:
            raise ThrottleStoreError(str(exc)) from exc
        return Window(int(count), float(first), float(last)) if int(count) else Window()

    async def peek(self, key: str, window: float, now: float) -> Window:
        return await self._run(key, window, now, "")

    async def add(self, key: str, window: float, now: float) -> Window:
        return await self._run(key, window, now, uuid.uuid4().hex)

    async def clear(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except RedisError as exc:
            raise ThrottleStoreError(str(exc)) from exc


class Limiter:
    """Checks and records events against policies; `clock` is wall time (shared by every process of a store)."""

    def __init__(self, store: WindowStore, clock: Clock = time.time) -> None:
        self.store = store
        self._clock = clock

    async def check(self, policy: Policy, key: str) -> Decision:
        """May one more event happen now? Records nothing."""
        now = self._clock()
        return decide(policy, await self.store.peek(f"{policy.name}:{key}", policy.window, now), now)

    async def hit(self, policy: Policy, key: str) -> Decision:
        """Record one event; the decision for the one after it."""
        now = self._clock()
        return decide(policy, await self.store.add(f"{policy.name}:{key}", policy.window, now), now)

    async def acquire(self, policy: Policy, key: str) -> Decision:
        """Check, and record the event when it is allowed (for events counted whether or not they succeed)."""
        decision = await self.check(policy, key)
        if decision.allowed:
            after = await self.hit(policy, key)
            return Decision(True, after.remaining, 0.0, after.reset)
        return decision

    async def reset(self, policy: Policy, key: str) -> None:
        await self.store.clear(f"{policy.name}:{key}")


class Clock(Protocol):
    def __call__(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused event: which policy, and the decision (for the 429's headers)."""

    policy: Policy
    decision: Decision

    def error(self, detail: str) -> TooManyRequestsError:
        return TooManyRequestsError(
            detail,
            extra={"policy": self.policy.name, "retry_after": max(1, math.ceil(self.decision.retry_after))},
            headers=self.decision.headers(self.policy),
        )


class Throttles:
    """The application's policies (from settings) over one limiter; a store error lets the event through."""

    def __init__(
        self,
        limiter: Limiter,
        settings: ThrottleSettings,
        *,
        on_refused: Callable[[Policy], None] | None = None,
        on_store_error: Callable[[], None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.enabled = settings.enabled
        self._on_refused = on_refused
        self._on_store_error = on_store_error
        s = settings
        backoff = {"backoff_base": s.login_backoff_base_seconds, "backoff_max": s.login_backoff_max_seconds}
        self.login_account = Policy("login-account", s.login_account_limit, s.login_window_seconds, **backoff)
        self.login_address = Policy("login-address", s.login_address_limit, s.login_window_seconds, **backoff)
        self.register = Policy("register", s.register_per_address, s.register_window_seconds)
        self.password_reset = Policy("password-reset", s.password_reset_per_address, s.password_reset_window_seconds)
        self.upload = Policy("upload", s.uploads_per_user, s.uploads_window_seconds)

    async def check(self, policy: Policy, key: str) -> Refusal | None:
        """A refusal if the next event of `key` must wait; records nothing."""
        return self._refused(await self._run(self.limiter.check, policy, key))

    async def failed(self, policy: Policy, key: str) -> Refusal | None:
        """Record a failure (a wrong password); a refusal if the next attempt must now wait."""
        return await self._run(self.limiter.hit, policy, key)

    async def acquire(self, policy: Policy, key: str) -> Refusal | None:
        """Record an attempt that counts whatever its outcome (a registration); a refusal instead if over."""
        return self._refused(await self._run(self.limiter.acquire, policy, key))

    async def enforce(self, policy: Policy, key: str, detail: str) -> None:
        """`acquire`, raising the 429 when refused."""
        refusal = await self.acquire(policy, key)
        if refusal is not None:
            raise refusal.error(detail)

    def _refused(self, refusal: Refusal | None) -> Refusal | None:
        if refusal is not None and self._on_refused is not None:
            self._on_refused(refusal.policy)
        return refusal

    async def reset(self, policy: Policy, key: str) -> None:
        if not self.enabled:
            return
        try:
            await self.limiter.reset(policy, key)
        except ThrottleStoreError:
            self._store_error()

    async def _run(self, op: Callable[[Policy, str], Awaitable[Decision]], policy: Policy, key: str) -> Refusal | None:
        if not self.enabled:
            return None
        try:
            decision = await op(policy, key)
        except ThrottleStoreError:
            self._store_error()
            return None
        return None if decision.allowed else Refusal(policy, decision)

    def _store_error(self) -> None:
        if self._on_store_error is not None:
            self._on_store_error()
