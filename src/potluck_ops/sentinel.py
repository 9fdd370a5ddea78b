"""Redis Sentinel: three sentinels watching the cache and coordination masters (deploy/redis/sentinel.conf), when
they are ready, and what they say about each master (for `potluck cluster status` and the test harness)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from potluck_ops.failures import OpsError
from potluck_ops.nginx import render_template
from potluck_ops.ports import HOST
from potluck_ops.processes import start_logged, wait_until
from potluck_ops.redis import redis_ping

# Each Redis role and the name its master has in Sentinel (the template monitors these names).
MASTER_NAMES = {"cache": "potluck-cache", "coord": "potluck-coord"}
SENTINEL_COUNT = 3
SENTINEL_NAMES = tuple(f"sentinel-{i}" for i in range(1, SENTINEL_COUNT + 1))
REDIS_SENTINEL = os.environ.get("POTLUCK_REDIS_SENTINEL", "redis-sentinel")


def render_sentinel_conf(template: str, *, port: int, workdir: Path, log: Path, masters: Mapping[str, int]) -> str:
    """One sentinel's config: its port and files, and the current port of each role's master."""
    values = {"host": HOST, "port": str(port), "dir": str(workdir), "logfile": str(log)}
    values.update({f"{role}_port": str(masters[role]) for role in MASTER_NAMES})
    return render_template(template, values)


def start_sentinel(
    template: Path,
    workdir: Path,
    name: str,
    port: int,
    masters: Mapping[str, int],
    *,
    pid_file: Path | None = None,
    detach: bool = True,
) -> subprocess.Popen[bytes]:
    """Write `workdir/<name>.conf` (writable: the sentinel rewrites it) and start the sentinel; wait for its PONG."""
    if shutil.which(REDIS_SENTINEL) is None:
        raise OpsError(f"{REDIS_SENTINEL} not found on PATH: install it (apt-get install redis-sentinel)")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"{name}.conf"
    log = workdir / f"{name}.log"
    conf.write_text(render_sentinel_conf(template.read_text(), port=port, workdir=workdir, log=log, masters=masters))
    conf.chmod(0o644)
    proc = start_logged([REDIS_SENTINEL, conf], log=log, pid_file=pid_file, env=os.environ, cwd=workdir, detach=detach)
    wait_until(lambda: redis_ping(port), what=f"{name} on port {port}", timeout=20, proc=proc, logs=[log])
    return proc


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        host=HOST, port=port, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
    )


def _flags(node: Mapping[str, Any]) -> set[str]:
    return {f for f in ("is_sdown", "is_odown", "is_disconnected") if node.get(f)}


def sentinel_ready(port: int) -> bool:
    """This sentinel sees every master up, at least one live replica of each (else a failover would abort), and
    the other sentinels (else there is no quorum)."""
    try:
        with _client(port) as client:
            masters = client.sentinel_masters()
            for name in MASTER_NAMES.values():
                state = masters.get(name)
                if not state or _flags(state) or state.get("num-other-sentinels", 0) < SENTINEL_COUNT - 1:
                    return False
                replicas = client.sentinel_slaves(name)
                if not any(not _flags(r) and r.get("master-link-status") == "ok" for r in replicas):
                    return False
    except (RedisError, OSError):
        return False
    return True


def wait_sentinels_ready(ports: Iterable[int], *, timeout: float = 30, logs: Sequence[Path] = ()) -> None:
    """Until every sentinel is ready (replicas are learnt from INFO, other sentinels from hello messages: ~2 s)."""
    for port in ports:
        wait_until(partial(sentinel_ready, port), what=f"sentinel on port {port}", timeout=timeout, logs=logs)


def _address(node: Mapping[str, Any]) -> str:
    return f"{node.get('ip')}:{node.get('port')}"


def sentinel_view(ports: Iterable[int]) -> dict[str, Any]:
    """What the first sentinel that answers says of each master: address, replicas, sentinels watching it."""
    for port in ports:
        try:
            with _client(port) as client:
                masters = client.sentinel_masters()
                view: dict[str, Any] = {"answered_by": f"{HOST}:{port}", "masters": {}}
                for role, name in MASTER_NAMES.items():
                    state = masters.get(name, {})
                    replicas = client.sentinel_slaves(name) if state else []
                    view["masters"][role] = {
                        "name": name,
                        "address": _address(state) if state else None,
                        "down": sorted(_flags(state)) if state else ["unknown"],
                        "replicas": [{"address": _address(r), "down": sorted(_flags(r))} for r in replicas],
                        "sentinels": int(state.get("num-other-sentinels", -1)) + 1,
                        "quorum": state.get("quorum"),
                    }
                return view
        except (RedisError, OSError):
            continue
    return {"answered_by": None, "masters": {}}


def current_master_ports(ports: Iterable[int]) -> dict[str, int]:
    """The port of each role's master as the sentinels see it now (roles no sentinel answers for are left out)."""
    masters = sentinel_view(ports)["masters"]
    found: dict[str, int] = {}
    for role, state in masters.items():
        if state["address"] and not state["down"]:
            found[role] = int(state["address"].rsplit(":", 1)[1])
    return found
