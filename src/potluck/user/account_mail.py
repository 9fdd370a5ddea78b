"""Account email: the verification link, the password-reset link, and the note an owner gets when someone
registers their address again. Run by the user domain's event handlers (after commit, at least once), never
inside a request; the tokens are made here, so no secret ever sits in an outbox row."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import urlencode

from potluck.config import MailSettings
from potluck.db.base import utcnow
from potluck.db.session import WriteSession
from potluck.kit.mail import Mailer
from potluck.user.models import AccountToken, User
from potluck.user.repository import AccountTokenRepository, UserRepository

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountMail:
    def __init__(self, mailer: Mailer, settings: MailSettings) -> None:
        self.mailer = mailer
        self.settings = settings

    async def _issue(self, session: WriteSession, user_id: uuid.UUID, purpose: str, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        await AccountTokenRepository(session).add(
            AccountToken(
                user_id=user_id, purpose=purpose, token_hash=token_digest(token), created_at=now, expires_at=now + ttl
            )
        )
        return token

    def _link(self, page: str, token: str) -> str:
        return f"{self.settings.app_base_url.rstrip('/')}/{page}?{urlencode({'token': token})}"

    def _message(self, user: User, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.from_address
        message["To"] = user.email
        message["Subject"] = subject
        message.set_content(f"Hello {user.display_name or user.username},\n\n{body}\n\n-- Potluck\n")
        return message

    async def send_verification(self, session: WriteSession, user_id: uuid.UUID) -> None:
        user = await UserRepository(session).get(user_id)
        if user is None or user.email_verified_at is not None:
            return
        hours = self.settings.verify_token_hours
        token = await self._issue(session, user.id, VERIFY_EMAIL, timedelta(hours=hours))
        body = (
            f"Confirm that this address is yours: {self._link('verify-email', token)}\n\n"
            f"(or POST the token {token} to /api/v1/auth/verify-email). The link works once, for {hours:g} hours."
        )
        await self.mailer.send(self._message(user, "Confirm your email address", body))

    async def send_password_reset(self, session: WriteSession, user_id: uuid.UUID) -> None:
        user = await UserRepository(session).get(user_id)
        if user is None:
            return
        minutes = self.settings.reset_token_minutes
        token = await self._issue(session, user.id, RESET_PASSWORD, timedelta(minutes=minutes))
        body = (
            f"Someone asked to reset your password. If it was you: {self._link('reset-password', token)}\n\n"
            f"(or POST the token {token} with a new password to /api/v1/auth/password-reset/confirm). The link "
            f"works once, for {minutes:g} minutes, and signs you out everywhere. If it was not you, ignore this."
        )
        await self.mailer.send(self._message(user, "Reset your password", body))

    async def send_registration_repeated(self, session: WriteSession, user_id: uuid.UUID) -> None:
        user = await UserRepository(session).get(user_id)
        if user is None:
            return
        body = (
            "Someone tried to create a Potluck account with this address, which already has one (yours, as "
            f"{user.username}). If it was you, sign in, or reset your password: "
            f"{self.settings.app_base_url.rstrip('/')}/reset-password\nIf it was not, you need not do anything."
        )
        await self.mailer.send(self._message(user, "You already have a Potluck account", body))
