"""`potluck cluster status`: cluster.json plus liveness, and the table `up` prints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.table import Table

from potluck_ops.app import BACKGROUND_ROLES
from potluck_ops.etcd import etcd_healthy_url
from potluck_ops.layout import Layout, load_cluster_json
from potluck_ops.patroni import RUNNING_STATES, fetch_cluster, summarize
from potluck_ops.ports import HOST
from potluck_ops.postgres import accepting_connections
from potluck_ops.processes import http_status, pid_alive, read_pid
from potluck_ops.redis import redis_ping
from potluck_ops.sentinel import sentinel_view
from potluck_ops.varnish import answers_purge


def cluster_status(layout: Layout) -> dict[str, Any]:
    """cluster.json plus liveness: `alive` per pid, `healthy` per endpoint, `up` when everything is."""
    info = load_cluster_json(layout)
    if info is None:
        return {"up": False, "state_dir": str(layout.root), "reason": f"no {layout.cluster_json}"}
    checks: list[bool] = []

    def mark(node: dict[str, Any], healthy: bool) -> None:
        node["alive"] = pid_alive(node.get("pid"))
        node["healthy"] = node["alive"] and healthy
        checks.append(node["healthy"])

    pg = info.get("postgres", {})
    if "nodes" in pg:
        _patroni_status(pg, mark)
        etcd = info.get("etcd", {})
        mark(etcd, etcd_healthy_url(str(etcd.get("url"))))
    else:  # a cluster.json from before Patroni
        for node in [pg.get("primary", {}), *pg.get("replicas", [])]:
            mark(node, accepting_connections(node.get("port", 0)))
    for node in info.get("redis", {}).values():
        mark(node, redis_ping(node.get("port", 0)))
    sentinel = info.get("sentinel", {})
    for node in sentinel.get("nodes", []):
        mark(node, redis_ping(node.get("port", 0)))
    if sentinel:
        # Which instance is master now, and who replicates it: Sentinel's view, not the names in cluster.json.
        sentinel["view"] = sentinel_view(node["port"] for node in sentinel.get("nodes", []))
        for state in sentinel["view"]["masters"].values() or [{"down": ["no sentinel answers"]}]:
            checks.append(not state["down"] and any(not r["down"] for r in state.get("replicas", [])))
    for node in info.get("api", []):
        mark(node, http_status(f"{node.get('url')}/healthz") == 200)
    for role in BACKGROUND_ROLES:
        if role in info:
            # Its supervisor may have restarted it since cluster.json was written: the pid file is current.
            info[role]["pid"] = read_pid(layout.background_pid(role)) or info[role].get("pid")
            mark(info[role], True)  # no endpoint: alive is healthy
    for node in info.get("edge", {}).get("nodes", []):
        mark(node, answers_purge(node.get("port", 0)))
    lb = info.get("lb", {})
    mark(lb, http_status(f"{lb.get('url')}/healthz") == 200)
    info["up"] = bool(checks) and all(checks)
    return info


def _patroni_status(pg: dict[str, Any], mark: Callable[[dict[str, Any], bool], None]) -> None:
    """Who leads now, from Patroni's /cluster: leader, timeline, sync_standby, members; `primary` and `replicas`
    are the nodes of cluster.json in their current roles."""
    live = summarize(fetch_cluster(pg.get("patroni_urls", [])))
    pg.update(live)
    roles = {m["name"]: m for m in live["members"]}
    for node in pg["nodes"]:
        member = roles.get(node["name"], {})
        node["role"] = member.get("role")
        mark(node, member.get("state") in RUNNING_STATES and accepting_connections(node.get("port", 0)))
    pg["primary"] = next((n for n in pg["nodes"] if n["name"] == live["leader"]), {"name": None, "healthy": False})
    pg["replicas"] = [n for n in pg["nodes"] if n["name"] != live["leader"]]
    if live["leader"] is None:
        mark(pg["primary"], False)


def summary(info: Mapping[str, Any]) -> Table:
    """One row per component: endpoint, pid, up or down."""
    table = Table(title=f"potluck cluster: {info.get('lb', {}).get('url')}", title_justify="left")
    for column in ("component", "endpoint", "pid", "state"):
        table.add_column(column, overflow="fold")

    def row(name: str, node: Mapping[str, Any], endpoint: str) -> None:
        state = "[green]up[/green]" if node.get("healthy", True) else "[red]down[/red]"
        table.add_row(name, endpoint, str(node.get("pid")), state)

    row("nginx (lb)", info["lb"], info["lb"]["url"])
    for node in info.get("edge", {}).get("nodes", []):
        row(f"varnish {node['name']} (edge)", node, node["url"])
    for node in info["api"]:
        row(node["name"], node, node["url"])
    for role in BACKGROUND_ROLES:
        if role in info:
            row(f"celery {role}", info[role], info[role]["log"])
    pg = info["postgres"]
    if "etcd" in info:
        row("etcd", info["etcd"], info["etcd"]["url"])
    for node in pg.get("nodes") or [pg["primary"], *pg["replicas"]]:
        role = f" ({node.get('role') or 'no role'})" if "role" in node else ""  # roles come from `status`
        row(f"postgres {node['name']}{role}", node, node["dsn"])
    for name, node in info["redis"].items():
        row(f"redis {name}", node, node["url"])
    sentinel = info.get("sentinel", {})
    for node in sentinel.get("nodes", []):
        row(node["name"], node, f"{HOST}:{node['port']}")
    for role, state in sentinel.get("view", {}).get("masters", {}).items():
        replicas = ", ".join(r["address"] for r in state["replicas"]) or "none"
        healthy = not state["down"] and bool(state["replicas"])
        row(f"{role} master ({state['name']})", {"healthy": healthy}, f"{state['address']} (replicas: {replicas})")
    return table
