"""Redis: a PING over a raw socket, and the two instances of `potluck cluster` (cache, coordination)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from potluck_ops.layout import Layout
from potluck_ops.ports import HOST
from potluck_ops.processes import start_logged, wait_until

# deploy/redis/cache.conf (evicting) and deploy/redis/coord.conf (non-evicting: locks, the Celery broker).
REDIS_ROLES = ("cache", "coord")


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


def start_redis(layout: Layout, role: str, port: int) -> int:
    """Start the `role` instance detached and wait for its PONG; its pid."""
    conf = layout.deploy / "redis" / f"{role}.conf"
    data_dir = layout.redis / role
    data_dir.mkdir(parents=True, exist_ok=True)
    log = layout.redis_log(role)
    # The file holds the role's policy (eviction, persistence); the instance's own port and paths win over it.
    args: list[str | Path] = ["redis-server", conf, "--port", str(port), "--bind", HOST, "--dir", data_dir]
    args += ["--pidfile", layout.redis_pid(role), "--logfile", log, "--daemonize", "no"]
    proc = start_logged(args, log=log, pid_file=layout.redis_pid(role), env=os.environ)
    wait_until(lambda: redis_ping(port), what=f"Redis {role} on port {port}", timeout=30, proc=proc, logs=[log])
    return proc.pid
