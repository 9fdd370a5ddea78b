"""What the PostgreSQL drills do to a Patroni node, and how they see the application follow it.

Faults are signals to pids of the state dir: Patroni's pid file, and its PostgreSQL's `postmaster.pid`. A planned
switchover goes through `patronictl` (Debian's, on the system python3, as the operator would run it). The
application's view comes from each API process's /metrics: `potluck_db_replica_healthy{replica="host:port"}` is 1
while that node is in the process's read rotation (the series is gone once the topology watcher dropped it), and
`potluck_db_queries_total{role="replica",node="host:port"}` counts what the node served.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from potluck_ops.drills.failover import detached
from potluck_ops.drills.probes import Target
from potluck_ops.failures import OpsError
from potluck_ops.patroni import (
    REPLICA_ROLES,
    RUNNING_STATES,
    SCOPE,
    PatroniNode,
    fetch_cluster,
    start_patroni,
    summarize,
)
from potluck_ops.ports import HOST
from potluck_ops.processes import is_ours, pid_alive, read_pid, run, wait_exit

PATRONICTL = "patronictl"
HEALTHY = "potluck_db_replica_healthy"
QUERIES = "potluck_db_queries_total"


# ------------------------------------------------------------------------------------------------ the cluster


def node_info(target: Target, name: str) -> dict[str, Any]:
    """The node's entry in cluster.json (ports, config, log)."""
    for node in target.info["postgres"]["nodes"]:
        if node["name"] == name:
            found: dict[str, Any] = node
            return found
    raise OpsError(f"no Patroni node {name} in this cluster")


def patroni_node(target: Target, name: str) -> PatroniNode:
    info = node_info(target, name)
    return PatroniNode(name, target.layout.patroni_root(name), int(info["port"]), int(info["api_port"]))


def address(target: Target, name: str) -> str:
    """host:port, the name the application gives the node (its `replica` / `node` label)."""
    return f"{HOST}:{node_info(target, name)['port']}"


def summary(target: Target) -> dict[str, Any]:
    """leader, timeline, sync_standby, members: Patroni's /cluster now (empty when no member answers)."""
    return summarize(fetch_cluster(target.info["postgres"]["patroni_urls"]))


