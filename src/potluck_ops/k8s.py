"""deploy/k8s without kubectl: a small kustomize renderer and the generated manifests.

No `kubectl` or `kustomize` binary runs on these machines, so CI renders the overlays here and validates what
comes out (tests/infra/test_k8s_manifests.py). The renderer covers the subset of kustomize that deploy/k8s uses
and refuses anything else, so a kustomization that uses more fails loudly instead of rendering wrong:

- `resources` (files, or directories holding a kustomization.yaml), `namespace`, `labels` (pairs, without
  selectors), `images` (newName / newTag / digest), `patches` (a strategic-merge file aimed at one object by
  kind and name, or an inline JSON 6902 `patch` with a `target`), `configMapGenerator` with `literals`,
  `generatorOptions.disableNameSuffixHash: true`.
- A strategic merge here merges maps key by key and lists of maps by their `name` (containers, env, ports,
  volumes), which is what kustomize does for the fields this repository patches; any other list is replaced.
- A patch whose target is missing is an error (kustomize's "no matches for Id").

Two files under deploy/k8s/base are generated from one source each, so they cannot diverge:
`observability/prometheusrule.yaml` from deploy/prometheus/alerts.yml and `observability/grafana-dashboard.yaml`
from deploy/grafana/potluck-dashboard.json. `python -m potluck_ops.k8s generate` rewrites them; `check` exits 1
when the committed files differ from what would be generated (a test does the same).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "potluck-dashboard.json"
PROMETHEUS_RULE = K8S / "base" / "observability" / "prometheusrule.yaml"
DASHBOARD_CONFIGMAP = K8S / "base" / "observability" / "grafana-dashboard.yaml"

_SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}


class RenderError(ValueError):
    """The kustomization uses something this renderer does not support, or a patch does not apply."""


def load_all(path: Path) -> list[Manifest]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Manifest]:
    """The objects `kubectl kustomize directory` would print (for the subset above)."""
    kustomization_file = directory / "kustomization.yaml"
    if not kustomization_file.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kustomization_file.read_text()) or {}
    unknown = set(spec) - _SUPPORTED
    if unknown:
        raise RenderError(f"{kustomization_file}: unsupported fields {sorted(unknown)}")
    objects: list[Manifest] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        objects.extend(render(target) if target.is_dir() else load_all(target))
    objects.extend(_generated_configmaps(spec, kustomization_file))
    _fold_generated(objects)
    for patch in spec.get("patches", []):
        _apply_patch(objects, patch, directory)
    for image in spec.get("images", []):
        _set_image(objects, image)
    if "labels" in spec:
        for group in spec["labels"]:
            if group.get("includeSelectors") or group.get("includeTemplates"):
                raise RenderError("labels with includeSelectors/includeTemplates are not supported")
            for obj in objects:
                obj.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return objects


_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "APIService"}


def _generated_configmaps(spec: dict[str, Any], where: Path) -> Iterator[Manifest]:
    generators = spec.get("configMapGenerator", [])
    if generators and not spec.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise RenderError(f"{where}: configMapGenerator needs generatorOptions.disableNameSuffixHash: true here")
    for generator in generators:
        if set(generator) - {"name", "literals", "behavior"}:
            raise RenderError(f"{where}: only name, literals and behavior are supported in configMapGenerator")
        data = {}
        for literal in generator.get("literals", []):
            key, sep, value = literal.partition("=")
            if not sep:
                raise RenderError(f"{where}: literal {literal!r} has no '='")
            data[key] = value
        yield {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": data,
            "$behavior": generator.get("behavior", "create"),
        }


def _find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise RenderError(f"no {kind}/{name} to patch")


def _apply_patch(objects: list[Manifest], patch: dict[str, Any], directory: Path) -> None:
    if "path" in patch:
        for doc in load_all(directory / patch["path"]):
            target = _find(objects, doc["kind"], doc["metadata"]["name"])
            strategic_merge(target, doc)
    elif "patch" in patch and "target" in patch:
        target = _find(objects, patch["target"]["kind"], patch["target"]["name"])
        for op in yaml.safe_load(patch["patch"]):
            json6902(target, op)
    else:
        raise RenderError(f"unsupported patch {patch}")


def _fold_generated(objects: list[Manifest]) -> None:
    """Generated ConfigMaps with `behavior: merge` fold into the base's ConfigMap of the same name."""
    merged: list[Manifest] = []
    for obj in objects:
        behavior = obj.pop("$behavior", None)
        if behavior == "merge":
            strategic_merge(_find(merged, "ConfigMap", obj["metadata"]["name"]), obj)
        else:
            merged.append(obj)
    objects[:] = merged


