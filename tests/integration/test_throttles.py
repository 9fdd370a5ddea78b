"""Throttles (issue 18, finding 5): failed logins per account and per address with back-off, registrations per
address, image uploads per user; 429 problem+json with Retry-After and RateLimit fields. Redis (coordination
instance) on PostgreSQL, memory on the embedded default."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from potluck.config import Settings, ThrottleSettings
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of, security_events

PROBLEM = "application/problem+json"
PASSWORD = "correct horse battery"


def _tight(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update={"throttle": ThrottleSettings(**{"register_per_address": 1000, **limits})})


@pytest.fixture
async def tight(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(_tight(settings, **request.param)) as http:
        yield http


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": username, "password": password})


def _assert_throttled(resp: httpx.Response, policy: str) -> int:
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["policy"] == policy
    retry_after = int(resp.headers["retry-after"])
    assert retry_after >= 1
    assert resp.headers["ratelimit-policy"].startswith(f'"{policy}";q=')
    assert resp.headers["ratelimit"].startswith(f'"{policy}";r=0;t=')
    return retry_after


async def test_a_hundred_wrong_passwords_lock_the_account_out_by_default(client: httpx.AsyncClient, api: Api) -> None:
    """The audit's case: 100 wrong passwords, then the right one worked. Now the right one waits."""
    user = await api.register()
    codes = [(await _login(client, user["username"], f"wrong guess {i}")).status_code for i in range(100)]
    assert codes[:5] == [401] * 5
    assert set(codes[5:]) <= {401, 429}
    assert codes.count(429) > 80  # refused without hashing: a locked account costs a guesser nothing
    _assert_throttled(await _login(client, user["username"], PASSWORD), "login-account")
    assert security_events(client, "lockout") > 80


@pytest.mark.parametrize("tight", [{"login_account_limit": 3, "login_backoff_base_seconds": 1.0}], indirect=True)
async def test_failed_logins_back_off_per_account_then_a_success_resets(tight: httpx.AsyncClient) -> None:
    user = await Api(tight).register()
    for i in range(3):
        assert (await _login(tight, user["username"], f"wrong guess {i}")).status_code == 401
    wait = _assert_throttled(await _login(tight, user["username"], PASSWORD), "login-account")
    assert wait == 1
    # By email too: the account, not the string typed, is throttled.
    _assert_throttled(await _login(tight, f"{user['username'].upper()}@example.com", PASSWORD), "login-account")
    await asyncio.sleep(1.1)
    assert (await _login(tight, user["username"], PASSWORD)).status_code == 200
    assert (await _login(tight, user["username"], "wrong guess again")).status_code == 401  # the count restarted


@pytest.mark.parametrize("tight", [{"login_address_limit": 3, "login_account_limit": 100}], indirect=True)
async def test_failed_logins_are_throttled_per_address_across_accounts(tight: httpx.AsyncClient) -> None:
    api = Api(tight)
    users = [await api.register() for _ in range(4)]
    for user in users[:3]:
        assert (await _login(tight, user["username"], "wrong guess here")).status_code == 401
    _assert_throttled(await _login(tight, users[3]["username"], PASSWORD), "login-address")
    _assert_throttled(await _login(tight, "nobody-at-all", "wrong guess here"), "login-address")


@pytest.mark.parametrize("tight", [{"register_per_address": 2}], indirect=True)
async def test_registrations_are_limited_per_address(tight: httpx.AsyncClient) -> None:
    async def register(name: str) -> httpx.Response:
        body = {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
        return await tight.post("/api/v1/auth/register", json=body)

    assert [(await register(n)).status_code for n in ("reg1", "reg2")] == [202, 202]
    _assert_throttled(await register("reg3"), "register")
    assert container_of(tight).registry.get_sample_value(
        "potluck_throttle_refusals_total", {"policy": "register"}
    ) == pytest.approx(1)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("tight", [{"uploads_per_user": 2}], indirect=True)
async def test_image_uploads_are_limited_per_user(tight: httpx.AsyncClient) -> None:
    api = Api(tight)
    author, other = await api.register(), await api.register()
    recipe = await api.create_recipe(author)
    theirs = await api.create_recipe(other)

    async def upload(user: dict[str, Any], recipe_id: str) -> httpx.Response:
        files = {"image": ("a.png", _png(), "image/png")}
        return await tight.put(f"/api/v1/recipes/{recipe_id}/image", files=files, headers=user["headers"])

    assert [(await upload(author, recipe["id"])).status_code for _ in range(2)] == [200, 200]
    _assert_throttled(await upload(author, recipe["id"]), "upload")
    assert (await upload(other, theirs["id"])).status_code == 200  # per user, not global
