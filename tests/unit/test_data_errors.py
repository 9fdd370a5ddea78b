"""A statement the driver refuses for its data is the request's fault: 400 problem+json, never 500 (issue 18)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from potluck.errors import install_error_handlers


class _DriverDataError(Exception):
    """Stands in for asyncpg.exceptions.DataError (matched by name: asyncpg is not imported by errors.py)."""


_DriverDataError.__name__ = "DataError"


def _app(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.DataError("SELECT 1", {}, Exception("value out of int64 range")),
        sa_exc.StatementError("bad parameter", "SELECT 1", {}, _DriverDataError("invalid input for $1")),
        sa_exc.StatementError("bad parameter", "SELECT 1", {}, OverflowError("too large")),
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        ExceptionGroup("hydration", [sa_exc.DataError("SELECT 1", {}, Exception("NUL in text"))]),
    ],
)
async def test_driver_data_errors_are_400(error: Exception) -> None:
    transport = httpx.ASGITransport(app=_app(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/boom")
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"


async def test_other_statement_errors_stay_500() -> None:
    error = sa_exc.ProgrammingError("SELECT nope", {}, Exception("no such column"))
    transport = httpx.ASGITransport(app=_app(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/boom")
    assert resp.status_code == 500
