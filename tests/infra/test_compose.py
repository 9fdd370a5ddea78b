"""deploy/compose, checked without a container engine: the file validates against the Compose Specification's
JSON schema (vendored), every file it mounts exists, every service it names is defined, images are pinned, the
app's environment names real settings, and its Prometheus configuration loads with the repository's rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.commands import run
from tests.support.settings_names import setting_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
APP_SERVICES = {"migrate", "api", "worker", "beat"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return loaded


def test_compose_validates_against_the_compose_specification() -> None:
    schema = json.loads((COMPOSE_DIR / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose())
    broken = compose()
    broken["services"]["api"]["restart_policy"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_the_full_topology_is_there() -> None:
    services = set(compose()["services"])
    assert services >= {
        "postgres-primary",
        "postgres-replica",
        "redis-cache",
        "redis-coord",
        "api",
        "worker",
        "beat",
        "migrate",
        "nginx",
        "prometheus",
        "grafana",
        "otel-collector",
        "jaeger",
    }
    assert compose()["services"]["api"]["deploy"]["replicas"] == 2


def test_mounted_files_exist_and_named_services_are_defined() -> None:
    spec = compose()
    services = spec["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in spec["volumes"], f"{name}: volume {source} is not declared"
        depends = service.get("depends_on", {})
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on {other}, which is not a service"
        image = service["image"]
        assert ":" in image, f"{name}: pin {image}"
        assert not image.endswith(":latest"), f"{name}: pin {image}"
    app_images = {services[s]["image"] for s in APP_SERVICES}
    assert app_images == {"potluck:0.1.0"}, "one image for serve, worker, beat and migrate"
    assert (ROOT / services["api"]["build"]["context"].replace("../..", ".") / "Dockerfile").exists()


def test_the_app_environment_names_real_settings() -> None:
    settings = setting_names()
    for name in APP_SERVICES:
        env = compose()["services"][name]["environment"]
        unknown = {k for k in env if k.startswith("POTLUCK_")} - settings
        assert not unknown, f"{name}: {unknown}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not found (scripts/install-deps.sh)")
def test_the_compose_prometheus_config_loads(tmp_path: Path) -> None:
    shutil.copy(COMPOSE_DIR / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    done = run(["promtool", "check", "config", "prometheus.yml"], cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
