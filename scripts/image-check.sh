#!/usr/bin/env bash
# Smoke check of a runtime environment (the container image's, or one CI builds the same way): the CLI starts,
# the app and the worker import, the migrations run on a fresh SQLite database, and no test tool is installed.
# Run by the Dockerfile's build stage and by tests/infra/test_image.py in CI, so the image's build steps are tested
# on every CI run even though no container engine runs there.
#
#   bash scripts/image-check.sh VENV_DIR
set -euo pipefail

venv="${1:?usage: image-check.sh VENV_DIR}"
python="$venv/bin/python"
log() { printf '[image-check] %s\n' "$*"; }

"$venv/bin/potluck" --help >/dev/null
log "potluck CLI starts"

"$python" - <<'PY'
import importlib.util
import potluck.app
import potluck.worker.app  # noqa: F401  (the Celery app: worker and beat)

potluck.app.create_app()
for tool in ("pytest", "mypy", "ruff", "hypothesis"):
    assert importlib.util.find_spec(tool) is None, f"{tool} is in the runtime environment"
PY
log "app and worker import; no test tools installed"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
POTLUCK_DATA_DIR="$scratch" "$venv/bin/potluck" migrate >/dev/null
log "migrations run on a fresh SQLite database"
