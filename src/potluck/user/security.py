"""Password hashing (argon2id) and access/refresh tokens (JWT with expiry, bound to a server-side session)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import argon2
import jwt

from potluck.config import AuthSettings

TokenType = Literal["access", "refresh"]


class PasswordHasher:
    """argon2id with the cost parameters from settings.

    The async methods hash on a pool of `workers` threads of their own, niced by `nice` (Linux keeps a nice value
    per thread, and argon2's lane threads inherit it): with parallelism 4 one verification keeps every core of a
    2-core box busy for ~100 ms, and at equal priority every request that arrives meanwhile waits for it. At a lower
    priority the event loops preempt the hash; a login takes longer only while the CPU is needed elsewhere."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, *, workers: int = 2, nice: int = 10) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        # Verifying against this when the user does not exist makes a wrong username cost what a wrong password does.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="argon2", initializer=_lower_priority, initargs=(nice,)
        )

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> PasswordHasher:
        return cls(
            settings.argon2_time_cost,
            settings.argon2_memory_kib,
            settings.argon2_parallelism,
            workers=settings.hash_workers,
            nice=settings.hash_nice,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def hash_async(self, password: str) -> str:
        """`hash` off the event loop, on the bounded, lower-priority pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash, password)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        """`verify` off the event loop, on the bounded, lower-priority pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        """At shutdown, once requests have drained: a hash still queued is cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority by `nice` (Linux: per thread; elsewhere setpriority would take the whole
    process, so nothing is changed)."""
    if nice and sys.platform == "linux":
        tid = threading.get_native_id()
        # A sandbox that refuses it leaves the thread as it is: a failing initializer would break the pool, and
        # every login with it.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


class InvalidTokenError(Exception):
    """The token is malformed, expired, signed with another key, or of the wrong type."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says: whose it is, which session it belongs to, and (refresh) its generation."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    generation: int = 0


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token as the claims cache keeps it: what it says, its type, and when it stops being valid."""

    claims: TokenClaims
    token_type: TokenType
    expires_at: float  # seconds since the epoch


class ClaimsCache:
    """Verified tokens' claims, each kept until its token expires; the least recently used goes past `max_entries`.

    A signed-in read's signature check (HS256 plus JSON and base64 decoding: tens of microseconds) is paid once per
    token and process instead of once per request. Only tokens that verified are kept, so garbage sent by a client
    costs it a verification every time and never evicts a real user's entry it did not first push out by volume.
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, Claims] = OrderedDict()

    def get(self, token: str) -> Claims | None:
        claims = self._data.get(token)
        if claims is None:
            return None
        if self._clock() >= claims.expires_at:
            del self._data[token]  # expired: verify again, which refuses it
            return None
        self._data.move_to_end(token)
        return claims

    def put(self, token: str, claims: Claims) -> None:
        self._data[token] = claims
        self._data.move_to_end(token)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class TokenService:
    """Signs and checks JWTs; access tokens are short-lived, refresh tokens live longer and only mint access tokens."""

    def __init__(
        self,
        secret: str,
        algorithm: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
        claims_cache: ClaimsCache | None = None,
    ) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self._ttl: dict[TokenType, timedelta] = {"access": access_ttl, "refresh": refresh_ttl}
        self._cache = claims_cache if claims_cache is not None else ClaimsCache()

    @classmethod
    def from_settings(cls, settings: AuthSettings, data_dir: Path) -> TokenService:
        secret = settings.secret_key.get_secret_value() if settings.secret_key else _local_secret(data_dir)
        return cls(
            secret,
            settings.algorithm,
            timedelta(minutes=settings.access_token_minutes),
            timedelta(days=settings.refresh_token_days),
            ClaimsCache(settings.claims_cache_entries),
        )

    def derived_key(self, purpose: str) -> bytes:
        """A key for another signature (signed media URLs) from the same secret, distinct per purpose."""
        return hmac.new(self._secret.encode(), purpose.encode(), hashlib.sha256).digest()

    @property
    def access_ttl(self) -> timedelta:
        return self._ttl["access"]

    @property
    def refresh_ttl(self) -> timedelta:
        return self._ttl["refresh"]

    def issue(
        self,
        user_id: uuid.UUID,
        token_type: TokenType,
        now: datetime | None = None,
        *,
        session_id: uuid.UUID,
        generation: int = 0,
    ) -> IssuedToken:
        """A signed token of `session_id`; a refresh token also carries its generation in the session's family."""
        now = now or datetime.now(UTC)
        expires_at = now + self._ttl[token_type]
        claims: dict[str, object] = {
            "sub": str(user_id),
            "typ": token_type,
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_urlsafe(12),
        }
        if token_type == "refresh":
            claims["gen"] = generation
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=self._algorithm), expires_at)

    def verify(self, token: str, token_type: TokenType) -> TokenClaims:
        """The claims of a valid token of `token_type`, from the per-process cache when this token was verified
        before; InvalidTokenError otherwise. Whether its session was revoked is SessionRevocations' question, asked
        on every use (user/revocation.py): the cache spares the signature check, never that decision."""
        verified = self._cache.get(token)
        if verified is None:
            verified = self._decode(token)
            self._cache.put(token, verified)
        if verified.token_type != token_type:
            raise InvalidTokenError(f"expected a {token_type} token")
        return verified.claims

    def _decode(self, token: str) -> Claims:
        try:
            raw = jwt.decode(
                token, self._secret, algorithms=[self._algorithm], options={"require": ["exp", "sub", "typ", "sid"]}
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        token_type = raw.get("typ")
        if token_type not in ("access", "refresh"):
            raise InvalidTokenError("unknown token type")
        generation = raw.get("gen", 0)
        if not isinstance(generation, int) or isinstance(generation, bool) or not 0 <= generation < 2**31:
            raise InvalidTokenError("bad generation")
        try:
            claims = TokenClaims(uuid.UUID(str(raw["sub"])), uuid.UUID(str(raw["sid"])), generation)
        except ValueError as exc:
            raise InvalidTokenError("bad subject or session") from exc
        return Claims(claims, token_type, float(raw["exp"]))


def _local_secret(data_dir: Path) -> str:
    """A signing key kept in the data directory, made once: enough for one machine running the embedded default."""
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: the first process to get here wins, the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
