"""Security events: one structured log line and one counter each (`potluck_security_events_total{event}`).

Events: failed_login, lockout (an attempt refused by a login throttle, or the failure that starts one),
password_changed, password_reset (by an emailed token), password_rehashed (a sign-in stored the password again under
today's hash parameters), token_reuse (a rotated refresh token presented again: its
family is revoked), logout, logout_all, account_deleted.
Every 429 also counts in `potluck_throttle_refusals_total{policy}`. Log lines never carry a password or a token;
the login a client typed is logged only as a digest, so a password typed into the username field stays out of them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from potluck.kit.throttle import Policy

logger = logging.getLogger("potluck.security")

EVENTS = (
    "failed_login",
    "lockout",
    "password_changed",
    "password_reset",
    "password_rehashed",
    "token_reuse",
    "logout",
    "logout_all",
    "account_deleted",
)


# Logged at INFO: what account owners do every day. The rest (failures, lockouts, reuse) at WARNING.
_ROUTINE = frozenset({"logout", "password_changed", "password_reset", "password_rehashed"})


def login_digest(login: str) -> str:
    """A short digest of what was typed as the login: enough to correlate attempts, not to read them."""
    return hashlib.blake2b(login.strip().lower().encode(), digest_size=8).hexdigest()


class SecurityEvents:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "potluck_security_events", "Security events by kind (docs/security.md).", ["event"], registry=registry
        )
        for event in EVENTS:
            self.events.labels(event)
        self.store_errors = Counter(
            "potluck_security_store_errors",
            "Throttle or revocation-set store errors (throttles then let the request through; revocation checks "
            "ask the database).",
            registry=registry,
        )

        self.refusals = Counter(
            "potluck_throttle_refusals",
            "Requests refused by a throttle (429), by policy.",
            ["policy"],
            registry=registry,
        )

    def refused(self, policy: Policy) -> None:
        self.refusals.labels(policy.name).inc()

    def record(self, event: str, **fields: Any) -> None:
        self.events.labels(event).inc()
        level = logging.INFO if event in _ROUTINE else logging.WARNING
        logger.log(level, f"security.{event}", extra={"security_event": event, **fields})

    def store_error(self) -> None:
        self.store_errors.inc()
