"""`potluck cluster up` as an ordered list of steps, each a small function of what the earlier ones made.

Every server is started in its own session with output in a log file, so it outlives `potluck cluster up`;
`down` finds them again from the pid files. PostgreSQL runs under Patroni (etcd keeps the leader key): nodes
pg1..pgN, one leader and N-1 replicas, one of them the synchronous standby. As root, Patroni (and the PostgreSQL
it starts) runs as the postgres user; etcd, Redis, nginx and the API run as the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from potluck_ops.app import BACKGROUND_ROLES, api_env, potluck_command
from potluck_ops.backup_steps import S3_PORTS, archiving, backup_env, configure_archiving, s3_title, start_s3
from potluck_ops.etcd import EtcdMember, check_etcd, start_etcd
from potluck_ops.failures import OpsError, failure
from potluck_ops.layout import MARKER, Layout, load_cluster_json, shared_secret, write_cluster_json
from potluck_ops.nginx import GatewayLimits, start_nginx
from potluck_ops.patroni import (
    SHARED_HOST_PARAMETERS,
    TEMPLATE,
    PatroniNode,
    check_patroni,
    leader_port,
    multi_host_url,
    start_patroni,
    wait_cluster,
    write_config,
)
from potluck_ops.ports import HOST, assign_ports, port_is_free
from potluck_ops.postgres import CLUSTER_TOOLS, PG, chown_to_postgres, create_database, pg_dsn, pg_url
from potluck_ops.processes import http_status, read_pid, run, start_logged, wait_until
from potluck_ops.progress import note, step
from potluck_ops.redis import REDIS_NODES, REDIS_ROLES, master_first, redis_url, start_redis
from potluck_ops.sentinel import MASTER_NAMES, SENTINEL_NAMES, start_sentinel, wait_sentinels_ready
from potluck_ops.teardown import stop_all
from potluck_ops.varnish import KEY_HEADER, hit_log, hit_log_writer, purge_url, start_hit_log, start_varnish


@dataclass
class BringUp:
    """What the steps share: what was asked for, then what the earlier steps made."""

    layout: Layout
    api_count: int
    replica_count: int
    lb_port: int
    seed_args: Sequence[str] | None
    previous: Mapping[str, Any] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    secret: str = ""
    started: float = 0.0
    pg_pids: dict[str, int] = field(default_factory=dict)  # Patroni's pid per node
    etcd_pid: int = 0
    pg_summary: dict[str, Any] = field(default_factory=dict)
    redis_pids: dict[str, int] = field(default_factory=dict)
    # Per role, the instance started as its master (the other is its replica; Sentinel may swap them later).
    redis_masters: dict[str, str] = field(default_factory=dict)
    sentinel_pids: dict[str, int] = field(default_factory=dict)
    potluck: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    api_procs: list[tuple[dict[str, Any], subprocess.Popen[bytes]]] = field(default_factory=list)
    api_nodes: list[dict[str, Any]] = field(default_factory=list)
    background: dict[str, dict[str, Any]] = field(default_factory=dict)
    background_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nginx_pid: int = 0
    edge_count: int = 1
    edge_pids: dict[str, int] = field(default_factory=dict)
    backup: dict[str, Any] = field(default_factory=dict)  # the S3 endpoint and pgbackrest.conf (backup_steps.py)

    @property
    def node_names(self) -> list[str]:
        """The Patroni nodes: one leader and replica_count replicas, whichever is which."""
        return [f"pg{i}" for i in range(1, self.replica_count + 2)]

    def node(self, name: str) -> PatroniNode:
        return PatroniNode(name, self.layout.patroni_root(name), self.ports[name], self.ports[f"{name}-api"])

    @property
    def etcd(self) -> EtcdMember:
        return EtcdMember("e1", self.layout.etcd, self.ports["etcd"], self.ports["etcd-peer"])

    @property
    def patroni_urls(self) -> list[str]:
        return [self.node(n).api_url for n in self.node_names]

    @property
    def api_names(self) -> list[str]:
        return [f"api-{i}" for i in range(1, self.api_count + 1)]

    @property
    def edge_names(self) -> list[str]:
        return [f"edge-{i}" for i in range(1, self.edge_count + 1)]

    @property
    def tool_env(self) -> dict[str, str]:
        """For migrate, seed, warm-cache: plain tracebacks, so a failure's last lines name the exception."""
        return {**self.env, "_TYPER_STANDARD_TRACEBACK": "1"}

    def settings(self, secret: str | None) -> dict[str, str]:
        return (
            api_env(
                database_url=multi_host_url([self.ports[n] for n in self.node_names]),
                patroni_urls=self.patroni_urls,
                sentinel_ports=[self.ports[n] for n in SENTINEL_NAMES],
                data_dir=self.layout.data,
                secret=secret,
            )
            | backup_env(self.backup)
            | self.edge_env()
            | self.gateway_env()
        )

    def edge_env(self) -> dict[str, str]:
        """Where the API purges (every edge node) and the header its surrogate keys travel in."""
        if not self.edge_count:
            return {}
        urls = [purge_url(self.ports[name]) for name in self.edge_names]
        logs = [str(hit_log(self.layout.edge, name)) for name in self.edge_names]
        writers = [str(hit_log_writer(self.layout.edge, name)) for name in self.edge_names]
        return {
            "POTLUCK_EDGE__PURGE_URLS": json.dumps(urls),
            "POTLUCK_EDGE__KEY_HEADER": KEY_HEADER,
            "POTLUCK_EDGE__VIEW_LOGS": json.dumps(logs),
            # Their varnishncsa pid files: the worker rotates each log past its bound (stats.rotate_edge_logs).
            "POTLUCK_EDGE__VIEW_LOG_WRITERS": json.dumps(writers),
        }

    def gateway_env(self) -> dict[str, str]:
        """The gateway's error log, with or without an edge: its limit_req/limit_conn refusals (warn) are the 429s
        by limit (potluck.stats.edge_views); nginx's pid file, so the worker rotates it too (SIGUSR1 reopens)."""
        return {
            "POTLUCK_EDGE__GATEWAY_LOGS": json.dumps([str(self.layout.nginx / "error.log")]),
            "POTLUCK_EDGE__GATEWAY_LOG_WRITERS": json.dumps([str(self.layout.nginx / "nginx.pid")]),
        }


