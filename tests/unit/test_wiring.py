"""kit/wiring.py: services as typed FastAPI dependencies, provided once by bootstrap."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from potluck.kit.wiring import STATE_KEY, MissingServiceError, Services, provided, required_by


class Greeter:
    def __init__(self, word: str) -> None:
        self.word = word


class NeverProvided:
    pass


GreeterDep = Annotated[Greeter, Depends(provided(Greeter))]


async def _nested(never: Annotated[NeverProvided, Depends(provided(NeverProvided))]) -> int:
    return 1


NestedDep = Annotated[int, Depends(_nested)]


def test_a_service_is_found_by_its_type_and_provided_once() -> None:
    services = Services()
    greeter = services.add(Greeter, Greeter("hello"))
    assert services.get(Greeter) is greeter
    with pytest.raises(ValueError, match="provided twice"):
        services.add(Greeter, Greeter("again"))
    with pytest.raises(MissingServiceError, match="NeverProvided"):
        services.get(NeverProvided)


def test_required_by_finds_every_provided_type_an_apps_routes_ask_for_however_deep() -> None:
    app = FastAPI()

    @app.get("/a")
    async def a(greeter: GreeterDep, n: NestedDep) -> None:
        return None

    assert required_by(app) == {Greeter, NeverProvided}
    included = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/b")
    async def b(n: NestedDep) -> None:
        return None

    included.include_router(router)
    assert required_by(included) == {NeverProvided}  # a route of an included router is seen too
    services = Services()
    services.add(Greeter, Greeter("hello"))
    assert services.missing(required_by(app)) == ["NeverProvided"]


async def test_a_route_receives_the_provided_instance() -> None:
    app = FastAPI()
    services = Services()
    services.add(Greeter, Greeter("hello"))
    setattr(app.state, STATE_KEY, services)

    @app.get("/greet")
    async def greet(greeter: GreeterDep) -> dict[str, str]:
        return {"word": greeter.word}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/greet")).json() == {"word": "hello"}
