"""The container image's build steps, run for real: no container engine runs here, so CI runs the two scripts the
Dockerfile's build stage runs (scripts/install-deps.sh --image, then scripts/image-check.sh) into a scratch
environment, and checks that the Dockerfile still runs those scripts and keeps its promises (a non-root user,
no build stage leftovers, a HEALTHCHECK, pinned base image)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.commands import run

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE)[1:]


def test_the_dockerfile_builds_with_the_scripts_ci_runs() -> None:
    build, runtime = _stages()
    assert "RUN bash scripts/install-deps.sh --image" in build
    assert "RUN bash scripts/image-check.sh /opt/potluck" in build
    # the runtime stage copies the environment alone: no compiler, no uv, no source tree
    assert re.findall(r"(?m)^COPY .*", runtime) == ["COPY --from=build /opt/potluck /opt/potluck"]
    assert not re.search(r"apt-get|pip install|uv ", runtime)
    assert re.search(r"(?m)^USER 10001", runtime)
    assert "HEALTHCHECK" in runtime
    assert "/healthz" in runtime
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), "pin the base image's patch release"
    dockerignore = (ROOT / ".dockerignore").read_text()
    for copied in ("pyproject.toml", "uv.lock", "README.md", "scripts/install-deps.sh", "scripts/image-check.sh"):
        assert f"!{copied}" in dockerignore


def test_the_image_environment_builds_and_passes_its_smoke_check(tmp_path: Path) -> None:
    venv = tmp_path / "image-env"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    install = run(["bash", "scripts/install-deps.sh", "--image"], cwd=ROOT, env=env, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "--no-dev --no-editable" in install.stdout
    check = run(["bash", "scripts/image-check.sh", str(venv)], cwd=ROOT)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "migrations run" in check.stdout
    # the project is installed as a wheel, not as a link to this checkout (the image has no source tree)
    assert not list(venv.glob("lib/python3.11/site-packages/*potluck*.pth"))
