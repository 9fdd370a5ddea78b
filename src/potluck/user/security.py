"""Password hashing (argon2id) and access/refresh tokens (JWT with expiry)."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import argon2
import jwt

from potluck.config import AuthSettings

TokenType = Literal["access", "refresh"]


class PasswordHasher:
    """argon2id with the cost parameters from settings."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        # Verifying against this when the user does not exist makes a wrong username cost what a wrong password does.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> PasswordHasher:
        return cls(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


class InvalidTokenError(Exception):
    """The token is malformed, expired, signed with another key, or of the wrong type."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says. A revocation check (a session id against a revocation set) reads these on
    every use, cached or not: the cache spares the signature check, never the decision."""

    user_id: uuid.UUID
    token_type: TokenType
    expires_at: float  # seconds since the epoch
    token_id: str | None


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

    def issue(self, user_id: uuid.UUID, token_type: TokenType, now: datetime | None = None) -> IssuedToken:
        now = now or datetime.now(UTC)
        expires_at = now + self._ttl[token_type]
        claims = {
            "sub": str(user_id),
            "typ": token_type,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_urlsafe(12),
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=self._algorithm), expires_at)

    def verify(self, token: str, token_type: TokenType) -> uuid.UUID:
        """The user a valid token of `token_type` names; InvalidTokenError otherwise."""
        return self.claims(token, token_type).user_id

    def claims(self, token: str, token_type: TokenType) -> Claims:
        """A valid token's claims, from the per-process cache when this token was verified before."""
        claims = self._cache.get(token)
        if claims is None:
            claims = self._decode(token)
            self._cache.put(token, claims)
        if claims.token_type != token_type:
            raise InvalidTokenError(f"expected a {token_type} token")
        return claims

    def _decode(self, token: str) -> Claims:
        try:
            raw = jwt.decode(
                token, self._secret, algorithms=[self._algorithm], options={"require": ["exp", "sub", "typ"]}
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        token_type = raw.get("typ")
        if token_type not in ("access", "refresh"):
            raise InvalidTokenError("unknown token type")
        try:
            user_id = uuid.UUID(str(raw["sub"]))
        except ValueError as exc:
            raise InvalidTokenError("bad subject") from exc
        jti = raw.get("jti")
        return Claims(user_id, token_type, float(raw["exp"]), str(jti) if jti is not None else None)


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
