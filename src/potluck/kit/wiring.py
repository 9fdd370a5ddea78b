"""How a route gets a service that bootstrap built, with a type the checker follows.

Bootstrap builds every service once per process and publishes them as a `Provider` on `app.state.provider`. A
domain declares the dependency it needs next to its routes, by the type it wants::

    RecipeServiceDep = Annotated[RecipeService, Depends(provided(RecipeService))]

and a route takes `service: RecipeServiceDep`. Lower layers never import the composition root, and routes never
see it: each receives only what it uses. `required_by(app)` lists every type the app's routes ask for, so the app
can refuse to start when one was never provided (a missing service fails at startup, not on the first request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

T = TypeVar("T")

STATE_KEY = "provider"
_KIND = "__provided_kind__"


class MissingServiceError(LookupError):
    """A dependency asked for a type that bootstrap did not provide."""


class Provider(Protocol):
    def get(self, kind: type[T]) -> T:
        """The one instance of `kind` this process built."""
        ...


class Services:
    """A `Provider` over instances registered by their type (bootstrap fills it, once)."""

    def __init__(self) -> None:
        self._by_type: dict[type[Any], object] = {}

    def add(self, kind: type[T], instance: T) -> T:
        if kind in self._by_type:
            raise ValueError(f"{kind.__qualname__} is provided twice")
        self._by_type[kind] = instance
        return instance

    def get(self, kind: type[T]) -> T:
        try:
            instance = self._by_type[kind]
        except KeyError:
            raise MissingServiceError(f"no {kind.__qualname__} was provided by bootstrap") from None
        return instance  # type: ignore[return-value]  # added under its own type by add()

    def missing(self, required: Iterable[type[Any]]) -> list[str]:
        """The names of the `required` types that nothing provides."""
        return sorted(kind.__qualname__ for kind in required if kind not in self._by_type)


def provider_of(app: Any) -> Provider:
    """The provider bootstrap published on a Starlette/FastAPI application."""
    provider: Provider = getattr(app.state, STATE_KEY)
    return provider


def provided(kind: type[T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A FastAPI dependency that returns this process's instance of `kind`."""

    # async: FastAPI would run a plain function in its thread pool, a hop per request for a dictionary lookup.
    async def dependency(connection: HTTPConnection) -> T:
        return provider_of(connection.app).get(kind)

    dependency.__name__ = f"provided_{kind.__name__}"
    setattr(dependency, _KIND, kind)
    return dependency


def route_dependants(app: Any) -> Iterator[tuple[str, set[str], Dependant]]:
    """Each API route as the app serves it: (path, methods, dependant), the routes of included routers too (FastAPI
    keeps those behind an included-router entry whose `effective_route_contexts()` gives each with its prefix and
    the router's own dependencies)."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route.path, set(route.methods or ()), route.dependant
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                yield context.path, set(context.methods or ()), context.dependant


def required_by(app: Any) -> set[type[Any]]:
    """Every type the app's routes ask for through `provided`, however deep in their dependencies."""
    kinds: set[type[Any]] = set()
    pending: list[Dependant] = [dependant for _, _, dependant in route_dependants(app)]
    while pending:
        dependant = pending.pop()
        kind = getattr(dependant.call, _KIND, None)
        if kind is not None:
            kinds.add(kind)
        pending.extend(dependant.dependencies)
    return kinds
