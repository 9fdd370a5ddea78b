"""deploy/k8s, checked without a cluster: no kubectl or kustomize runs on these machines.

- The base and the production overlay render (src/potluck_ops/k8s.py, a small kustomize) and every patch applies.
- Every built-in object validates against the Kubernetes OpenAPI schemas bundled in `kubernetes-validate`
  (offline, strict: an unknown field is an error); every custom resource against its CRD's openAPIV3Schema,
  vendored in deploy/k8s/crds/ (deploy/k8s/crds/SOURCES.md says from where and which version), also strictly.
- Policy: no `latest` or untagged image, resources set, non-root, read-only root filesystem, no privilege
  escalation, every capability dropped, probes on the API.
- The HPA and the mesh carry the design's values; every POTLUCK_* setting is wired; the generated PrometheusRule
  and dashboard ConfigMap match their sources.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from potluck.config import Settings
from potluck_ops import k8s
from tests.support.settings_names import setting_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRDS = K8S / "crds"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
# The oldest Kubernetes minor the manifests must work on (docs/deploy.md, "What you need").
KUBERNETES_VERSION = "1.30"

RENDERED = {"base": BASE, "production": PRODUCTION}


@cache
def rendered(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(k8s.render(RENDERED[name]))


def objects(name: str) -> list[dict[str, Any]]:
    return [copy.deepcopy(obj) for obj in rendered(name)]


def find(name: str, kind: str, obj_name: str) -> dict[str, Any]:
    return next(o for o in objects(name) if o["kind"] == kind and o["metadata"]["name"] == obj_name)


# --- parsing and schemas ------------------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        assert k8s.load_all(path), path


def _strict(schema: Any, *, top: bool = False) -> Any:
    """A CRD's structural schema as JSON Schema: int-or-string and nullable spelled out, unknown fields refused."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if top:
        out.setdefault("properties", {}).update(
            apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
        )
    return out


@cache
def raw_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> each served version's openAPIV3Schema as vendored (CEL rules and all)."""
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        for crd in k8s.load_all(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    return {key: _strict(schema, top=True) for key, schema in raw_crd_schemas().items()}


def _custom(obj: dict[str, Any]) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_built_in_objects_validate_against_the_kubernetes_schemas(name: str) -> None:
    checked = 0
    for obj in objects(name):
        if _custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_custom_resources_validate_against_their_vendored_crds(name: str) -> None:
    kinds = set()
    for obj in objects(name):
        if not _custom(obj):
            continue
        schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
        assert schema is not None, f"no vendored CRD for {obj['apiVersion']} {obj['kind']}"
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=str)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{e.message} at {list(e.absolute_path)}" for e in errors[:5]
        )
        kinds.add(obj["kind"])
    assert kinds == {
        "Cluster",
        "ScheduledBackup",
        "DestinationRule",
        "VirtualService",
        "PeerAuthentication",
        "ServiceMonitor",
        "PrometheusRule",
    }


def test_the_crd_check_refuses_an_unknown_field() -> None:
    cluster = find("base", "Cluster", "potluck-db")
    schema = crd_schemas()[("postgresql.cnpg.io/v1", "Cluster")]
    jsonschema.Draft7Validator(schema).validate(cluster)
    cluster["spec"]["instancez"] = 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(cluster)