@dataclass(frozen=True)
class Step:
    """One step; with a title it shows a spinner, then a check mark (or a cross), else it runs silently."""

    action: Callable[[BringUp], None]
    title: Callable[[BringUp], str] | None = None


def prepare_state_dir(layout: Layout) -> None:
    """Create the state dir and its folders; refuse a directory that `potluck cluster` did not make."""
    root = layout.root
    foreign = root.exists() and any(p.name != layout.lock_file.name for p in root.iterdir())
    if foreign and not (root / MARKER).exists():
        raise OpsError(f"{root} is not empty and was not made by `potluck cluster`; pick another directory")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()
    # Others must traverse it (never list it): postgres to its data dirs, nginx workers to their temp dirs.
    os.chmod(root, root.stat().st_mode | 0o011)
    for path in (layout.redis, layout.api, layout.data, layout.nginx, layout.worker):
        path.mkdir(exist_ok=True)
    layout.pg.mkdir(mode=0o700, exist_ok=True)
    chown_to_postgres(layout.pg)


def previous_ports(info: Mapping[str, Any] | None) -> dict[str, int]:
    """The ports of the last run, by name, from its cluster.json (reused where still free)."""
    if not info:
        return {}
    ports: dict[str, int] = {}
    with contextlib.suppress(KeyError, TypeError):
        ports["etcd"] = info["etcd"]["port"]
        ports["etcd-peer"] = info["etcd"]["peer_port"]
        for node in info["postgres"]["nodes"]:
            ports[node["name"]] = node["port"]
            ports[f"{node['name']}-api"] = node["api_port"]
    with contextlib.suppress(KeyError, TypeError, AttributeError):
        for name, node in info["redis"].items():
            ports[f"redis-{name}"] = node["port"]
    with contextlib.suppress(KeyError, TypeError):
        for node in info["edge"]["nodes"]:
            ports[node["name"]] = node["port"]
    with contextlib.suppress(KeyError, TypeError):
        for node in [*info["api"], *info["sentinel"]["nodes"]]:
            ports[node["name"]] = node["port"]
        for node in info["api"]:
            ports[f"{node['name']}-metrics"] = node["metrics_port"]
    return ports


# --------------------------------------------------------------------------------------------------- the steps


