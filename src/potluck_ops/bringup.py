"""`potluck cluster up` as an ordered list of steps, each a small function of what the earlier ones made.

Every server is started in its own session with output in a log file, so it outlives `potluck cluster up`;
`down` finds them again from the pid files (and PostgreSQL from its data dirs). As root, PostgreSQL binaries
run as the postgres user; Redis, nginx and the API run as the caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from potluck_ops.app import BACKGROUND_ROLES, api_env, potluck_command
from potluck_ops.backup_steps import S3_PORTS, archiving, backup_env, configure_archiving, s3_title, start_s3
from potluck_ops.failures import OpsError, failure
from potluck_ops.layout import MARKER, Layout, load_cluster_json, shared_secret, write_cluster_json
from potluck_ops.nginx import start_nginx
from potluck_ops.ports import HOST, assign_ports, port_is_free
from potluck_ops.postgres import (
    CLUSTER_TOOLS,
    PG,
    chown_to_postgres,
    create_database,
    create_replica,
    follow_primary,
    init_primary,
    pg_dsn,
    pg_url,
    start_node,
    wait_streaming,
)
from potluck_ops.processes import http_status, run, start_logged, wait_until
from potluck_ops.progress import note, step
from potluck_ops.redis import REDIS_ROLES, redis_url, start_redis
from potluck_ops.teardown import stop_all


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
    pg_pids: dict[str, int] = field(default_factory=dict)
    redis_pids: dict[str, int] = field(default_factory=dict)
    potluck: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    api_procs: list[tuple[dict[str, Any], subprocess.Popen[bytes]]] = field(default_factory=list)
    api_nodes: list[dict[str, Any]] = field(default_factory=list)
    background: dict[str, dict[str, Any]] = field(default_factory=dict)
    background_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nginx_pid: int = 0
    backup: dict[str, Any] = field(default_factory=dict)  # the S3 endpoint and pgbackrest.conf (backup_steps.py)

    @property
    def replica_names(self) -> list[str]:
        return [f"r{i}" for i in range(1, self.replica_count + 1)]

    @property
    def api_names(self) -> list[str]:
        return [f"api-{i}" for i in range(1, self.api_count + 1)]

    @property
    def tool_env(self) -> dict[str, str]:
        """For migrate, seed, warm-cache: plain tracebacks, so a failure's last lines name the exception."""
        return {**self.env, "_TYPER_STANDARD_TRACEBACK": "1"}

    def settings(self, secret: str | None) -> dict[str, str]:
        return api_env(
            primary_port=self.ports["primary"],
            replica_ports=[self.ports[n] for n in self.replica_names],
            cache_port=self.ports["redis-cache"],
            coord_port=self.ports["redis-coord"],
            data_dir=self.layout.data,
            secret=secret,
        ) | backup_env(self.backup)


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
        pg = info["postgres"]
        ports["primary"] = pg["primary"]["port"]
        for node in pg["replicas"]:
            ports[node["name"]] = node["port"]
        for role in REDIS_ROLES:
            ports[f"redis-{role}"] = info["redis"][role]["port"]
        for node in info["api"]:
            ports[node["name"]] = node["port"]
    return ports


# --------------------------------------------------------------------------------------------------- the steps


def check_tools(state: BringUp) -> None:
    missing = PG.missing(CLUSTER_TOOLS)
    if missing:
        raise OpsError(f"{missing[0]} not found: install postgresql-15 (or set POTLUCK_PG_BIN)")
    for tool in ("redis-server", "nginx"):
        if shutil.which(tool) is None:
            raise OpsError(f"{tool} not found on PATH: install it (apt-get install {tool.split('-')[0]})")


def stop_leftovers(state: BringUp) -> None:
    stop_all(state.layout, quiet=True)


def choose_ports(state: BringUp) -> None:
    """After stop_leftovers: the last run's servers held its ports."""
    if not port_is_free(state.lb_port):
        raise OpsError(f"port {state.lb_port} on {HOST} is in use: stop what holds it, or pass --lb-port")
    names = ["primary", *state.replica_names, *(f"redis-{r}" for r in REDIS_ROLES), *state.api_names, *S3_PORTS]
    state.ports = assign_ports(names, previous_ports(state.previous), avoid=[state.lb_port])
    state.secret = shared_secret(state.layout)
    state.started = time.monotonic()


def _is_new(state: BringUp, name: str) -> bool:
    return not (state.layout.pg_data(name) / "PG_VERSION").exists()


def start_primary(state: BringUp) -> None:
    if _is_new(state, "primary"):
        init_primary(state.layout)
    state.pg_pids["primary"] = start_node(state.layout, "primary", state.ports["primary"], archiving(state))
    create_database(state.ports["primary"])


def note_extra_replicas(state: BringUp) -> None:
    extra = [n for n in state.layout.replica_names() if n not in state.replica_names]
    if extra:
        note(
            f"replica data dirs {', '.join(extra)} exist but --replicas {state.replica_count}: "
            "left stopped; their slots keep WAL on the primary (down --purge, or up with more replicas)"
        )


def start_replica(state: BringUp, name: str) -> None:
    if _is_new(state, name):
        create_replica(state.layout, name, state.ports["primary"])
    state.pg_pids[name] = start_node(state.layout, name, state.ports[name], archiving(state))
    follow_primary(name, state.ports[name], state.ports["primary"])


