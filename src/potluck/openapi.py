"""The OpenAPI document as the API's contract (issue 18, finding 8), completed centrally from the routes.

FastAPI documents a 200 and a 422 of its own shape; Potluck answers every error as RFC 9457 problem+json. Rather
than asking each route to list its errors (and each new route to remember), `contract_openapi` derives them from
what a route is:

| status | documented on | why |
|---|---|---|
| 400 | every operation | a forged cursor, an unknown or empty `fields`, a value the database refuses |
| 401 | every operation that reads a bearer token | a missing (required auth) or invalid/expired token |
| 404 | every operation with a path parameter | the thing named is not there (or not visible to the caller) |
| 408, 413 | every operation with a request body | the body did not arrive in time / is too large |
| 422 | every operation with a parameter or a body | validation; the body is `ValidationProblem` (with `errors`) |
| 503 | every operation | the database is overloaded or away (with Retry-After) |

plus what a route declares itself in `responses=` (403, 409, 412, ...; a description is enough: the problem+json
schema is filled in here). Optional authentication is declared optional (`security: [{bearer}, {}]`), and an
operation that takes `fields` answers partial objects: its response schema points at `*Partial` copies of the
projected schemas, whose properties are all optional.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from potluck.errors import PROBLEM_JSON
from potluck.recipe.schemas import AuthorRead, RecipeImages, RecipeRead
from potluck.user.dependencies import CurrentClaims, OptionalUserId


class Problem(BaseModel):
    """RFC 9457 problem details. Extra members (`param`, `field`, `reason`, ...) say more about some errors."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem (`about:blank` when it is just the status).")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where: `body`, `query`, `path`, `header` then the field's path.")
    msg: str
    type: str


class ValidationProblem(Problem):
    """A 422: the request's parameters or body did not validate; `errors` lists each issue (never the value)."""

    errors: list[ValidationIssue]


_DESCRIPTIONS = {
    400: "Bad Request: a malformed cursor, an unknown or empty `fields`, a value out of range",
    401: "Unauthorized: the bearer token is missing (where required), invalid or expired",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout: the body did not arrive in time",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    422: "Unprocessable Content: validation failed (problem+json with `errors`)",
    503: "Service Unavailable: the database is overloaded or away; retry after `Retry-After` seconds",
}
# Schemas that `fields` cuts down: their partial copies have every property optional.
_PROJECTED = frozenset({RecipeRead.__name__, AuthorRead.__name__, RecipeImages.__name__})
_BEARER = "OAuth2PasswordBearer"


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _dependency_of(alias: Any) -> Any:
    return next(m.dependency for m in typing.get_args(alias)[1:] if hasattr(m, "dependency"))


_REQUIRED_AUTH = _dependency_of(CurrentClaims)  # CurrentUserId depends on it too
_OPTIONAL_AUTH = _dependency_of(OptionalUserId)


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    schema = "ValidationProblem" if status == 422 else "Problem"
    return {
        "description": description or _DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error_statuses(route: Any, operation: dict[str, Any], auth: str | None) -> set[int]:
    statuses = {400, 503}
    has_body = route.body_field is not None
    has_params = bool(operation.get("parameters")) or has_body
    if auth is not None:
        statuses.add(401)
    if route.dependant.path_params or any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    if has_body:
        statuses |= {408, 413}
    if has_params:
        statuses.add(422)
    return statuses


def _auth_of(route: Any) -> str | None:
    calls = _calls(route.dependant)
    if _REQUIRED_AUTH in calls:
        return "required"
    if _OPTIONAL_AUTH in calls:
        return "optional"
    return None


def _refs_projected(schema: Any, components: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in _PROJECTED:
                return True
            if name in seen:
                return False
            seen.add(name)
            return _refs_projected(components.get(name), components, seen)
        return any(_refs_projected(v, components, seen) for v in schema.values())
    if isinstance(schema, list):
        return any(_refs_projected(v, components, seen) for v in schema)
    return False


def _partial(name: str, components: dict[str, Any]) -> str:
    """The name of `name`'s partial copy (made on first use): projected schemas lose `required`."""
    partial = f"{name}Partial"
    if partial in components:
        return partial
    schema = copy.deepcopy(components[name])
    components[partial] = schema  # before recursing: schemas may refer to themselves
    schema["title"] = partial
    if name in _PROJECTED:
        schema.pop("required", None)
        schema["description"] = (
            schema.get("description", "") + "\n\nWith `fields`, only the fields asked for are present."
        ).strip()
    components[partial] = _to_partial(schema, components)
    return partial


def _to_partial(schema: Any, components: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in _PROJECTED or _refs_projected(schema, components, set()):
                return {**schema, "$ref": f"#/components/schemas/{_partial(name, components)}"}
            return schema
        return {k: _to_partial(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_to_partial(v, components) for v in schema]
    return schema


def build_contract(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every error status, optional auth and partial projections declared."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    for context in routing.iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        route: Any = context  # an APIRoute as mounted: its prefixed path, its dependant, its body
        if not route.include_in_schema:
            continue
        path_item = document["paths"].get(route.path_format, {})
        auth = _auth_of(route)
        for method in route.methods or ():
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if str(code).isdigit() and int(code) >= 400}
            for status in sorted(_error_statuses(route, operation, auth) | declared):
                description = responses.get(str(status), {}).get("description")
                if status == 422 or description in (None, "Validation Error"):
                    description = None
                responses[str(status)] = _problem_response(status, description)
            if auth == "optional":
                operation["security"] = [{_BEARER: []}, {}]
            if any(p.get("name") == "fields" and p.get("in") == "query" for p in operation.get("parameters", [])):
                for code, response in responses.items():
                    if str(code).startswith("2"):
                        for media in response.get("content", {}).values():
                            if "schema" in media:
                                media["schema"] = _to_partial(media["schema"], components)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return document


def install_contract(app: FastAPI) -> None:
    """Serve `build_contract(app)` as the app's /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_contract(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
