"""Stop whatever runs from a state dir, found again from its pid files and data dirs, not from memory."""

from __future__ import annotations

from potluck_ops.app import BACKGROUND_ROLES
from potluck_ops.layout import Layout
from potluck_ops.nginx import stop_nginx
from potluck_ops.postgres import stop_node
from potluck_ops.processes import stop_pidfile
from potluck_ops.progress import console
from potluck_ops.redis import REDIS_ROLES


def stop_all(layout: Layout, *, quiet: bool = False) -> list[str]:
    """Stop whatever runs from this state dir, newest layer first. Returns what was stopped."""
    stopped: list[str] = []
    if stop_nginx(layout):
        stopped.append("nginx")
    for role in reversed(BACKGROUND_ROLES):
        # SIGTERM: the worker finishes its tasks in flight (warm shutdown); the group takes its pool along.
        if stop_pidfile(layout.background_pid(role), [b"potluck", role.encode()], timeout=20, group=True):
            stopped.append(role)
    for pid_file in sorted(layout.api.glob("api-*.pid")) if layout.api.exists() else []:
        # SIGTERM lets uvicorn finish requests in flight; the group takes any worker children along.
        if stop_pidfile(pid_file, [b"potluck", b"serve"], timeout=10, group=True):
            stopped.append(pid_file.stem)
    for role in REDIS_ROLES:
        # SIGTERM makes Redis flush the AOF (coord) before exiting.
        if stop_pidfile(layout.redis_pid(role), [b"redis-server"], timeout=15):
            stopped.append(f"redis-{role}")
    if layout.pg.exists():
        # Replicas first, so they do not spend the primary's shutdown reconnecting to it.
        # Restored copies (`potluck restore` leaves them running) first, then replicas, then the primary.
        restored = sorted(p.name for p in layout.pg.glob("restored") if p.is_dir())
        for name in [*restored, *reversed(layout.replica_names()), "primary"]:
            if stop_node(layout, name):
                stopped.append(f"postgres-{name}")
    if not quiet:
        console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return stopped