def wait_replication(state: BringUp) -> None:
    wait_streaming(state.layout, state.ports["primary"], state.replica_names)


def start_redis_role(state: BringUp, role: str) -> None:
    state.redis_pids[role] = start_redis(state.layout, role, state.ports[f"redis-{role}"])


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
        args = [*state.potluck, "serve", "--host", HOST, "--port", str(port)]
        proc = start_logged(args, log=log, pid_file=state.layout.api_pid(index), env=state.env)
        node: dict[str, Any] = {"name": name, "url": f"http://{HOST}:{port}", "port": port, "pid": proc.pid}
        node["log"] = str(log)
        state.api_procs.append((node, proc))


def start_background(state: BringUp) -> None:
    for role in BACKGROUND_ROLES:
        log = state.layout.background_log(role)
        proc = start_logged([*state.potluck, role], log=log, pid_file=state.layout.background_pid(role), env=state.env)
        state.background[role] = {"pid": proc.pid, "log": str(log)}
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


def wait_worker(state: BringUp) -> None:
    worker_log = state.layout.background_log("worker")
    wait_until(
        lambda: b" ready." in worker_log.read_bytes(),
        what="celery worker",
        timeout=90,
        proc=state.background_procs["worker"],
        logs=[worker_log, state.layout.background_log("beat")],
    )


def warm_cache(state: BringUp) -> None:
    """The worker's own warm-up ran as it started, before the seed: warm again now that there is data."""
    command = [*state.potluck, "warm-cache"]
    result = run(command, what="potluck warm-cache", env=state.tool_env, timeout=300, check=False)
    if result.returncode != 0:
        note(f"potluck warm-cache failed (exit {result.returncode}); the cache fills as it is read")


def start_load_balancer(state: BringUp) -> None:
    """Last: nginx marks an upstream that refuses a connection as down for fail_timeout, so it must not see the
    API processes before they listen."""
    state.nginx_pid = start_nginx(state.layout, state.lb_port, [n["port"] for n in state.api_nodes])


def _title(text: str) -> Callable[[BringUp], str]:
    return lambda state: text


def _primary_title(state: BringUp) -> str:
    how = "initdb" if _is_new(state, "primary") else "existing data"
    return f"PostgreSQL primary ({how}) on port {state.ports['primary']}"


def _replica_title(state: BringUp, name: str) -> str:
    how = "pg_basebackup" if _is_new(state, name) else "existing data"
    return f"PostgreSQL replica {name} ({how}) on port {state.ports[name]}"


def _redis_title(state: BringUp, role: str) -> str:
    return f"Redis {role} on port {state.ports[f'redis-{role}']}"


def steps(state: BringUp) -> list[Step]:
    """The bring-up, in order."""
    return [
        Step(check_tools),
        Step(stop_leftovers, _title("stop leftovers of an earlier run")),
        Step(choose_ports),
        Step(start_s3, s3_title),
        Step(start_primary, _primary_title),
        Step(note_extra_replicas),
        *(Step(partial(start_replica, name=n), partial(_replica_title, name=n)) for n in state.replica_names),
        Step(wait_replication, _title("replication streaming")),
        Step(configure_archiving, _title("pgBackRest stanza, WAL archiving checked")),
        *(Step(partial(start_redis_role, role=r), partial(_redis_title, role=r)) for r in REDIS_ROLES),
        Step(settle_environment),
        Step(migrate, _title("migrate the database")),
        Step(start_api, _title(f"start {state.api_count} API process(es)")),
        Step(start_background, _title("start the Celery worker and beat")),
        *([Step(seed, _title("seed demo data (if empty)"))] if state.seed_args is not None else []),
        Step(wait_api, _title(f"{state.api_count} API process(es) ready")),
        Step(wait_worker, _title("Celery worker ready")),
        Step(warm_cache, _title("warm the cache")),
        Step(start_load_balancer, _title(f"nginx load balancer on port {state.lb_port}")),
    ]


def bring_up(
    layout: Layout, *, api_count: int, replica_count: int, lb_port: int, seed_args: Sequence[str] | None
) -> dict[str, Any]:
    """Run every step, then write cluster.json; returns what it holds."""
    state = BringUp(layout, api_count, replica_count, lb_port, seed_args, previous=load_cluster_json(layout))
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
    return {
        "name": name,
        "port": port,
        "url": pg_url(port),
        "dsn": pg_dsn(port),
        "pid": state.pg_pids[name],
        "data_dir": str(state.layout.pg_data(name)),
        "log": str(state.layout.pg_log(name)),
    }


def _redis_node(state: BringUp, role: str) -> dict[str, Any]:
    port = state.ports[f"redis-{role}"]
    return {
        "port": port,
        "url": redis_url(port),
        "pid": state.redis_pids[role],
        "conf": str(state.layout.deploy / "redis" / f"{role}.conf"),
        "log": str(state.layout.redis_log(role)),
    }


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
        "postgres": {
            "primary": _pg_node(state, "primary"),
            "replicas": [_pg_node(state, n) for n in state.replica_names],
        },
        "redis": {role: _redis_node(state, role) for role in REDIS_ROLES},
        "backup": state.backup,
        # What a process needs to join the cluster (a worker, a benchmark); the key is in secret_file.
        "env": state.settings(secret=None),
        "secret_file": str(layout.secret_file),
    }
