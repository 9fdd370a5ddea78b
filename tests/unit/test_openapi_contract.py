"""The OpenAPI document completed by potluck.openapi: every operation's errors, optional auth, partial projections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from potluck.app import create_app
from potluck.config import Settings
from potluck.kit.inputs import NOT_BLANK_PATTERN, SAFE_TEXT_PATTERN

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("openapi")))
    return create_app(settings).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
    ]


def test_every_operation_documents_its_errors_as_problem_json(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) >= 30
    for method, path, op in operations:
        responses = op["responses"]
        for status in ("400", "503"):
            assert status in responses, (method, path, status)
        if op.get("parameters") or "requestBody" in op:
            assert "422" in responses, (method, path)
            schema = responses["422"]["content"][PROBLEM]["schema"]
            assert schema == {"$ref": "#/components/schemas/ValidationProblem"}
        if "{" in path:
            assert "404" in responses, (method, path)
        if op.get("security"):
            assert "401" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_declared_extras_are_problem_json_too(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert "409" in paths["/api/v1/auth/register"]["post"]["responses"]
    assert "401" in paths["/api/v1/auth/token"]["post"]["responses"]
    assert "403" in paths["/api/v1/recipes/{recipe_id}/rating"]["put"]["responses"]
    assert set(paths["/api/v1/recipes/{recipe_id}"]["patch"]["responses"]) >= {"403", "412"}


def test_validation_problem_has_the_shape_of_the_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["ValidationProblem"]
    assert set(problem["required"]) >= {"type", "title", "status", "errors"}
    issue = schemas["ValidationIssue"]
    assert set(issue["properties"]) == {"loc", "msg", "type"}


def test_optional_auth_is_declared_optional(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path in ("/api/v1/recipes", "/api/v1/recipes/{recipe_id}", "/api/v1/search", "/api/v1/users/{user_id}"):
        assert {} in paths[path]["get"]["security"], path
    assert {} not in paths["/api/v1/users/me"]["get"]["security"]
    assert {} not in paths["/api/v1/recipes"]["post"]["security"]


def test_projections_answer_partial_objects(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    listed = document["paths"]["/api/v1/recipes"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"] == {"$ref": "#/components/schemas/RecipePagePartial"}
    assert schemas["RecipePagePartial"]["properties"]["items"]["items"]["$ref"].endswith("RecipeReadPartial")
    assert "required" not in schemas["RecipeReadPartial"]
    assert "required" in schemas["RecipeRead"]  # what a create or an update answers is whole
    created = document["paths"]["/api/v1/recipes"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/RecipeRead"}
    fields = next(p for p in document["paths"]["/api/v1/recipes"]["get"]["parameters"] if p["name"] == "fields")
    assert "pattern" in fields["schema"]


def test_text_fields_document_the_control_character_rule(document: dict[str, Any]) -> None:
    properties = document["components"]["schemas"]["RecipeCreate"]["properties"]
    assert properties["description"]["pattern"] == SAFE_TEXT_PATTERN
    assert properties["title"]["pattern"] == NOT_BLANK_PATTERN  # stripped, then at least one character
    tag = document["components"]["schemas"]["RecipeCreate"]["properties"]["tags"]["items"]
    assert tag["pattern"] == "^[A-Za-z0-9][A-Za-z0-9 _-]*$"  # a field's own pattern wins (it is stricter)