def check_tools(state: BringUp) -> None:
    missing = PG.missing(CLUSTER_TOOLS)
    if missing:
        raise OpsError(f"{missing[0]} not found: install postgresql-15 (or set POTLUCK_PG_BIN)")
    check_patroni()
    check_etcd()
    for tool, package in (("redis-server", "redis-server"), ("redis-sentinel", "redis-sentinel"), ("nginx", "nginx")):
        if shutil.which(tool) is None:
            raise OpsError(f"{tool} not found on PATH: install it (apt-get install {package})")
    # The gateway starts last, minutes from now: a limit nginx would refuse fails here, naming its variable.
    GatewayLimits.from_env(os.environ)


def stop_leftovers(state: BringUp) -> None:
    stop_all(state.layout, quiet=True)


def refuse_plain_state(state: BringUp) -> None:
    """A state dir from before Patroni holds plain data dirs (primary/, r1/ ...), which Patroni cannot adopt."""
    layout = state.layout
    plain = [n for n in ("primary", *layout.replica_names()) if (layout.pg_data(n) / "PG_VERSION").exists()]
    if plain:
        raise OpsError(
            f"{layout.pg} holds PostgreSQL data dirs ({', '.join(plain)}) made by an older `potluck cluster` "
            "(pg_basebackup replicas, no Patroni); Patroni cannot adopt them. Run `potluck cluster down --purge` "
            "(deletes that data) and `potluck cluster up` again, or set POTLUCK_CLUSTER_DIR to another directory."
        )


def choose_ports(state: BringUp) -> None:
    """After stop_leftovers: the last run's servers held its ports."""
    if not port_is_free(state.lb_port):
        raise OpsError(f"port {state.lb_port} on {HOST} is in use: stop what holds it, or pass --lb-port")
    pg = [name for node in state.node_names for name in (node, f"{node}-api")]
    names = ["etcd", "etcd-peer", *pg, *(f"redis-{n}" for n in REDIS_NODES), *SENTINEL_NAMES, *state.api_names]
    names += [f"{name}-metrics" for name in state.api_names]  # each API process's internal listener (/metrics)
    names += [*S3_PORTS, *state.edge_names]
    state.ports = assign_ports(names, previous_ports(state.previous), avoid=[state.lb_port])
    state.secret = shared_secret(state.layout)
    state.started = time.monotonic()


def start_etcd_member(state: BringUp) -> None:
    layout = state.layout
    proc = start_etcd(state.etcd, log=layout.etcd_log, pid_file=layout.etcd_pid, env=os.environ)
    state.etcd_pid = proc.pid


def note_extra_nodes(state: BringUp) -> None:
    extra = [n for n in state.layout.patroni_names() if n not in state.node_names]
    if extra:
        note(f"Patroni nodes {', '.join(extra)} exist but --replicas {state.replica_count}: left stopped")


def start_patroni_node(state: BringUp, name: str) -> None:
    """Render the node's patroni.yml from deploy/ and start it; Patroni decides its role. Every node archives
    its WAL to pgBackRest once it leads (a replica's archive_command runs only after its promotion)."""
    node = state.node(name)
    deploy = state.layout.deploy
    base = deploy / "postgres" / "postgresql.conf"
    hosts = [state.etcd.endpoint]
    parameters = {**SHARED_HOST_PARAMETERS, **archiving(state, node.data_dir)}
    write_config(deploy / TEMPLATE, node, base_conf=base, etcd_hosts=hosts, node_parameters=parameters)
    log = state.layout.pg_log(name)
    proc = start_patroni(node, log=log, pid_file=state.layout.patroni_pid(name), env=os.environ)
    state.pg_pids[name] = proc.pid


def wait_patroni(state: BringUp) -> None:
    logs = [state.layout.pg_log(n) for n in state.node_names]
    state.pg_summary = wait_cluster(state.patroni_urls, replicas=state.replica_count, timeout=120, logs=logs)
    create_database(leader_port(state.pg_summary))


def start_redis_role(state: BringUp, role: str) -> None:
    """The role's master, then its replica (it syncs at once: repl-diskless-sync-delay 0 in the role's config)."""
    master, replica = master_first(state.layout, role)
    master_port = state.ports[f"redis-{master}"]
    state.redis_pids[master] = start_redis(state.layout, master, master_port, role=role)
    port = state.ports[f"redis-{replica}"]
    state.redis_pids[replica] = start_redis(state.layout, replica, port, role=role, replica_of=master_port)
    state.redis_masters[role] = master


