"""One exception hierarchy, one set of handlers, every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

logger = logging.getLogger("potluck.errors")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://potluck.dev/problems/"


class PotluckError(Exception):
    """Base of every error Potluck raises on purpose; the subclass picks the status."""

    status_code = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class BadRequestError(PotluckError):
    status_code, title, slug = 400, "Bad Request", "bad-request"


class UnauthorizedError(PotluckError):
    status_code, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class ForbiddenError(PotluckError):
    status_code, title, slug = 403, "Forbidden", "forbidden"


class NotFoundError(PotluckError):
    status_code, title, slug = 404, "Not Found", "not-found"


class ConflictError(PotluckError):
    status_code, title, slug = 409, "Conflict", "conflict"


class PreconditionFailedError(PotluckError):
    status_code, title, slug = 412, "Precondition Failed", "precondition-failed"


class PayloadTooLargeError(PotluckError):
    status_code, title, slug = 413, "Content Too Large", "payload-too-large"


class UnprocessableContentError(PotluckError):
    status_code, title, slug = 422, "Unprocessable Content", "validation"


class TooManyRequestsError(PotluckError):
    status_code, title, slug = 429, "Too Many Requests", "rate-limited"


class ServiceUnavailableError(PotluckError):
    status_code, title, slug = 503, "Service Unavailable", "unavailable"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    slug: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


_STATUS_TITLES = {
    400: ("Bad Request", "bad-request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not Found", "not-found"),
    405: ("Method Not Allowed", "method-not-allowed"),
    406: ("Not Acceptable", "not-acceptable"),
    409: ("Conflict", "conflict"),
    413: ("Content Too Large", "payload-too-large"),
    415: ("Unsupported Media Type", "unsupported-media-type"),
    422: ("Unprocessable Content", "validation"),
    429: ("Too Many Requests", "rate-limited"),
}


async def _potluck_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PotluckError)
    return problem(
        exc.status_code,
        exc.title,
        exc.detail,
        slug=exc.slug,
        instance=request.url.path,
        extra=exc.extra,
        headers=exc.headers,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (Starlette's 405 names only the first route's)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title, slug = _STATUS_TITLES.get(exc.status_code, ("Error", None))
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(exc.status_code, title, detail, slug=slug, instance=request.url.path, headers=headers)


def _clean_validation_error(err: Mapping[str, Any]) -> dict[str, Any]:
    # Echo where and why, never the (possibly huge or secret) input value itself.
    return {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_clean_validation_error(e) for e in exc.errors()]
    first = errors[0] if errors else None
    detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}" if first else "the request is not valid"
    return problem(
        422,
        "Unprocessable Content",
        detail,
        slug="validation",
        instance=request.url.path,
        extra={"errors": errors},
    )


# Overload and outages of the database: the request may well succeed in a moment, so 503 + Retry-After rather than
# a 500. A pool checkout that timed out (every connection busy), a statement cancelled by statement_timeout, SQLite's
# "database is locked", a connection refused or lost.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.TimeoutError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
    TimeoutError,  # the driver's own command timeout: the server stopped answering
)
RETRY_AFTER_SECONDS = 1
# What an OperationalError says when the database is busy or away, as opposed to a mistake (a missing table, a
# syntax error): only these are worth a retry.
_UNAVAILABLE_MARKERS = (
    "database is locked",  # SQLite: another writer holds it past the busy timeout
    "statement timeout",  # PostgreSQL: canceling statement due to statement timeout
    "connection",  # refused, reset, closed, does not exist
    "terminating",  # administrator command, crash recovery
    "too many clients",
    "the database system is",  # starting up, shutting down, in recovery mode
    "could not connect",
    "timeout",
)


# What the driver says when the primary died under a transaction or is no longer (or not yet) the primary: the
# connection was left mid-operation, a demoted node refused a write, no node of a multi-host URL accepts writes
# (between a leader's death and a promotion). A failover in progress: worth a retry, never a 500.
LOST_PRIMARY_MARKERS = (
    "another operation",  # asyncpg: the connection broke in the middle of a statement
    "connection was closed",
    "connection is closed",
    "read-only transaction",  # SQLSTATE 25006: this node is a replica now
    "the database system is shutting down",  # SQLSTATE 57P03: a switchover stops the old leader
    "the database system is starting up",  # 57P03 as well: a node coming back
    "terminating connection due to administrator command",  # 57P01: a fast shutdown ends our session
    "none of the hosts match",  # asyncpg: target_session_attrs=read-write found no primary
)


def database_unavailable(exc: BaseException) -> bool:
    """The database is overloaded or away (503 + Retry-After), not the request or the code at fault (500)."""
    if isinstance(exc, sa_exc.DBAPIError) and not isinstance(exc, sa_exc.InterfaceError):
        if exc.connection_invalidated:
            return True
        message = str(exc.orig if exc.orig is not None else exc).lower()
        if isinstance(exc, sa_exc.OperationalError) and any(m in message for m in _UNAVAILABLE_MARKERS):
            return True
        return any(marker in message for marker in LOST_PRIMARY_MARKERS)
    return isinstance(exc, DATABASE_UNAVAILABLE)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    if not database_unavailable(exc):
        return await _unexpected_error(request, exc)
    busy = isinstance(exc, sa_exc.TimeoutError)
    logger.warning(
        "request.database_unavailable",
        extra={"path": request.url.path, "error": type(exc).__name__, "pool_exhausted": busy},
    )
    detail = "every database connection is busy" if busy else "the database did not answer"
    return problem(
        503,
        "Service Unavailable",
        f"{detail}; retry shortly",
        slug="unavailable",
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# A statement the driver refused for its data: a number out of the column's range, a NUL in a text value,
# a malformed literal (SQLSTATE class 22; asyncpg's own DataError when it encodes a parameter; SQLite's
# OverflowError for an integer past 64 bits). Input validation should stop all of these first; when one slips
# through it is still the request's fault, so a 400, never a 500.
def is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DataError | OverflowError):
        return True
    if isinstance(exc, sa_exc.StatementError):
        orig = exc.orig
        return isinstance(orig, OverflowError) or type(orig).__name__ == "DataError"
    return False


async def _data_error(request: Request, exc: Exception) -> Response:
    if not is_data_error(exc):
        return await _database_unavailable(request, exc)
    logger.warning("request.data_error", extra={"path": request.url.path, "error": type(exc).__name__})
    return problem(
        400,
        "Bad Request",
        "a value in the request is out of range or not storable",
        slug="bad-request",
        instance=request.url.path,
    )


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: what a TaskGroup's failure really was."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("request.unhandled_error", extra={"path": request.url.path})
    return problem(500, "Internal Server Error", "an unexpected error occurred", slug="internal")


async def _exception_group(request: Request, exc: Exception) -> Response:
    """A TaskGroup (hydrating a page of recipes, say) wraps what failed in an ExceptionGroup: answer for that.

    Registered for ExceptionGroup itself, so it is handled like any error (and not re-raised to the server as a
    crash, as the catch-all is)."""
    leaf = _first_leaf(exc)
    if isinstance(leaf, Exception) and is_data_error(leaf):
        return await _data_error(request, leaf)
    if isinstance(leaf, Exception) and database_unavailable(leaf):
        return await _database_unavailable(request, leaf)
    if isinstance(leaf, PotluckError):
        return await _potluck_error(request, leaf)
    logger.error("request.unhandled_error", exc_info=exc, extra={"path": request.url.path})
    return problem(500, "Internal Server Error", "an unexpected error occurred", slug="internal")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PotluckError, _potluck_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for kind in (*DATABASE_UNAVAILABLE, sa_exc.DBAPIError):
        app.add_exception_handler(kind, _database_unavailable)
    for kind in (sa_exc.DataError, sa_exc.StatementError, OverflowError):
        app.add_exception_handler(kind, _data_error)
    app.add_exception_handler(ExceptionGroup, _exception_group)
    app.add_exception_handler(Exception, _unexpected_error)
