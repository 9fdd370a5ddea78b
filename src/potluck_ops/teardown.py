"""Stop whatever runs from a state dir, found again from its pid files and data dirs, not from memory."""

from __future__ import annotations

import contextlib

from potluck_ops.app import BACKGROUND_ROLES
from potluck_ops.etcd import stop_etcd
from potluck_ops.layout import Layout, load_cluster_json
from potluck_ops.nginx import stop_nginx
from potluck_ops.patroni import stop_patroni_nodes
from potluck_ops.postgres import stop_node
from potluck_ops.processes import stop_pidfile
from potluck_ops.progress import console
from potluck_ops.redis import REDIS_NODES, record_masters
from potluck_ops.sentinel import SENTINEL_NAMES, current_master_ports
from potluck_ops.supervise import SUPERVISOR_MARK
from potluck_ops.varnish import NCSA_SUFFIX, stop_varnish


def stop_all(layout: Layout, *, quiet: bool = False) -> list[str]:
    """Stop whatever runs from this state dir, newest layer first. Returns what was stopped."""
    stopped: list[str] = []
    if stop_nginx(layout):
        stopped.append("nginx")
    for pid_file in sorted(layout.edge.glob("edge-*.pid")) if layout.edge.exists() else []:
        if pid_file.stem.endswith(NCSA_SUFFIX):
            continue  # a node's varnishncsa: stop_varnish stops it with its node (this pass would drop its pid file)
        if stop_varnish(layout.edge, pid_file.stem):
            stopped.append(pid_file.stem)
    for role in reversed(BACKGROUND_ROLES):
        # The supervisor first, or it would restart what is stopped; it passes SIGTERM on to its child.
        supervised = stop_pidfile(layout.supervisor_pid(role), [SUPERVISOR_MARK], timeout=40)
        # SIGTERM: the worker finishes its tasks in flight (warm shutdown); the group takes its pool along.
        if stop_pidfile(layout.background_pid(role), [b"potluck", role.encode()], timeout=20, group=True) or supervised:
            stopped.append(role)
    for pid_file in sorted(layout.api.glob("api-*.pid")) if layout.api.exists() else []:
        # SIGTERM lets uvicorn finish requests in flight; the group takes any worker children along.
        if stop_pidfile(pid_file, [b"potluck", b"serve"], timeout=10, group=True):
            stopped.append(pid_file.stem)
    _remember_masters(layout)
    for name in SENTINEL_NAMES:
        # The sentinels first: stopping a master under their watch would start a failover.
        if stop_pidfile(layout.redis_pid(name), [b"sentinel"], timeout=10):
            stopped.append(name)
    for name in REDIS_NODES:
        # SIGTERM makes Redis flush the AOF (coord) before exiting.
        if stop_pidfile(layout.redis_pid(name), [b"redis-server"], timeout=15):
            stopped.append(f"redis-{name}")
    if layout.pg.exists():
        # Patroni nodes all at once (each stops its PostgreSQL), then etcd, which they report to until they exit.
        for pid_file in stop_patroni_nodes([layout.patroni_pid(n) for n in layout.patroni_names()]):
            stopped.append(f"patroni-{pid_file.name.split('.')[0]}")
    if stop_etcd(layout.etcd_pid):
        stopped.append("etcd")
    if layout.pg.exists():
        # Restored copies (`potluck restore` leaves them running), then, in a state dir from before Patroni, plain
        # nodes, replicas first, so they do not spend the primary's shutdown reconnecting to it.
        restored = sorted(p.name for p in layout.pg.glob("restored") if p.is_dir())
        for name in [*restored, *reversed(layout.replica_names()), "primary"]:
            if stop_node(layout, name):
                stopped.append(f"postgres-{name}")
    if not quiet:
        console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return stopped


def _remember_masters(layout: Layout) -> None:
    """Ask the sentinels (while they run) which instance is each role's master, for the next `up`."""
    info = load_cluster_json(layout) or {}
    with contextlib.suppress(KeyError, TypeError, AttributeError, ValueError):
        ports = [node["port"] for node in info["sentinel"]["nodes"]]
        by_port = {node["port"]: name for name, node in info["redis"].items()}
        masters = {role: by_port[port] for role, port in current_master_ports(ports).items() if port in by_port}
        if masters:
            record_masters(layout, masters)