def start_sentinels(state: BringUp) -> None:
    masters = {role: state.ports[f"redis-{state.redis_masters[role]}"] for role in REDIS_ROLES}
    template = state.layout.deploy / "redis" / "sentinel.conf"
    for name in SENTINEL_NAMES:
        pid_file = state.layout.redis_pid(name)
        proc = start_sentinel(template, state.layout.redis, name, state.ports[name], masters, pid_file=pid_file)
        state.sentinel_pids[name] = proc.pid


def wait_sentinels(state: BringUp) -> None:
    """A failover before the sentinels know the replicas and each other would abort (infra-notes section 3)."""
    logs = [state.layout.redis_log(n) for n in SENTINEL_NAMES]
    wait_sentinels_ready([state.ports[n] for n in SENTINEL_NAMES], logs=logs)


def settle_environment(state: BringUp) -> None:
    state.env = {**os.environ, **state.settings(secret=state.secret)}
    state.potluck = potluck_command()


def migrate(state: BringUp) -> None:
    run([*state.potluck, "migrate"], what="potluck migrate", env=state.tool_env, timeout=600)


def start_api(state: BringUp) -> None:
    """The API processes start before the seed runs: their imports and the seeding overlap. Nothing reaches
    them before nginx starts, after the seed."""
    for index, name in enumerate(state.api_names, start=1):
        port = state.ports[name]
        log = state.layout.api_log(index)
        metrics_port = state.ports[f"{name}-metrics"]
        args = [*state.potluck, "serve", "--host", HOST, "--port", str(port), "--metrics-port", str(metrics_port)]
        proc = start_logged(args, log=log, pid_file=state.layout.api_pid(index), env=state.env)
        node: dict[str, Any] = {"name": name, "url": f"http://{HOST}:{port}", "port": port, "pid": proc.pid}
        node.update(metrics_port=metrics_port, metrics_url=f"http://{HOST}:{metrics_port}/metrics")
        node["log"] = str(log)
        state.api_procs.append((node, proc))


def start_edges(state: BringUp) -> None:
    """Before the API: its processes renew the edge nodes' leases from their first second (cache/edge.py)."""
    api_ports = [state.ports[name] for name in state.api_names]
    for name in state.edge_names:
        proc = start_varnish(state.layout.deploy, state.layout.edge, name, state.ports[name], api_ports, os.environ)
        state.edge_pids[name] = proc.pid
        start_hit_log(state.layout.edge, name, os.environ)


