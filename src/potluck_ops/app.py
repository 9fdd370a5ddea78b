"""The Potluck app as child processes: the command that runs its CLI and the settings it reads from the
environment. Only ever through a subprocess: potluck_ops does not import potluck."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from potluck_ops.ports import HOST
from potluck_ops.sentinel import MASTER_NAMES

# Celery, started after the API processes and stopped before them.
BACKGROUND_ROLES = ("worker", "beat")


def potluck_command() -> list[str]:
    """How to run this project's CLI in a child: the console script next to our interpreter (the venv's)."""
    script = Path(sys.executable).parent / "potluck"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("potluck")
    if found:
        return [found]
    return [sys.executable, "-c", "from potluck.cli.main import app; app()"]


def api_env(
    *,
    database_url: str,
    patroni_urls: Sequence[str],
    sentinel_ports: Sequence[int],
    data_dir: Path,
    secret: str | None,
) -> dict[str, str]:
    """The POTLUCK_* settings of an API process (and of migrate/seed); `secret=None` leaves the key out."""
    env = {
        # Every node, the leader found by target_session_attrs; replicas come from Patroni's /cluster at run time.
        "POTLUCK_DATABASE__URL": database_url,
        "POTLUCK_DATABASE__PATRONI_URLS": json.dumps(list(patroni_urls)),
        # Every Redis client (cache, its invalidation bus, Celery's broker, analytics, views) finds its master
        # through the sentinels, so it follows a failover; no fixed Redis URL is handed out.
        "POTLUCK_REDIS__SENTINELS": json.dumps([f"{HOST}:{p}" for p in sentinel_ports]),
        "POTLUCK_REDIS__CACHE_MASTER": MASTER_NAMES["cache"],
        "POTLUCK_REDIS__COORD_MASTER": MASTER_NAMES["coord"],
        "POTLUCK_DATA_DIR": str(data_dir),
        # Every client of this topology is 127.0.0.1 (the drills, `make loadtest`, a person's curl): per-address
        # limits sized for one real client would refuse the drills' and load tests' sign-ups. Per-account limits
        # and the gateway's own rate limits stay as configured (docs/security.md, "Throttles").
        "POTLUCK_THROTTLE__REGISTER_PER_ADDRESS": "100000",
        "POTLUCK_THROTTLE__LOGIN_ADDRESS_LIMIT": "100000",
        "POTLUCK_THROTTLE__PASSWORD_RESET_PER_ADDRESS": "100000",
    }
    if secret is not None:
        env["POTLUCK_AUTH__SECRET_KEY"] = secret
    return env
