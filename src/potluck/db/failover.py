"""Run a safe request again when a read lost its server mid-statement.

Two cases, both for GET and HEAD only, once, and only before any byte of the response was sent:

* a replica failed mid-read (ReplicaUnavailableError): it is already out of the rotation, so the second run goes
  to another replica or the primary;
* a read on the primary lost its connection (a switchover's fast shutdown ends every session of the old leader):
  the request was answered 503 by the error handlers; that answer is held back and the request runs again, and
  its connect waits for the new leader (Database._connect_primary). So does a request that waited on another
  request's cache fill when that fill lost its connection (db/retry.py).

Writes are never run again here: a write whose transaction never started is safe because the connect waits for
the leader; one that died mid-transaction is a 503 + Retry-After for the client to decide (If-Match makes its
retry safe).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from potluck.db.engine import ReplicaUnavailableError
from potluck.db.retry import CURRENT, RetryMarker, may_retry
from potluck.errors import RETRY_AFTER_SECONDS, problem

SAFE_METHODS = ("GET", "HEAD")
UNAVAILABLE = 503


class ReplicaFailoverMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if await self._attempt(scope, receive, send, last=False):
            return
        await self._attempt(scope, receive, send, last=True)

    async def _attempt(self, scope: Scope, receive: Receive, send: Send, *, last: bool) -> bool:
        """Run the request once; False when it should run again (nothing was sent)."""
        marker = RetryMarker()
        token = CURRENT.set(marker)
        started = held = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                if not last and message["status"] == UNAVAILABLE and may_retry(marker):
                    held = True
                    return
                started = True
            elif held:
                return  # the held answer's body
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except ReplicaUnavailableError:
            if started:
                raise
            if not last:
                return False
            response = problem(
                UNAVAILABLE,
                "Service Unavailable",
                "no database server answered the read; retry shortly",
                slug="unavailable",
                instance=scope["path"],
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
        finally:
            CURRENT.reset(token)
        return not held
