"""Read-your-writes: a write's response carries the primary's timeline and WAL position as a consistency token
(`2:0/3000060`, header and cookie); a read that presents it is served only by a replica on that same timeline
that has replayed past the position, or by the primary. A user who edits a recipe and reloads sees the edit.

Across a failover: a token whose timeline is not the current primary's (issued before a promotion) is served by
the primary, at once. Positions of two timelines are not comparable (the old primary may have written past the
point where the new one forked), and with synchronous replication every acknowledged commit is on the promoted
node, so the primary always has the write. A token without a timeline (older clients) is treated the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from potluck.db.lag import parse_lsn

TOKEN_HEADER = "X-Potluck-Consistency"
TOKEN_COOKIE = "potluck_lsn"
MIN_LSN_KEY = "potluck_min_lsn"
ISSUED_KEY = "potluck_issued_lsn"
# Long enough to cover any sane replication lag; after that every replica has the write anyway.
COOKIE_MAX_AGE = 60

_TOKEN = re.compile(r"^(?:([0-9]{1,10}):)?([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})$")


@dataclass(frozen=True, order=True)
class ConsistencyToken:
    """What a client asks to read back: a WAL position on a timeline (None: a token from before timelines)."""

    timeline: int | None
    lsn: int


def has_write(token: ConsistencyToken, *, primary_timeline: int, replica_timeline: int, replayed_lsn: int) -> bool:
    """Whether a replica is known to hold the write behind `token`: the token, the primary and the replica are on
    one timeline (positions of two timelines are not comparable) and the replica has replayed that far."""
    same = token.timeline is not None and token.timeline == primary_timeline == replica_timeline
    return same and replayed_lsn >= token.lsn


def format_token(timeline: int, lsn_text: str) -> str:
    return f"{timeline}:{lsn_text}"


def read_token(header: str | None, cookie_header: str | None) -> ConsistencyToken | None:
    """The position a client asks to see, from the header or the cookie; None when absent or malformed. Of two,
    the later timeline wins, then the later position."""
    candidates = [header] if header else []
    if cookie_header:
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == TOKEN_COOKIE:
                candidates.append(value)
    tokens = []
    for candidate in candidates:
        match = _TOKEN.match(candidate)
        if match:
            timeline = int(match.group(1)) if match.group(1) else None
            tokens.append(ConsistencyToken(timeline, parse_lsn(match.group(2))))
    return max(tokens, key=lambda t: (t.timeline or 0, t.lsn)) if tokens else None


class ConsistencyTokenMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        state = scope.setdefault("state", {})
        state[MIN_LSN_KEY] = read_token(headers.get(TOKEN_HEADER.lower()), headers.get("cookie"))
        state[ISSUED_KEY] = None

        async def send_with_token(message: Message) -> None:
            issued = state.get(ISSUED_KEY)
            if message["type"] == "http.response.start" and issued:
                out = MutableHeaders(scope=message)
                out[TOKEN_HEADER] = issued
                out.append(
                    "Set-Cookie", f"{TOKEN_COOKIE}={issued}; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=Lax; HttpOnly"
                )
            await send(message)

        await self.app(scope, receive, send_with_token)
