from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt

from tests.integration.conftest import Api
from tests.support.app import container_of, security_events

PROBLEM = "application/problem+json"


async def test_register_answers_accepted_and_the_profile_has_no_secrets(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "Ann@Example.com", "username": "ann", "password": "long enough pw"},
    )
    assert resp.status_code == 202
    assert set(resp.json()) == {"detail"}
    token = await client.post("/api/v1/auth/token", data={"username": "ann", "password": "long enough pw"})
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    body = me.json()
    assert body["email"] == "ann@example.com"
    assert body["email_verified"] is False
    assert "password" not in str(body)


async def test_a_taken_username_is_a_conflict_case_insensitively(client: httpx.AsyncClient) -> None:
    first = await client.post(
        "/api/v1/auth/register",
        json={"email": "ann@example.com", "username": "ann", "password": "long enough pw"},
    )
    assert first.status_code == 202
    again = await client.post(
        "/api/v1/auth/register", json={"email": "other@example.com", "username": "ANN", "password": "long enough pw"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["field"] == "username"


async def test_concurrent_registrations_of_one_name_yield_one_account(client: httpx.AsyncClient) -> None:
    async def attempt(i: int) -> int:
        resp = await client.post(
            "/api/v1/auth/register",
            json={"email": f"race{i}@example.com", "username": "racer", "password": "long enough pw"},
        )
        return resp.status_code

    codes = await asyncio.gather(*(attempt(i) for i in range(6)))
    assert sorted(codes) == [202] + [409] * 5


async def test_wrong_username_and_wrong_password_are_indistinguishable(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register("bob", password="right password")
    wrong_pw = await client.post("/api/v1/auth/token", data={"username": "bob", "password": "wrong password"})
    no_user = await client.post("/api/v1/auth/token", data={"username": "nobody", "password": "right password"})
    assert wrong_pw.status_code == no_user.status_code == 401
    assert wrong_pw.json()["detail"] == no_user.json()["detail"]
    assert wrong_pw.headers["www-authenticate"] == "Bearer"
    by_email = await client.post(
        "/api/v1/auth/token", data={"username": "BOB@example.com", "password": "right password"}
    )
    assert by_email.status_code == 200
    assert user["id"]


async def _stored_hash(settings: Any, username: str) -> str:
    """The account's password hash as the database holds it."""
    from sqlalchemy import select

    from potluck.db.engine import create_engine
    from potluck.user.models import User

    engine = create_engine(settings.database_url, settings.database)
    try:
        async with engine.connect() as conn:
            stored: str = (await conn.execute(select(User.password_hash).where(User.username == username))).scalar_one()
    finally:
        await engine.dispose()
    return stored


async def _hash_with_other_costs(settings: Any, username: str, password: str) -> str:
    """Store a hash of `password` made with costs other than the settings' (as if `auth.argon2_*` had changed
    since), and return it."""
    import argon2
    from sqlalchemy import update

    from potluck.db.engine import create_engine
    from potluck.user.models import User

    other = argon2.PasswordHasher(time_cost=2, memory_cost=2048, parallelism=2, type=argon2.Type.ID).hash(password)
    engine = create_engine(settings.database_url, settings.database)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(User).where(User.username == username).values(password_hash=other))
    finally:
        await engine.dispose()
    return other


async def test_password_is_stored_as_argon2id(client: httpx.AsyncClient, api: Api, settings: object) -> None:
    await api.register("carol")
    assert (await _stored_hash(settings, "carol")).startswith("$argon2id$")


async def test_a_sign_in_stores_a_hash_made_with_other_parameters_again(
    client: httpx.AsyncClient, api: Api, settings: Any
) -> None:
    """`auth.argon2_*` changed since the hash was made (here: made by hand with other costs): the first sign-in that
    verifies replaces it with one under today's parameters; a wrong password and a current hash change nothing."""

    async def sign_in(password: str) -> int:
        resp = await client.post("/api/v1/auth/token", data={"username": "erin", "password": password})
        return resp.status_code

    await api.register("erin", password="erin's own password")
    auth = settings.auth
    today = f"m={auth.argon2_memory_kib},t={auth.argon2_time_cost},p={auth.argon2_parallelism}"
    assert today in await _stored_hash(settings, "erin")
    old = await _hash_with_other_costs(settings, "erin", "erin's own password")

    assert await sign_in("not erin's password") == 401
    assert await _stored_hash(settings, "erin") == old  # a failed verification rewrites nothing

    rehashes = security_events(client, "password_rehashed")
    assert await sign_in("erin's own password") == 200
    assert security_events(client, "password_rehashed") == rehashes + 1
    rehashed = await _stored_hash(settings, "erin")
    assert rehashed != old
    assert today in rehashed
    assert rehashed.startswith("$argon2id$")
    assert await sign_in("erin's own password") == 200  # the new hash verifies the same password
    assert await _stored_hash(settings, "erin") == rehashed  # and, made with today's parameters, is kept
    assert security_events(client, "password_rehashed") == rehashes + 1


async def test_a_password_change_while_a_sign_in_verifies_the_old_one_wins(
    client: httpx.AsyncClient, api: Api, settings: Any
) -> None:
    """A sign-in is paused right after it verified the old password (whose hash, made with other parameters, it
    would also rehash); the password is changed meanwhile (PostgreSQL: committed at once; SQLite: the change waits
    for the sign-in's write lock). Then the sign-in resumes. Either way the old password must not end up signed in:
    refused (the hash changed under it), or its session revoked by the change that came after it; and the new
    password is the one that works (the rehash never writes the old password back)."""
    from potluck.user.service import UserService

    user = await api.register("fern", password="fern's first password")
    await _hash_with_other_costs(settings, "fern", "fern's first password")

    hasher = container_of(client).get(UserService).hasher
    reached, resume = asyncio.Event(), asyncio.Event()
    plain = hasher.verify_async

    async def paused(password_hash: str | None, password: str) -> bool:
        verified = await plain(password_hash, password)
        if not reached.is_set():  # the sign-in's; the change's own check of the current password passes through
            reached.set()
            await resume.wait()
        return verified

    hasher.verify_async = paused
    try:
        sign_in = asyncio.create_task(
            client.post("/api/v1/auth/token", data={"username": "fern", "password": "fern's first password"})
        )
        await asyncio.wait_for(reached.wait(), 10)
        change = asyncio.create_task(
            client.patch(
                "/api/v1/users/me",
                json={"password": "fern's second password", "current_password": "fern's first password"},
                headers=user["headers"],
            )
        )
        await asyncio.wait({change}, timeout=2)  # committed on PostgreSQL; waiting for the lock on SQLite
        resume.set()
        raced = await sign_in
        assert (await change).status_code == 200
    finally:
        del hasher.verify_async
        resume.set()

    if raced.status_code == 200:  # it signed in first: the change revoked its session
        headers = {"Authorization": f"Bearer {raced.json()['access_token']}"}
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401
    else:
        assert raced.status_code == 401
    second = await client.post("/api/v1/auth/token", data={"username": "fern", "password": "fern's second password"})
    first = await client.post("/api/v1/auth/token", data={"username": "fern", "password": "fern's first password"})
    assert second.status_code == 200
    assert first.status_code == 401


async def test_me_requires_a_valid_token(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    assert (await client.get("/api/v1/users/me")).status_code == 401
    bad = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.headers["content-type"] == PROBLEM
    ok = await client.get("/api/v1/users/me", headers=user["headers"])
    assert ok.status_code == 200
    assert ok.json()["username"] == user["username"]


async def test_expired_and_refresh_tokens_are_not_access_tokens(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    refresh = user["tokens"]["refresh_token"]
    as_access = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {refresh}"})
    assert as_access.status_code == 401
    claims = jwt.decode(user["tokens"]["access_token"], options={"verify_signature": False})
    expired = jwt.encode(
        {**claims, "exp": int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())},
        "test-secret-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    resp = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status_code == 401


async def test_access_token_expires_after_the_configured_minutes(api: Api) -> None:
    user = await api.register()
    claims = jwt.decode(user["tokens"]["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert user["tokens"]["expires_in"] == 15 * 60


async def test_refresh_mints_a_working_pair(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["tokens"]["refresh_token"]})
    assert resp.status_code == 200
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {resp.json()['access_token']}"})
    assert me.status_code == 200
    bad = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["tokens"]["access_token"]})
    assert bad.status_code == 401


async def test_update_me_and_change_password(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register("dave", password="first password")
    resp = await client.patch(
        "/api/v1/users/me",
        json={
            "display_name": "Dave D.",
            "bio": "cooks",
            "password": "second password",
            "current_password": "first password",
        },
        headers=user["headers"],
    )
    assert resp.status_code == 200
    assert resp.json()["display_name"] == "Dave D."
    old = await client.post("/api/v1/auth/token", data={"username": "dave", "password": "first password"})
    new = await client.post("/api/v1/auth/token", data={"username": "dave", "password": "second password"})
    assert (old.status_code, new.status_code) == (401, 200)
