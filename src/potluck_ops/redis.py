"""Redis: a PING over a raw socket, and the instances of `potluck cluster`: a master and a replica for each role
(cache, coordination), watched by the sentinels of potluck_ops.sentinel."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from potluck_ops.layout import Layout
from potluck_ops.ports import HOST
from potluck_ops.processes import start_logged, wait_until

# deploy/redis/cache.conf (evicting) and deploy/redis/coord.conf (non-evicting: locks, the Celery broker).
REDIS_ROLES = ("cache", "coord")


def redis_nodes(role: str) -> tuple[str, str]:
    """The two instances of a role: the one started as its master, and its replica (Sentinel may swap them)."""
    return role, f"{role}-replica"


REDIS_NODES = tuple(name for role in REDIS_ROLES for name in redis_nodes(role))


def redis_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """Whether Redis on HOST:port answers PING within `timeout` seconds (no client library)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(layout: Layout, name: str, port: int, *, role: str | None = None, replica_of: int | None = None) -> int:
    """Start instance `name` of `role` (its config: deploy/redis/<role>.conf) detached, as a replica of the master
    on `replica_of` if given, and wait for its PONG; its pid."""
    data_dir = layout.redis / name
    data_dir.mkdir(parents=True, exist_ok=True)
    # A failover makes Sentinel send CONFIG REWRITE to the instances it reconfigures: each runs from its own copy
    # under the state dir, or the rewrite lands in the repository's deploy/redis/<role>.conf (and in every later
    # cluster that reads it: a `dir` of a deleted state dir there stops Redis from starting).
    conf = layout.redis / f"{name}.conf"
    shutil.copyfile(layout.deploy / "redis" / f"{role or name}.conf", conf)
    log = layout.redis_log(name)
    # The file holds the role's policy (eviction, persistence); the instance's own port and paths win over it.
    args: list[str | Path] = ["redis-server", conf, "--port", str(port), "--bind", HOST, "--dir", data_dir]
    args += ["--pidfile", layout.redis_pid(name), "--logfile", log, "--daemonize", "no"]
    if replica_of is not None:
        args += ["--replicaof", HOST, str(replica_of)]
    proc = start_logged(args, log=log, pid_file=layout.redis_pid(name), env=os.environ)
    wait_until(lambda: redis_ping(port), what=f"Redis {name} on port {port}", timeout=30, proc=proc, logs=[log])
    return proc.pid


def _masters_file(layout: Layout) -> Path:
    return layout.redis / "masters.json"


def record_masters(layout: Layout, masters: Mapping[str, str]) -> None:
    """Remember which instance of each role was the master when the cluster stopped (Sentinel may have swapped
    them): the next `up` starts that one as the master. Starting the other would make the one with the newest
    data (the coordination instance's queued tasks) resync from the older one and lose it."""
    known = recorded_masters(layout)
    known.update(masters)
    _masters_file(layout).write_text(json.dumps(known) + "\n")


def recorded_masters(layout: Layout) -> dict[str, str]:
    try:
        data = json.loads(_masters_file(layout).read_text())
    except (OSError, ValueError):
        return {}
    return {role: name for role, name in data.items() if role in REDIS_ROLES and name in redis_nodes(role)}


def master_first(layout: Layout, role: str) -> tuple[str, str]:
    """The role's two instances, the one to start as master first."""
    first, second = redis_nodes(role)
    return (second, first) if recorded_masters(layout).get(role) == second else (first, second)
