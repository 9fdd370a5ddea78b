"""Sending email: a `Mailer` protocol, SMTP (stdlib smtplib, in a worker thread) or a directory of .eml files
(the embedded default without an SMTP server). Chosen in bootstrap; used by handlers, never inline in a request."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from potluck.config import MailSettings


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: MailSettings) -> None:
        assert settings.smtp_host is not None
        self._settings = settings
        self._host = settings.smtp_host

    async def send(self, message: EmailMessage) -> None:
        await anyio.to_thread.run_sync(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_ssl:
            smtp = smtplib.SMTP_SSL(self._host, s.smtp_port, timeout=s.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(self._host, s.smtp_port, timeout=s.timeout_seconds)
        with smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.starttls(context=context)
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_username, password)
            smtp.send_message(message)


class DirectoryMailer:
    """Each message as a file `<uuid>.eml` in a folder (readable only by the owner: it holds sign-in links)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        await anyio.to_thread.run_sync(self._write, message)

    def _write(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{uuid.uuid4().hex}.eml"
        path.write_bytes(message.as_bytes())
        path.chmod(0o600)
