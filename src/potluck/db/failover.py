"""Run a safe request again when the replica serving it failed mid-read.

The failed replica is already out of the rotation, so the second run goes to another replica or the primary.
Only GET and HEAD, only once, and only before any byte of the response was sent.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from potluck.db.engine import ReplicaUnavailableError


class ReplicaFailoverMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ReplicaUnavailableError:
            if started:
                raise
            await self.app(scope, receive, send)
