"""The app behind an in-process test client.

httpx keeps a client's transport private, so `running_app` yields an `AppClient`, which keeps the app it talks
to; tests reach the app's container through `container_of`.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

BASE_URL = "http://potluck.test"
# The internal listener (observability.metrics_port): the only place /metrics is answered. In process, the port of
# a request's URL is the listener it came in on (scope["server"]).
METRICS_PORT = 9464
METRICS_URL = f"http://potluck.test:{METRICS_PORT}/metrics"


class AppClient(httpx.AsyncClient):
    """An httpx client on an ASGI app in this process; `app` is that app."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE_URL)
        self.app = app


def app_of(client: httpx.AsyncClient) -> FastAPI:
    assert isinstance(client, AppClient), f"{client!r} is not a client on an in-process app"
    return client.app


def container_of(client: httpx.AsyncClient) -> Any:
    """The app's composition root (what bootstrap built), as the app's routes see it."""
    return app_of(client).state.container


def security_events(client: httpx.AsyncClient, event: str) -> float:
    """How many `event`s the app's security audit has counted (`potluck_security_events_total{event}`)."""
    value = container_of(client).registry.get_sample_value("potluck_security_events_total", {"event": event})
    return float(value or 0)
