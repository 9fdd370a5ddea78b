"""The per-process cache of verified tokens' claims: bounded, and never past a token's expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from potluck.user.security import ClaimsCache, InvalidTokenError, TokenService


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _service(cache: ClaimsCache) -> TokenService:
    return TokenService("s" * 32, "HS256", timedelta(minutes=15), timedelta(days=14), cache)


def test_a_token_is_verified_once_then_served_from_the_cache() -> None:
    cache = ClaimsCache(10)
    tokens = _service(cache)
    user = uuid.uuid4()
    token = tokens.issue(user, "access", session_id=uuid.uuid4()).token
    assert tokens.verify(token, "access").user_id == user
    assert len(cache) == 1
    assert tokens.verify(token, "access").user_id == user
    assert len(cache) == 1
    with pytest.raises(InvalidTokenError):
        tokens.verify(token, "refresh")  # the cached claims still carry the type


def test_an_expired_token_leaves_the_cache_and_is_refused() -> None:
    clock = Clock()
    cache = ClaimsCache(10, clock=clock)
    tokens = _service(cache)
    issued = tokens.issue(uuid.uuid4(), "access", session_id=uuid.uuid4())
    tokens.verify(issued.token, "access")
    clock.now = issued.expires_at.timestamp() + 1
    assert cache.get(issued.token) is None
    assert len(cache) == 0
    stale = tokens.issue(
        uuid.uuid4(), "access", session_id=uuid.uuid4(), now=datetime.now(UTC) - timedelta(minutes=16)
    ).token
    with pytest.raises(InvalidTokenError):
        tokens.verify(stale, "access")
    assert len(cache) == 0


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = ClaimsCache(3)
    tokens = _service(cache)
    issued = [tokens.issue(uuid.uuid4(), "access", session_id=uuid.uuid4()).token for _ in range(4)]
    for token in issued[:3]:
        tokens.verify(token, "access")
    tokens.verify(issued[0], "access")  # used again: the least recently used is now issued[1]
    tokens.verify(issued[3], "access")
    assert len(cache) == 3
    assert cache.get(issued[1]) is None
    assert cache.get(issued[0]) is not None


def test_invalid_tokens_are_not_kept() -> None:
    cache = ClaimsCache(10)
    tokens = _service(cache)
    good = tokens.issue(uuid.uuid4(), "access", session_id=uuid.uuid4()).token
    for bad in (
        "garbage",
        good + "x",
        _service(ClaimsCache()).issue(uuid.uuid4(), "access", session_id=uuid.uuid4()).token[:-2] + "AA",
    ):
        with pytest.raises(InvalidTokenError):
            tokens.verify(bad, "access")
    assert len(cache) == 0
