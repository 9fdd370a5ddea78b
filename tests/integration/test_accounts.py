"""Account lifecycle (issue 18, finding 14): registration that reveals no account, email verification and
password reset by emailed single-use tokens, sent through the outbox to a real SMTP server (aiosmtpd, in process)."""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from potluck.config import MailSettings, Settings, ThrottleSettings
from potluck_ops.ports import free_port
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.eventually import eventually
from tests.support.outbox import drain_until_settled

PASSWORD = "correct horse battery"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
async def client(settings: Settings, inbox: tuple[Inbox, int]) -> AsyncIterator[httpx.AsyncClient]:
    mail = MailSettings(smtp_host="127.0.0.1", smtp_port=inbox[1], app_base_url="https://potluck.example")
    throttle = ThrottleSettings(register_per_address=1000, password_reset_per_address=3)
    async with running_app(settings.model_copy(update={"mail": mail, "throttle": throttle})) as http:
        yield http


async def _mail(client: httpx.AsyncClient, inbox: Inbox, address: str, count: int = 1) -> list[Message]:
    async def arrived() -> list[Message] | None:
        await drain_until_settled(container_of(client).relay)
        found = inbox.to(address)
        return found if len(found) >= count else None

    return await eventually(arrived, 10, message=lambda: f"no mail to {address}: {inbox.messages}")


def _token(message: Message) -> str:
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    match = re.search(r"token=([A-Za-z0-9_-]+)", body.decode())
    assert match is not None, body
    return match.group(1)


async def _register(client: httpx.AsyncClient, name: str, address: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/register", json={"email": address, "username": name, "password": password})


async def _sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": name, "password": password})


async def test_registration_emails_a_single_use_verification_link(
    client: httpx.AsyncClient, inbox: tuple[Inbox, int]
) -> None:
    assert (await _register(client, "vera", "vera@example.com")).status_code == 202
    (message,) = await _mail(client, inbox[0], "vera@example.com")
    assert message["Subject"] == "Confirm your email address"
    assert "https://potluck.example/verify-email?token=" in str(message.get_payload(decode=True))
    token = _token(message)

    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 204
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json()["field"] == "token"
    pair = (await _sign_in(client, "vera")).json()
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.json()["email_verified"] is True


async def test_registering_a_taken_email_answers_the_same_and_tells_its_owner(
    client: httpx.AsyncClient, inbox: tuple[Inbox, int]
) -> None:
    first = await _register(client, "owner", "owner@example.com")
    await _mail(client, inbox[0], "owner@example.com")
    second = await _register(client, "intruder", "OWNER@example.com", password="another long password")

    assert (second.status_code, second.json()) == (first.status_code, first.json())
    messages = await _mail(client, inbox[0], "owner@example.com", count=2)
    assert messages[1]["Subject"] == "You already have a Potluck account"
    assert (await _sign_in(client, "intruder", "another long password")).status_code == 401  # no account made
    assert (await _sign_in(client, "owner")).status_code == 200


async def test_a_weak_password_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    for password in ("password", "12345678", "password1234", "weakling_name"):
        resp = await _register(client, "weakling_name", "weak@example.com", password=password)
        assert resp.status_code == 422, password
        assert resp.headers["content-type"] == "application/problem+json"
        assert "password" in resp.text


async def test_password_reset_by_email_ends_every_session(
    client: httpx.AsyncClient, api: Api, inbox: tuple[Inbox, int]
) -> None:
    user = await api.register("resetter")
    address = "resetter@example.com"
    await _mail(client, inbox[0], address)  # the verification link
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": "nobody@example.com"})
    known = await client.post("/api/v1/auth/password-reset", json={"email": address.upper()})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202
    reset = (await _mail(client, inbox[0], address, count=2))[1]
    assert reset["Subject"] == "Reset your password"
    token = _token(reset)
    assert not inbox[0].to("nobody@example.com")

    weak = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": "resetter1234"})
    assert weak.status_code == 422
    done = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": "a brand new passphrase"}
    )
    assert done.status_code == 204

    assert (await client.get("/api/v1/users/me", headers=user["headers"])).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["tokens"]["refresh_token"]})
    assert refresh.status_code == 401
    assert (await _sign_in(client, "resetter")).status_code == 401
    assert (await _sign_in(client, "resetter", "a brand new passphrase")).status_code == 200
    reused = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": "yet another passphrase"}
    )
    assert reused.status_code == 400


async def test_password_reset_requests_are_limited_per_address(client: httpx.AsyncClient) -> None:
    codes: list[Any] = []
    for _ in range(4):
        resp = await client.post("/api/v1/auth/password-reset", json={"email": "someone@example.com"})
        codes.append(resp.status_code)
    assert codes == [202, 202, 202, 429]
    assert int(resp.headers["retry-after"]) > 0


async def test_deleting_an_account_removes_what_it_wrote_and_withdraws_its_ratings(
    client: httpx.AsyncClient, api: Api
) -> None:
    leaver, stayer, rater = await api.register("leaver"), await api.register("stayer"), await api.register("rater")
    public = await api.create_recipe(leaver, is_public=True)
    private = await api.create_recipe(leaver, is_public=False)
    theirs = await api.create_recipe(stayer)
    follow = await client.put(f"/api/v1/users/{stayer['id']}/follow", headers=leaver["headers"])
    assert follow.status_code == 204
    for stars, user in ((1, leaver), (5, rater)):
        rated = await client.put(
            f"/api/v1/recipes/{theirs['id']}/rating", json={"stars": stars}, headers=user["headers"]
        )
        assert rated.status_code in (200, 201), rated.text
    assert (await client.get(f"/api/v1/recipes/{theirs['id']}")).json()["rating"] == 3.0
    assert (await client.get(f"/api/v1/users/{stayer['id']}")).json()["follower_count"] == 1

    wrong = await client.request(
        "DELETE", "/api/v1/users/me", json={"current_password": "not the password"}, headers=leaver["headers"]
    )
    assert wrong.status_code == 403
    gone = await client.request(
        "DELETE", "/api/v1/users/me", json={"current_password": PASSWORD}, headers=leaver["headers"]
    )
    assert gone.status_code == 204

    for recipe in (public, private):
        assert (await client.get(f"/api/v1/recipes/{recipe['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/users/{leaver['id']}")).status_code == 404
    assert (await client.get("/api/v1/users/me", headers=leaver["headers"])).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": leaver["tokens"]["refresh_token"]})
    assert refresh.status_code == 401
    assert (await _sign_in(client, "leaver")).status_code == 401
    after = (await client.get(f"/api/v1/recipes/{theirs['id']}")).json()
    assert (after["rating"], after["rating_count"]) == (5.0, 1)
    assert (await client.get(f"/api/v1/users/{stayer['id']}")).json()["follower_count"] == 0
