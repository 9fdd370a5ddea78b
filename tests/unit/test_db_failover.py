"""ReplicaFailoverMiddleware: which requests run again after a lost read, and how often."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from potluck.db import retry
from potluck.db.engine import ReplicaUnavailableError
from potluck.db.failover import ReplicaFailoverMiddleware


class Flaky:
    """Fails its first `failures` runs the way the database layer does; then answers 200."""

    def __init__(self, failures: int, how: str) -> None:
        self.failures = failures
        self.how = how
        self.runs = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            if self.how == "replica":
                raise ReplicaUnavailableError("10.0.0.2:5432")
            if self.how in ("primary", "joined"):
                if self.how == "primary":
                    retry.note_retryable()
                await PlainTextResponse("lost", status_code=503)(scope, receive, send)
                return
            await PlainTextResponse("busy", status_code=503)(scope, receive, send)  # not a lost read
            return
        await PlainTextResponse("ok")(scope, receive, send)


async def _request(app: Flaky, method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=ReplicaFailoverMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, "/r")


@pytest.fixture(autouse=True)
def _no_recent_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "_last_loss", [float("-inf")])


@pytest.mark.parametrize("how", ["replica", "primary"])
async def test_a_lost_read_runs_once_more(how: str) -> None:
    app = Flaky(1, how)
    response = await _request(app)
    assert (response.status_code, response.text, app.runs) == (200, "ok", 2)


async def test_a_request_that_waited_on_a_lost_fill_runs_again() -> None:
    retry.note_retryable()  # another request's fill lost the primary a moment ago (no marker of this request)
    app = Flaky(1, "joined")
    assert (await _request(app)).status_code == 200
    assert app.runs == 2


async def test_a_503_without_a_lost_read_is_answered_as_is() -> None:
    app = Flaky(1, "busy")
    response = await _request(app)
    assert (response.status_code, app.runs) == (503, 1)


async def test_only_once_then_a_503_problem() -> None:
    app = Flaky(5, "replica")
    response = await _request(app)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert app.runs == 2

    app = Flaky(5, "primary")
    assert (await _request(app)).status_code == 503
    assert app.runs == 2


async def test_writes_never_run_again() -> None:
    app = Flaky(1, "primary")
    response = await _request(app, "POST")
    assert (response.status_code, app.runs) == (503, 1)