def member(state: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((m for m in state["members"] if m["name"] == name), None)


def is_running_replica(state: dict[str, Any], name: str) -> bool:
    """Patroni lists `name` as a replica that streams from the leader, on the leader's timeline."""
    node = member(state, name)
    return (
        node is not None
        and node["role"] in REPLICA_ROLES
        and node["state"] in RUNNING_STATES
        and node["timeline"] == state["timeline"]
    )


def replica_count(target: Target) -> int:
    return len(target.info["postgres"]["nodes"]) - 1


async def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until `check()` (blocking; run in a thread) is true; None if not within `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if await asyncio.to_thread(check):
            return time.monotonic() - began
        await asyncio.sleep(interval)
    return None


# ------------------------------------------------------------------------------------------------ faults


def postgres_processes(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, walsenders, the walreceiver...)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def patroni_pid(target: Target, name: str) -> int:
    pid = read_pid(target.layout.patroni_pid(name))
    if pid is None or not pid_alive(pid) or not is_ours(pid, b"patroni"):
        raise OpsError(f"Patroni {name} is not running (pid file {target.layout.patroni_pid(name)})")
    return pid


def crash_node(target: Target, name: str) -> dict[str, int | None]:
    """A host crash: SIGKILL Patroni first (else it would restart PostgreSQL), then the postmaster; its children
    exit when they see it gone. Both must go: Patroni alone leaves a writable PostgreSQL behind, which would be a
    second primary once the leader key expires (no watchdog); the postmaster alone is restarted in place by
    Patroni within loop_wait, a restart and not a failover."""
    node = patroni_node(target, name)
    patroni = patroni_pid(target, name)
    postmaster = node.postmaster_pid()
    os.kill(patroni, signal.SIGKILL)
    if postmaster is not None and pid_alive(postmaster):
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)
    for pid in (patroni, postmaster):
        if pid is not None and not wait_exit(pid, 10):
            raise OpsError(f"pid {pid} of node {name} survived SIGKILL")
    # An orphan nobody reaps stays a zombie, which Patroni would take for a running postmaster.
    (node.data_dir / "postmaster.pid").unlink(missing_ok=True)
    target.layout.patroni_pid(name).unlink(missing_ok=True)
    return {"patroni_pid": patroni, "postmaster_pid": postmaster}


def restart_node(target: Target, name: str) -> int:
    """Start the node's Patroni as `potluck cluster up` does (it rewinds and rejoins a diverged old leader);
    its pid, saved in cluster.json."""
    node = patroni_node(target, name)
    log = target.layout.pg_log(name)
    pid_file = target.layout.patroni_pid(name)
    pid = detached(lambda: start_patroni(node, log=log, pid_file=pid_file, env=os.environ).pid)
    node_info(target, name)["pid"] = pid
    target.save()
    return pid


def freeze(pids: Sequence[int], sig: signal.Signals) -> None:
    """SIGSTOP (a partition: nothing answers, connections stay open) or SIGCONT every pid."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def node_processes(target: Target, name: str) -> list[int]:
    """Patroni and its PostgreSQL, every process of it: what a network partition silences."""
    postmaster = patroni_node(target, name).postmaster_pid()
    if postmaster is None or not pid_alive(postmaster):
        raise OpsError(f"PostgreSQL of node {name} is not running")
    return [patroni_pid(target, name), *postgres_processes(postmaster)]


def switchover(target: Target, leader: str, candidate: str) -> str:
    """`patronictl switchover --force`, as an operator runs it; its output."""
    config = node_info(target, leader)["config"]
    args = [PATRONICTL, "-c", config, "switchover", "--force", "--leader", leader, "--candidate", candidate, SCOPE]
    result = run(args, what="patronictl switchover", timeout=90)
    return result.stdout.strip()


# ------------------------------------------------------------------------------------------------ the app's view


@dataclass(frozen=True, slots=True)
class NodeView:
    """What every API process says of one node: healthy (in rotation) per process, and replica queries summed."""

    healthy: list[float | None]  # per API process; None: no series (not a replica it knows)
    queries: float

    @property
    def in_rotation(self) -> bool:
        return bool(self.healthy) and all(h == 1 for h in self.healthy)

    @property
    def out_of_rotation(self) -> bool:
        return all(h != 1 for h in self.healthy)


async def node_view(client: httpx.AsyncClient, metrics_urls: Sequence[str], node: str) -> NodeView | None:
    """Read every API process's /metrics (its internal listener); None if one does not answer."""
    healthy: list[float | None] = []
    queries = 0.0
    for url in metrics_urls:
        try:
            text = (await client.get(url, timeout=2)).text
        except httpx.HTTPError:
            return None
        seen: float | None = None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == HEALTHY and sample.labels.get("replica") == node:
                    seen = sample.value
                elif sample.name == QUERIES and sample.labels.get("node") == node:
                    queries += sample.value if sample.labels.get("role") == "replica" else 0.0
        healthy.append(seen)
    return NodeView(healthy, queries)


async def wait_rotation(target: Target, node: str, *, inside: bool, timeout: float) -> tuple[float | None, NodeView]:
    """Seconds until every API process has `node` in its read rotation (`inside`) or none has; None if not
    within `timeout`. Also the last view."""
    began = time.monotonic()
    last = NodeView([], 0.0)
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() - began < timeout:
            view = await node_view(client, target.metrics_urls, node)
            if view is not None:
                last = view
                if view.in_rotation if inside else view.out_of_rotation:
                    return time.monotonic() - began, view
            await asyncio.sleep(0.2)
    return None, last


async def replica_queries(target: Target, node: str) -> float:
    """Statements `node` has served as a replica, every API process summed (0 when unknown)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        view = await node_view(client, target.metrics_urls, node)
    return 0.0 if view is None else view.queries
