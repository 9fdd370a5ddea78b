"""The vendored CRDs' CEL rules (`x-kubernetes-validations`) evaluated on our custom resources, as the API server
would on create: with cel-python (`celpy`, a pure-Python CEL interpreter), each rule at its place in the schema,
`self` bound to the value there.

Transition rules (those that read `oldSelf`) run only on an update in Kubernetes, where there is an old object;
on create they are skipped, and so they are here. Every rule in the vendored CRDs is standard CEL (has, all,
size, int, duration, contains): none needs a Kubernetes CEL library (quantity, url, ...), and a test checks each
compiles, so a vendored CRD update that brings one fails here instead of being skipped silently.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import celpy
import pytest

from tests.infra.test_k8s_manifests import RENDERED, _custom, objects, raw_crd_schemas

TRANSITION = re.compile(r"\boldSelf\b")
ENV = celpy.Environment()


@cache
def program(rule: str) -> Any:
    return ENV.program(ENV.compile(rule))


def every_rule(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for validation in node.get("x-kubernetes-validations") or []:
            yield validation["rule"]
        for value in node.values():
            yield from every_rule(value)
    elif isinstance(node, list):
        for value in node:
            yield from every_rule(value)


def rules_on(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(path, validation, value) for every rule whose schema node the object has a value at."""
    for validation in schema.get("x-kubernetes-validations") or []:
        yield path, validation, value
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in properties:
                yield from rules_on(properties[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from rules_on(extra, sub, f"{path}[{key!r}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from rules_on(schema["items"], item, f"{path}[{i}]")


def violations(obj: dict[str, Any]) -> tuple[list[str], int]:
    """The rules the object breaks (path: message), and how many rules were evaluated on it."""
    schema = raw_crd_schemas()[(obj["apiVersion"], obj["kind"])]
    broken, evaluated = [], 0
    for path, validation, value in rules_on(schema, obj, obj["kind"]):
        if TRANSITION.search(validation["rule"]):
            continue  # an update's rule: no old object on create
        result = program(validation["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        evaluated += 1
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):  # False, or an evaluation error
            broken.append(f"{path}: {validation.get('message') or validation['rule']} ({result!r})")
    return broken, evaluated


def test_every_vendored_rule_compiles() -> None:
    rules = {rule for schema in raw_crd_schemas().values() for rule in every_rule(schema)}
    assert len(rules) >= 10
    for rule in rules:
        program(rule)  # raises on a function cel-python does not know


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_custom_resources_keep_their_crds_cel_rules(name: str) -> None:
    total = 0
    for obj in objects(name):
        if not _custom(obj) or (obj["apiVersion"], obj["kind"]) not in raw_crd_schemas():
            continue
        broken, evaluated = violations(obj)
        assert not broken, f"{obj['kind']}/{obj['metadata']['name']}: {broken}"
        total += evaluated
    # The VirtualService's timeouts, the DestinationRule's outlier durations, the Cluster's checks, ...
    assert total >= 10


def test_a_broken_rule_is_reported() -> None:
    service = next(o for o in objects("base") if o["kind"] == "VirtualService")
    broken, _ = violations(service)
    assert broken == []
    bad = copy.deepcopy(service)
    bad["spec"]["http"][0]["timeout"] = "0s"  # Istio: duration(self) >= duration('1ms')
    broken, _ = violations(bad)
    assert any(".timeout" in b for b in broken), broken

    cluster = next(o for o in objects("base") if o["kind"] == "Cluster")
    bad = copy.deepcopy(cluster)
    bad["spec"]["imageCatalogRef"] = {
        "apiGroup": "postgresql.cnpg.io",
        "kind": "ImageCatalog",
        "name": "x",
        "major": 16,
    }
    bad["spec"]["imageName"] = "ghcr.io/cloudnative-pg/postgresql:16"
    broken, _ = violations(bad)
    assert any("imageCatalogRef" in b or "imageName" in b for b in broken), broken


def test_transition_rules_are_skipped_on_create() -> None:
    assert TRANSITION.search("self == oldSelf")
    assert not TRANSITION.search("self.oldSelfish == 1")