def start_background_role(
    layout: Layout, role: str, command: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start `potluck worker` or `potluck beat` detached under a supervisor that restarts it when it exits
    (potluck_ops/supervise.py): the supervisor's pid in `<role>.supervisor.pid`, the child's in `<role>.pid`.
    Returns the supervisor's process."""
    log = layout.background_log(role)
    child_pid = layout.background_pid(role)
    child_pid.unlink(missing_ok=True)  # written again by the supervisor once its child runs
    supervised = [sys.executable, "-m", "potluck_ops.supervise", "--pid-file", str(child_pid), "--name", role]
    proc = start_logged([*supervised, "--", *command, role], log=log, pid_file=layout.supervisor_pid(role), env=env)
    wait_until(child_pid.exists, what=f"{role} started by its supervisor", timeout=10, proc=proc)
    return proc


def start_background(state: BringUp) -> None:
    for role in BACKGROUND_ROLES:
        proc = start_background_role(state.layout, role, state.potluck, state.env)
        state.background[role] = {
            "pid": read_pid(state.layout.background_pid(role)),
            "supervisor_pid": proc.pid,
            "log": str(state.layout.background_log(role)),
        }
        state.background_procs[role] = proc


def seed(state: BringUp) -> None:
    assert state.seed_args is not None
    command = [*state.potluck, "seed", *state.seed_args, "--if-empty"]
    result = run(command, what="potluck seed", env=state.tool_env, timeout=3600, check=False)
    if result.returncode != 0:
        if "No such command" not in result.stderr:
            raise failure(f"potluck seed: exit code {result.returncode}", output=result.stdout + result.stderr)
        note("this build has no `potluck seed` command; skipped")


def _answers_200(url: str) -> Callable[[], bool]:
    return lambda: http_status(url) == 200


def wait_api(state: BringUp) -> None:
    for node, proc in state.api_procs:
        ready = f"{node['url']}/readyz"
        logs = [Path(node["log"])]
        wait_until(_answers_200(ready), what=f"{node['name']} {ready}", timeout=90, proc=proc, logs=logs)
        state.api_nodes.append(node)


def wait_worker_ready(
    layout: Layout, proc: subprocess.Popen[bytes] | None, *, since: int = 0, timeout: float = 90
) -> None:
    """Until the worker's log, from byte `since` on, says it is ready (also a drill's restart)."""
    worker_log = layout.background_log("worker")

    def ready() -> bool:
        with worker_log.open("rb") as fh:
            fh.seek(since)
            return b" ready." in fh.read()

    logs = [worker_log, layout.background_log("beat")]
    wait_until(ready, what="celery worker", timeout=timeout, proc=proc, logs=logs)


def wait_worker(state: BringUp) -> None:
    wait_worker_ready(state.layout, state.background_procs["worker"])


def warm_cache(state: BringUp) -> None:
    """The worker's own warm-up ran as it started, before the seed: warm again now that there is data."""
    command = [*state.potluck, "warm-cache"]
    result = run(command, what="potluck warm-cache", env=state.tool_env, timeout=300, check=False)
    if result.returncode != 0:
        note(f"potluck warm-cache failed (exit {result.returncode}); the cache fills as it is read")


def start_load_balancer(state: BringUp) -> None:
    """Last: nginx marks an upstream that refuses a connection as down for fail_timeout, so it must not see the
    API processes before they listen."""
    api_ports = [n["port"] for n in state.api_nodes]
    edge_ports = [state.ports[name] for name in state.edge_names]
    limits = GatewayLimits.from_env(os.environ)
    state.nginx_pid = start_nginx(state.layout, state.lb_port, api_ports, edge_ports, limits)


def _title(text: str) -> Callable[[BringUp], str]:
    return lambda state: text


def _patroni_title(state: BringUp, name: str) -> str:
    how = "existing data" if (state.layout.patroni_root(name) / "data" / "PG_VERSION").exists() else "new"
    return f"Patroni {name} ({how}): PostgreSQL on port {state.ports[name]}, REST on {state.ports[name + '-api']}"


def _edge_title(state: BringUp) -> str:
    ports = ", ".join(str(state.ports[name]) for name in state.edge_names)
    return f"{state.edge_count} edge cache node(s) (Varnish + xkey) on port(s) {ports}"


def _wait_title(state: BringUp) -> str:
    return f"Patroni: a leader, {state.replica_count} replica(s), a synchronous standby"


def _redis_title(state: BringUp, role: str) -> str:
    ports = " and ".join(str(state.ports[f"redis-{n}"]) for n in master_first(state.layout, role))
    return f"Redis {role}: master and replica on ports {ports}"


def _sentinel_title(state: BringUp) -> str:
    return f"{len(SENTINEL_NAMES)} Redis Sentinels on ports {', '.join(str(state.ports[n]) for n in SENTINEL_NAMES)}"


def steps(state: BringUp) -> list[Step]:
    """The bring-up, in order."""
    return [
        Step(check_tools),
        Step(refuse_plain_state),
        Step(stop_leftovers, _title("stop leftovers of an earlier run")),
        Step(choose_ports),
        Step(start_etcd_member, lambda st: f"etcd on port {st.ports['etcd']}"),
        Step(start_s3, s3_title),
        Step(note_extra_nodes),
        *(Step(partial(start_patroni_node, name=n), partial(_patroni_title, name=n)) for n in state.node_names),
        Step(wait_patroni, _wait_title),
        Step(configure_archiving, _title("pgBackRest stanza, WAL archiving checked")),
        *(Step(partial(start_redis_role, role=r), partial(_redis_title, role=r)) for r in REDIS_ROLES),
        Step(start_sentinels, _sentinel_title),
        Step(wait_sentinels, _title("Sentinels see both masters, their replicas and each other")),
        Step(settle_environment),
        Step(migrate, _title("migrate the database")),
        *([Step(start_edges, _edge_title)] if state.edge_count else []),
        Step(start_api, _title(f"start {state.api_count} API process(es)")),
        Step(start_background, _title("start the Celery worker and beat")),
        *([Step(seed, _title("seed demo data (if empty)"))] if state.seed_args is not None else []),
        Step(wait_api, _title(f"{state.api_count} API process(es) ready")),
        Step(wait_worker, _title("Celery worker ready")),
        Step(warm_cache, _title("warm the cache")),
        Step(start_load_balancer, _title(f"nginx load balancer on port {state.lb_port}")),
    ]


def bring_up(
    layout: Layout,
    *,
    api_count: int,
    replica_count: int,
    lb_port: int,
    seed_args: Sequence[str] | None,
    edge_count: int = 1,
) -> dict[str, Any]:
    """Run every step, then write cluster.json; returns what it holds."""
    previous = load_cluster_json(layout)
    state = BringUp(layout, api_count, replica_count, lb_port, seed_args, previous=previous, edge_count=edge_count)
    for each in steps(state):
        if each.title is None:
            each.action(state)
        else:
            with step(each.title(state)):
                each.action(state)
    info = cluster_info(state)
    write_cluster_json(layout, info)
    return info


def _pg_node(state: BringUp, name: str) -> dict[str, Any]:
    port = state.ports[name]
    node = state.node(name)
    return {
        "name": name,
        "port": port,
        "api_port": node.api_port,
        "api_url": node.api_url,
        "url": pg_url(port),
        "dsn": pg_dsn(port),
        "pid": state.pg_pids[name],  # Patroni's; its PostgreSQL is its child
        "data_dir": str(node.data_dir),
        "config": str(node.config),
        "log": str(state.layout.pg_log(name)),
    }


def _redis_node(state: BringUp, name: str) -> dict[str, Any]:
    port = state.ports[f"redis-{name}"]
    role = name.split("-", 1)[0]
    return {
        "role": role,
        "started_as": "master" if state.redis_masters.get(role) == name else "replica",
        "port": port,
        "url": redis_url(port),
        "pid": state.redis_pids[name],
        "conf": str(state.layout.deploy / "redis" / f"{role}.conf"),
        "log": str(state.layout.redis_log(name)),
    }


def _sentinel_node(state: BringUp, name: str) -> dict[str, Any]:
    layout = state.layout
    node: dict[str, Any] = {"name": name, "port": state.ports[name], "pid": state.sentinel_pids[name]}
    return node | {"conf": str(layout.redis / f"{name}.conf"), "log": str(layout.redis_log(name))}


def cluster_info(state: BringUp) -> dict[str, Any]:
    """What cluster.json holds: endpoints, pids, logs, and the environment that joins the cluster."""
    layout = state.layout
    lb_url = f"http://{HOST}:{state.lb_port}"
    return {
        "state_dir": str(layout.root),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "startup_seconds": round(time.monotonic() - state.started, 2),
        "lb_url": lb_url,
        "lb": {"url": lb_url, "port": state.lb_port, "pid": state.nginx_pid, "conf": str(layout.nginx / "nginx.conf")},
        "nginx_pid": state.nginx_pid,
        **state.background,
        "api": state.api_nodes,
        "edge": {
            "nodes": [
                {
                    "name": name,
                    "port": state.ports[name],
                    "url": f"http://{HOST}:{state.ports[name]}",
                    "pid": state.edge_pids[name],
                    "log": str(layout.edge / f"{name}.log"),
                }
                for name in state.edge_names
            ],
            "key_header": KEY_HEADER,
        },
        "etcd": {
            "port": state.ports["etcd"],
            "peer_port": state.ports["etcd-peer"],
            "url": state.etcd.client_url,
            "pid": state.etcd_pid,
            "log": str(layout.etcd_log),
        },
        # Which node leads changes at run time: `status` reads it from Patroni (leader, timeline, sync_standby).
        "postgres": {
            "nodes": [_pg_node(state, n) for n in state.node_names],
            "patroni_urls": state.patroni_urls,
            "url": multi_host_url([state.ports[n] for n in state.node_names]),
        },
        # Who is master now is Sentinel's to say (`potluck cluster status` asks it); these are the instances.
        "redis": {name: _redis_node(state, name) for name in REDIS_NODES},
        "sentinel": {"nodes": [_sentinel_node(state, n) for n in SENTINEL_NAMES], "masters": MASTER_NAMES},
        "backup": state.backup,
        # What a process needs to join the cluster (a worker, a benchmark); the key is in secret_file.
        "env": state.settings(secret=None),
        "secret_file": str(layout.secret_file),
    }
