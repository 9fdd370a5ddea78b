"""Every route and every dependency it solves runs on the event loop: FastAPI runs a plain `def` one in its thread
pool, a hop per request (a thread switch and a future) for what is almost always an attribute read."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant

from potluck.app import create_app
from potluck.config import Settings
from potluck.kit.wiring import route_dependants

# Classes as dependencies (a form model: FastAPI builds it in its thread pool), on routes where the hop is
# negligible next to their work (sign-in verifies an argon2 hash, ~160 ms).
ALLOWED_IN_THREAD_POOL = {"PasswordForm"}


def _dependants(root: Dependant) -> Iterator[Dependant]:
    pending = [root]
    while pending:
        dependant = pending.pop()
        yield dependant
        pending.extend(dependant.dependencies)


def _on_the_loop(call: Callable[..., Any]) -> bool:
    call = inspect.unwrap(call)
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    method = inspect.getattr_static(type(call), "__call__", None)  # an instance (OAuth2PasswordBearer): its method
    return not inspect.isclass(call) and method is not None and inspect.iscoroutinefunction(method)


def _in_thread_pool(app: FastAPI) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path, methods, root in route_dependants(app):
        for dependant in _dependants(root):
            call = dependant.call
            if call is None or _on_the_loop(call) or getattr(call, "__name__", "") in ALLOWED_IN_THREAD_POOL:
                continue
            name = getattr(call, "__qualname__", repr(call))
            found.setdefault(f"{sorted(methods)} {path}", set()).add(name)
    return found


def test_no_route_or_dependency_runs_in_the_thread_pool(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert len(list(route_dependants(app))) > 30  # the included routers' routes are seen
    assert _in_thread_pool(app) == {}


def _plain() -> int:
    return 1


async def _coroutine() -> int:
    return 1


def test_the_check_finds_a_plain_dependency_on_an_included_router() -> None:
    router = APIRouter(prefix="/v1")

    @router.get("/things")
    async def things(a: Annotated[int, Depends(_plain)], b: Annotated[int, Depends(_coroutine)]) -> int:
        return a + b

    app = FastAPI()
    app.include_router(router)
    assert _in_thread_pool(app) == {"['GET'] /v1/things": {"_plain"}}
