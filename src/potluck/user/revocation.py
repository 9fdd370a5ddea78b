"""Which sessions are revoked, as every API process sees it: checked on each signed-in request, so it must be cheap.

The database (`auth_session.revoked_at`) is the truth; this is a set of revoked session ids kept where every process
reads it (the coordination Redis, or memory for the one-process embedded default), each entry living as long as an
access token of the session could (the access token's lifetime bounds it: after that no such token verifies anyway).
A process remembers an answer for `recheck_seconds` (a revoked one until its entry expires), so a hot session costs
one Redis read per second per process; a revocation made by this process applies here at once, and in every other
process within `recheck_seconds`. When Redis fails, the database answers (fail closed, never open).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from potluck.user.security import InvalidTokenError, TokenClaims, TokenService


class RevocationStoreError(Exception):
    pass


class RevocationStore(Protocol):
    async def add(self, session_ids: list[uuid.UUID], ttl: float) -> None: ...

    async def contains(self, session_id: uuid.UUID) -> bool: ...


class MemoryRevocationStore:
    """One process's revoked sessions (the embedded default runs one process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[uuid.UUID, float] = {}
        self._clock = clock

    async def add(self, session_ids: list[uuid.UUID], ttl: float) -> None:
        now = self._clock()
        # Expired entries go as new ones arrive: the set never outgrows one access-token lifetime of revocations.
        for sid in [s for s, until in self._until.items() if until <= now]:
            del self._until[sid]
        for sid in session_ids:
            self._until[sid] = now + ttl

    async def contains(self, session_id: uuid.UUID) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > self._clock()


class RedisRevocationStore:
    """`revoked:{sid}` keys with a TTL on the coordination Redis (noeviction: a revocation is never evicted)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "revoked-session:") -> None:
        self._client = client
        self._prefix = prefix

    async def add(self, session_ids: list[uuid.UUID], ttl: float) -> None:
        if not session_ids:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    pipe.set(self._prefix + str(sid), b"1", px=max(1, int(ttl * 1000)))
                await pipe.execute()
        except RedisError as exc:
            raise RevocationStoreError(str(exc)) from exc

    async def contains(self, session_id: uuid.UUID) -> bool:
        try:
            return bool(await self._client.exists(self._prefix + str(session_id)))
        except RedisError as exc:
            raise RevocationStoreError(str(exc)) from exc


class SessionRevocations:
    """`is_revoked(session_id)`: the check every signed-in request makes (the recipe fast path may call it too)."""

    def __init__(
        self,
        store: RevocationStore,
        ttl: float,
        fallback: Callable[[uuid.UUID], Awaitable[bool]],
        *,
        recheck_seconds: float = 1.0,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        on_store_error: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._fallback = fallback
        self._recheck = recheck_seconds
        self._max = max_entries
        self._clock = clock
        self._on_store_error = on_store_error
        # session id -> (answer, good until)
        self._known: OrderedDict[uuid.UUID, tuple[bool, float]] = OrderedDict()

    def known(self, session_id: uuid.UUID) -> bool | None:
        """The remembered answer, if still fresh: no I/O (for a caller that wants to stay synchronous)."""
        entry = self._known.get(session_id)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def is_revoked(self, session_id: uuid.UUID) -> bool:
        answer = self.known(session_id)
        if answer is not None:
            return answer
        try:
            answer = await self.store.contains(session_id)
        except RevocationStoreError:
            if self._on_store_error is not None:
                self._on_store_error()
            return await self._fallback(session_id)  # not remembered: the store is asked again next time
        self._remember(session_id, answer, self.ttl if answer else self._recheck)
        return answer

    async def revoke(self, session_ids: list[uuid.UUID]) -> None:
        """Mark sessions revoked everywhere (call after the database says so: it stays the truth)."""
        for sid in session_ids:
            self._remember(sid, True, self.ttl)
        try:
            await self.store.add(session_ids, self.ttl)
        except RevocationStoreError:
            # Other processes find out from the database while the store fails (their reads fail too), or, if
            # the store comes back without the entry, when the session's access tokens expire.
            if self._on_store_error is not None:
                self._on_store_error()

    def _remember(self, session_id: uuid.UUID, revoked: bool, for_seconds: float) -> None:
        self._known[session_id] = (revoked, self._clock() + for_seconds)
        self._known.move_to_end(session_id)
        while len(self._known) > self._max:
            self._known.popitem(last=False)


class SessionEndedError(InvalidTokenError):
    """The token verifies, but its session was revoked (logout, a password change, a refresh token reused)."""


async def live_claims(tokens: TokenService, revocations: SessionRevocations, token: str) -> TokenClaims:
    """The claims of a valid access token whose session is still live: the one check a signed-in request passes,
    routed (user/dependencies.py) or answered before routing (recipe/fast_path.py). InvalidTokenError otherwise
    (SessionEndedError when only the session is the problem)."""
    claims = tokens.verify(token, "access")  # the signature check, cached per token (ClaimsCache)
    if await revocations.is_revoked(claims.session_id):
        raise SessionEndedError("the session has ended")
    return claims