def test_the_kubernetes_check_refuses_an_unknown_field_offline() -> None:
    api = find("base", "Deployment", "potluck-api")
    api["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


def test_every_vendored_crd_names_its_source_and_version() -> None:
    sources = (CRDS / "SOURCES.md").read_text()
    for path in CRDS.glob("*.yaml"):
        assert path.name in sources, f"{path.name} is not listed in crds/SOURCES.md"


# --- the renderer -------------------------------------------------------------------------------------------


def test_the_overlay_patches_apply() -> None:
    api = find("production", "Deployment", "potluck-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "4"
    assert container["args"][container["args"].index("--workers") + 1] == "4"
    # merged by name, not replaced: the base's probes and env are still there
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert any(e["name"] == "POTLUCK_DATABASE__URL" for e in container["env"])
    hpa = find("production", "HorizontalPodAutoscaler", "potluck-api")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 14)
    assert "maxmemory 4gb" in find("production", "ConfigMap", "potluck-redis")["data"]["cache.conf"]
    config = find("production", "ConfigMap", "potluck-config")["data"]
    assert config["POTLUCK_API__CORS_ORIGINS"] == '["https://potluck.example"]'
    assert all(o["metadata"].get("namespace") == "potluck" for o in objects("production") if o["kind"] != "Namespace")


def test_a_patch_without_a_target_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(f"resources: [{BASE}]\npatches:\n  - path: p.yaml\n", encoding="utf-8")
    (tmp_path / "p.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nope}\nspec: {}\n")
    with pytest.raises(k8s.RenderError, match="no Deployment/nope"):
        k8s.render(tmp_path)


def test_an_unsupported_kustomize_field_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nreplicas: [{name: x, count: 2}]\n")
    with pytest.raises(k8s.RenderError, match="unsupported"):
        k8s.render(tmp_path)


def test_strategic_merge_merges_named_lists_and_replaces_others() -> None:
    base = {"c": [{"name": "a", "x": 1, "y": 2}], "args": ["1", "2"], "keep": True}
    k8s.strategic_merge(base, {"c": [{"name": "a", "x": 9}, {"name": "b"}], "args": ["3"]})
    assert base == {"c": [{"name": "a", "x": 9, "y": 2}, {"name": "b"}], "args": ["3"], "keep": True}


def test_json6902_replace_of_a_missing_path_is_an_error() -> None:
    with pytest.raises(k8s.RenderError):
        k8s.json6902({"data": {}}, {"op": "replace", "path": "/data/NOPE", "value": "x"})


# --- policy -------------------------------------------------------------------------------------------------

_TAGGED = re.compile(r"^[^:@]+(:(?!latest$)[\w.-]+|@sha256:[0-9a-f]{64})$")


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_policy(name: str) -> None:
    problems = []
    for obj in objects(name):
        spec = k8s.pod_spec(obj)
        if spec is None:
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        pod_security = spec.get("securityContext", {})
        if not pod_security.get("runAsNonRoot"):
            problems.append(f"{where}: runAsNonRoot")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken: false")
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            at = f"{where}/{container['name']}"
            if not _TAGGED.match(container["image"]):
                problems.append(f"{at}: image {container['image']} has no tag or digest, or is latest")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in resources.get(part, {}):
                        problems.append(f"{at}: resources.{part}.{what}")
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{at}: capabilities.drop [ALL]")
            if security.get("privileged"):
                problems.append(f"{at}: privileged")
    assert not problems, "\n".join(problems)


def test_the_api_probes_and_drains() -> None:
    spec = find("base", "Deployment", "potluck-api")["spec"]["template"]["spec"]
    api = spec["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sleep = int(api["lifecycle"]["preStop"]["exec"]["command"][1])
    # preStop, then the slowest request the mesh allows (its timeout), inside the grace period
    assert sleep + 30 < spec["terminationGracePeriodSeconds"]
    assert spec["topologySpreadConstraints"]


def test_beat_is_a_single_replica_never_two() -> None:
    beat = find("production", "Deployment", "potluck-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert not [o for o in objects("production") if o["kind"] == "HorizontalPodAutoscaler" and "beat" in str(o)]


# --- the design's values ------------------------------------------------------------------------------------


def test_the_hpa_is_the_design() -> None:
    """shared/design/scalability-and-caching.md: 70% CPU, 1000 req/s per instance, +2 instances, 5 min cooldown."""
    for name in RENDERED:
        spec = find(name, "HorizontalPodAutoscaler", "potluck-api")["spec"]
        metrics = {m["type"]: m for m in spec["metrics"]}
        assert metrics["Resource"]["resource"] == {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 70},
        }
        assert metrics["Pods"]["pods"] == {
            "metric": {"name": "potluck_http_requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "1000"},
        }
        up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
        assert up["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": 300}]
        assert down["stabilizationWindowSeconds"] == 300
    production = find("production", "HorizontalPodAutoscaler", "potluck-api")["spec"]
    assert production["maxReplicas"] == 14  # docs/capacity.md: 13 instances at 70% + 1 spare


def test_the_adapter_serves_the_metric_the_hpa_reads() -> None:
    values = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    [rule] = values["rules"]["custom"]
    assert rule["name"]["as"] == "potluck_http_requests_per_second"
    assert rule["seriesQuery"].startswith("potluck_http_requests_total{")
    metrics_source = (ROOT / "src" / "potluck" / "observability" / "http_metrics.py").read_text()
    assert '"potluck_http_requests_total"' in metrics_source


def test_the_mesh_retries_only_idempotent_methods_and_breaks_circuits() -> None:
    vs = find("base", "VirtualService", "potluck-api")["spec"]["http"]
    idempotent, writes = vs
    methods = {m["method"]["exact"] for m in idempotent["match"]}
    assert methods == {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
    assert "gateway-error" in idempotent["retries"]["retryOn"]
    # a POST/PATCH is retried only when its connection was never made
    assert set(writes["retries"]["retryOn"].split(",")) <= {"connect-failure", "refused-stream"}
    assert "match" not in writes
    policy = find("base", "DestinationRule", "potluck-api")["spec"]["trafficPolicy"]
    assert policy["outlierDetection"]["consecutive5xxErrors"] > 0
    assert policy["connectionPool"]["http"]["http1MaxPendingRequests"] > 0
    assert find("base", "PeerAuthentication", "default")["spec"]["mtls"]["mode"] == "STRICT"


def test_postgres_has_three_read_replicas_and_backs_up_to_s3() -> None:
    cluster = find("production", "Cluster", "potluck-db")["spec"]
    assert cluster["instances"] == 4  # a primary and the design's 3 read replicas
    assert cluster["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert cluster["backup"]["retentionPolicy"] == "7d"  # docs/operations.md: 7 fulls kept, one a day
    assert find("production", "ScheduledBackup", "potluck-db-daily")["spec"]["cluster"]["name"] == "potluck-db"


# --- settings wiring ----------------------------------------------------------------------------------------


def test_every_potluck_setting_is_wired() -> None:
    settings = setting_names()
    config = find("base", "ConfigMap", "potluck-config")
    in_configmap = set(config["data"])
    unset = set(config["metadata"]["annotations"]["potluck.dev/unset"].split())
    in_env = {
        env["name"]
        for container in k8s.containers(objects("base"))
        for env in container.get("env", [])
        if env["name"].startswith("POTLUCK_")
    }
    assert in_configmap <= settings, f"not settings: {sorted(in_configmap - settings)}"
    assert unset <= settings, f"not settings: {sorted(unset - settings)}"
    assert in_env <= settings, f"not settings: {sorted(in_env - settings)}"
    assert not in_configmap & unset
    assert not in_configmap & in_env
    assert not in_env & unset
    missing = settings - in_configmap - unset - in_env
    assert not missing, f"settings wired nowhere (config.yaml, a container's env, or potluck.dev/unset): {missing}"


def test_the_configmap_values_parse_as_settings() -> None:
    data = find("production", "ConfigMap", "potluck-config")["data"]
    environ = dict(data)
    environ["POTLUCK_DATABASE__URL"] = "postgresql+asyncpg://u:p@potluck-db-rw:5432/potluck"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environ.items():
            patch.setenv(key, value)
        settings = Settings()
    assert settings.redis.sentinels[0] == "potluck-sentinel-0.potluck-sentinel:26379"
    assert settings.media.storage == "s3"
    assert not settings.backup.enabled
    assert not settings.cache.test_hooks


# --- generated from one source ------------------------------------------------------------------------------


def test_generated_manifests_match_their_sources() -> None:
    assert not k8s.stale(), "run `uv run python -m potluck_ops.k8s generate`"
    rule = find("base", "PrometheusRule", "potluck")
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]


def test_a_diverging_prometheus_rule_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_of_rule = tmp_path / "prometheusrule.yaml"
    copy_of_rule.write_text(k8s.PROMETHEUS_RULE.read_text().replace("for: 5m", "for: 6m", 1))
    monkeypatch.setattr(k8s, "GENERATED", {copy_of_rule: k8s.prometheus_rule})
    assert k8s.stale() == [copy_of_rule]
