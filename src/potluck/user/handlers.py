"""What the user domain does after its events commit. Safe to run twice.

user.followed                   cache.invalidate (strict): both profiles' counts changed
user.registered                 mail.verification (transactional: once per event; the token is made there)
user.registration_repeated      mail.registration_repeated (transactional)
user.password_reset_requested   mail.password_reset (transactional)

A mail handler's transaction holds the token row and the handled-event row; the message is sent before it
commits, so a failed send retries (a commit lost after a send would send a second, equally valid message).
"""

from __future__ import annotations

import uuid

from potluck.cache.cache import Cache
from potluck.cache.keys import user_key
from potluck.db.session import WriteSession
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import (
    USER_FOLLOWED,
    USER_PASSWORD_RESET_REQUESTED,
    USER_REGISTERED,
    USER_REGISTRATION_REPEATED,
)
from potluck.user.account_mail import AccountMail


def install_user_handlers(
    registry: HandlerRegistry, *, cache: Cache, account_mail: AccountMail | None = None
) -> HandlerRegistry:
    async def invalidate_follow(event: Event) -> None:
        follower = uuid.UUID(str(event.payload["follower_id"]))
        await cache.invalidate_strict([user_key(follower), user_key(event.aggregate_id)])

    registry.register(USER_FOLLOWED, "cache.invalidate", invalidate_follow)
    if account_mail is None:
        return registry

    async def verification(session: WriteSession, event: Event) -> None:
        await account_mail.send_verification(session, event.aggregate_id)

    async def registration_repeated(session: WriteSession, event: Event) -> None:
        await account_mail.send_registration_repeated(session, event.aggregate_id)

    async def password_reset(session: WriteSession, event: Event) -> None:
        await account_mail.send_password_reset(session, event.aggregate_id)

    registry.register_transactional(USER_REGISTERED, "mail.verification", verification)
    registry.register_transactional(USER_REGISTRATION_REPEATED, "mail.registration_repeated", registration_repeated)
    registry.register_transactional(USER_PASSWORD_RESET_REQUESTED, "mail.password_reset", password_reset)
    return registry
