"""Read-your-writes: a write's response carries the primary's WAL position as a consistency token
(header and cookie); a read that presents it is served only by a replica that has replayed past it, or by the
primary. A user who edits a recipe and reloads always sees the edit.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from potluck.db.lag import parse_lsn

TOKEN_HEADER = "X-Potluck-Consistency"
TOKEN_COOKIE = "potluck_lsn"
MIN_LSN_KEY = "potluck_min_lsn"
ISSUED_KEY = "potluck_issued_lsn"
# Long enough to cover any sane replication lag; after that every replica has the write anyway.
COOKIE_MAX_AGE = 60

_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


def read_token(header: str | None, cookie_header: str | None) -> int | None:
    """The WAL position a client asks to see, from the header or the cookie; None when absent or malformed."""
    candidates = [header] if header else []
    if cookie_header:
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == TOKEN_COOKIE:
                candidates.append(value)
    positions = [parse_lsn(c) for c in candidates if _LSN.match(c)]
    return max(positions) if positions else None


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
