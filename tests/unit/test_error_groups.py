"""A TaskGroup's failure reaches the error handlers as an ExceptionGroup: answered for what failed inside."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from potluck.errors import NotFoundError, install_error_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    async def fail(exc: Exception) -> None:
        raise exc

    @app.get("/pool")
    async def pool() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(fail(sa_exc.TimeoutError("QueuePool limit reached")))

    @app.get("/missing")
    async def missing() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(fail(NotFoundError("no such recipe")))

    @app.get("/bug")
    async def bug() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(fail(KeyError("oops")))

    return app


async def _get(path: str) -> httpx.Response:
    # raise_app_exceptions: an error that reached the server as a crash (after a 500 was sent) fails the test.
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_an_exhausted_pool_inside_a_task_group_is_503() -> None:
    resp = await _get("/pool")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["retry-after"] == "1"


async def test_a_domain_error_inside_a_task_group_keeps_its_status() -> None:
    resp = await _get("/missing")
    assert resp.status_code == 404
    assert resp.json()["type"].endswith("/not-found")


async def test_a_bug_inside_a_task_group_is_still_a_500_problem() -> None:
    resp = await _get("/bug")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"


def test_only_an_unavailable_database_is_worth_a_retry() -> None:
    from potluck.errors import database_unavailable

    def operational(message: str) -> sa_exc.OperationalError:
        return sa_exc.OperationalError("SELECT 1", {}, Exception(message))

    assert database_unavailable(operational("database is locked"))
    assert database_unavailable(operational("canceling statement due to statement timeout"))
    assert database_unavailable(operational("connection was closed in the middle of operation"))
    assert database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    # A switchover: the old leader refuses new work while it shuts down (asyncpg's CannotConnectNowError, 57P03,
    # which SQLAlchemy wraps as a plain DBAPIError, not an OperationalError).
    shutting_down = sa_exc.DBAPIError("INSERT ...", {}, Exception("the database system is shutting down"))
    assert database_unavailable(shutting_down)
    assert not database_unavailable(operational("no such table: recipe"))  # a deploy mistake: a 500, loudly
    assert not database_unavailable(KeyError("oops"))
