"""Sessions that can be revoked (issue 18, findings 3 and 4): rotation, reuse detection, logout, password change."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
import pytest

from potluck.config import Settings
from tests.integration.conftest import Api, running_app
from tests.support.app import security_events
from tests.support.eventually import eventually

PROBLEM = "application/problem+json"


def _bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def _sign_in(client: httpx.AsyncClient, username: str, password: str = "correct horse battery") -> Any:
    """A second session of the account."""
    resp = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_every_refresh_rotates_and_a_used_token_no_longer_works(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    first = user["tokens"]["refresh_token"]
    second = await _refresh(client, first)
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first
    third = await _refresh(client, second.json()["refresh_token"])
    assert third.status_code == 200
    claims = jwt.decode(third.json()["refresh_token"], options={"verify_signature": False})
    assert claims["gen"] == 2
    access = jwt.decode(third.json()["access_token"], options={"verify_signature": False})
    assert access["sid"] == claims["sid"]


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    user = await api.register()
    stolen = user["tokens"]["refresh_token"]
    legit = (await _refresh(client, stolen)).json()
    before = security_events(client, "token_reuse")

    reuse = await _refresh(client, stolen)

    assert reuse.status_code == 401
    assert reuse.headers["content-type"] == PROBLEM
    assert security_events(client, "token_reuse") == before + 1
    assert any(r.getMessage() == "security.token_reuse" for r in caplog.records)
    # The family is gone: the legitimate holder's newest refresh token and its access token are refused too.
    assert (await _refresh(client, legit["refresh_token"])).status_code == 401
    assert (await client.get("/api/v1/users/me", headers=_bearer(legit))).status_code == 401
    # Another session of the same account is untouched.
    other = await _sign_in(client, user["username"])
    assert (await client.get("/api/v1/users/me", headers=_bearer(other))).status_code == 200


async def test_concurrent_refreshes_of_one_token_mint_at_most_one_pair(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    token = user["tokens"]["refresh_token"]
    codes = [r.status_code for r in await asyncio.gather(*(_refresh(client, token) for _ in range(5)))]
    assert codes.count(200) <= 1
    assert set(codes) <= {200, 401}


async def test_logout_ends_this_session_only(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    other = await _sign_in(client, user["username"])

    resp = await client.post("/api/v1/auth/logout", headers=user["headers"])

    assert resp.status_code == 204
    assert (await client.get("/api/v1/users/me", headers=user["headers"])).status_code == 401
    assert (await _refresh(client, user["tokens"]["refresh_token"])).status_code == 401
    assert (await client.get("/api/v1/users/me", headers=_bearer(other))).status_code == 200
    assert (await client.post("/api/v1/auth/logout")).status_code == 401


async def test_logout_all_ends_every_session(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    other = await _sign_in(client, user["username"])
    before = security_events(client, "logout_all")

    assert (await client.post("/api/v1/auth/logout-all", headers=_bearer(other))).status_code == 204

    for pair in (user["tokens"], other):
        assert (await client.get("/api/v1/users/me", headers=_bearer(pair))).status_code == 401
        assert (await _refresh(client, pair["refresh_token"])).status_code == 401
    assert security_events(client, "logout_all") == before + 1


async def test_password_change_needs_the_current_password(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register(password="first password")
    missing = await client.patch("/api/v1/users/me", json={"password": "a new password"}, headers=user["headers"])
    assert missing.status_code == 400
    assert missing.json()["field"] == "current_password"
    wrong = await client.patch(
        "/api/v1/users/me",
        json={"password": "a new password", "current_password": "not my password"},
        headers=user["headers"],
    )
    assert wrong.status_code == 403
    assert wrong.headers["content-type"] == PROBLEM
    login = await client.post("/api/v1/auth/token", data={"username": user["username"], "password": "first password"})
    assert login.status_code == 200


async def test_password_change_revokes_every_other_session(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register(password="first password")
    other = await _sign_in(client, user["username"], "first password")
    before = security_events(client, "password_changed")

    resp = await client.patch(
        "/api/v1/users/me",
        json={"password": "second password", "current_password": "first password"},
        headers=user["headers"],
    )

    assert resp.status_code == 200
    assert security_events(client, "password_changed") == before + 1
    # The other session's access and refresh tokens stop working at once; the changing session keeps going.
    assert (await client.get("/api/v1/users/me", headers=_bearer(other))).status_code == 401
    assert (await _refresh(client, other["refresh_token"])).status_code == 401
    assert (await client.get("/api/v1/users/me", headers=user["headers"])).status_code == 200
    assert (await _refresh(client, user["tokens"]["refresh_token"])).status_code == 200


async def test_a_token_without_a_session_is_refused(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.register()
    claims = jwt.decode(user["tokens"]["access_token"], options={"verify_signature": False})
    del claims["sid"]
    forged = jwt.encode(claims, "test-secret-key-that-is-long-enough-for-hs256", algorithm="HS256")
    resp = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401


async def test_a_logout_reaches_another_api_process_within_the_recheck_interval(
    client: httpx.AsyncClient, api: Api, settings: Settings
) -> None:
    if settings.coord_redis is None:
        pytest.skip("the embedded default is one process: its revocation set is in memory")
    user = await api.register()
    async with running_app(settings) as other_process:
        assert (await other_process.get("/api/v1/users/me", headers=user["headers"])).status_code == 200
        assert (await client.post("/api/v1/auth/logout", headers=user["headers"])).status_code == 204

        async def refused() -> bool:
            resp = await other_process.get("/api/v1/users/me", headers=user["headers"])
            return resp.status_code == 401

        recheck = settings.auth.revocation_recheck_seconds
        await eventually(refused, recheck + 1.0, interval=0.1)