def strategic_merge(base: Any, patch: Any) -> Any:
    """Merge `patch` into `base` in place: maps by key, lists of named maps by name, anything else replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            if value is None:
                base.pop(key, None)
            elif key in base:
                base[key] = strategic_merge(base[key], value)
            else:
                base[key] = copy.deepcopy(value)
        return base
    if _named_list(base) and _named_list(patch):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            if item["name"] in by_name:
                strategic_merge(by_name[item["name"]], item)
            else:
                base.append(copy.deepcopy(item))
        return base
    return copy.deepcopy(patch)


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def json6902(target: Manifest, op: dict[str, Any]) -> None:
    """One RFC 6902 operation (add, replace, remove) on `target`; a path that does not exist is an error."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent: Any = target
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(index, op["value"])
        elif kind == "replace":
            parent[index] = op["value"]
        elif kind == "remove":
            del parent[index]
        else:
            raise RenderError(f"unsupported op {kind}")
        return
    if kind in ("replace", "remove") and last not in parent:
        raise RenderError(f"{op['path']}: nothing to {kind}")
    if kind in ("add", "replace"):
        parent[last] = op["value"]
    elif kind == "remove":
        del parent[last]
    else:
        raise RenderError(f"unsupported op {kind}")


def _set_image(objects: list[Manifest], image: dict[str, str]) -> None:
    for container in containers(objects):
        name, _, _ = container["image"].partition(":")
        name = name.partition("@")[0]
        if name != image["name"]:
            continue
        new_name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{new_name}@{image['digest']}"
        else:
            container["image"] = f"{new_name}:{image['newTag']}"


def pod_spec(obj: Manifest) -> dict[str, Any] | None:
    """The pod spec inside a workload (Deployment, StatefulSet, Job, CronJob), or None."""
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec["template"]["spec"]  # type: ignore[no-any-return]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return None


def containers(objects: list[Manifest], *, init: bool = True) -> Iterator[dict[str, Any]]:
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        yield from spec.get("containers", [])
        if init:
            yield from spec.get("initContainers", [])


# --- generated files ---------------------------------------------------------------------------------------

_HEADER = (
    "# GENERATED by `uv run python -m potluck_ops.k8s generate` from {source}: edit that file, not this one.\n"
    "# tests/infra/test_k8s_manifests.py fails when the two diverge.\n"
)


def prometheus_rule() -> str:
    """deploy/prometheus/alerts.yml as a prometheus-operator PrometheusRule (the same groups, unchanged)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "potluck", "labels": {"app.kubernetes.io/name": "potluck", "release": "prometheus"}},
        "spec": {"groups": groups},
    }
    body = yaml.safe_dump(rule, sort_keys=False, width=120, allow_unicode=True)
    return _HEADER.format(source="deploy/prometheus/alerts.yml") + body


def dashboard_configmap() -> str:
    """The Grafana dashboard as a ConfigMap Grafana's sidecar picks up (label grafana_dashboard=1)."""
    dashboard = json.loads(DASHBOARD.read_text())
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "potluck-grafana-dashboard",
            "labels": {"app.kubernetes.io/name": "potluck", "grafana_dashboard": "1"},
        },
        "data": {"potluck-dashboard.json": json.dumps(dashboard, indent=2, sort_keys=True) + "\n"},
    }
    body = yaml.safe_dump(configmap, sort_keys=False, width=120)
    return _HEADER.format(source="deploy/grafana/potluck-dashboard.json") + body


GENERATED = {PROMETHEUS_RULE: prometheus_rule, DASHBOARD_CONFIGMAP: dashboard_configmap}


def stale() -> list[Path]:
    """Generated files whose committed text differs from what their source gives now."""
    return [path for path, make in GENERATED.items() if not path.is_file() or path.read_text() != make()]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "generate":
        for path, make in GENERATED.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(make())
            print(f"wrote {path.relative_to(REPO)}")
        return 0
    if command == "check":
        behind = stale()
        for path in behind:
            print(f"{path.relative_to(REPO)} differs from its source: run `python -m potluck_ops.k8s generate`")
        return 1 if behind else 0
    if command == "render":
        print(yaml.safe_dump_all(render(Path(argv[1])), sort_keys=False, width=120))
        return 0
    print("usage: python -m potluck_ops.k8s generate|check|render DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
