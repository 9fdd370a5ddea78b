"""PostgreSQL under Patroni: each node's config rendered from deploy/patroni/patroni.yml.template, Patroni
started as the postgres user, and the cluster's state read back from Patroni's REST API (`GET /cluster`).

Patroni runs initdb (first leader) or pg_basebackup (replicas) itself, promotes a replica when the leader's key
in etcd expires, and rewinds a returning old leader (use_pg_rewind). It is Debian's package, on the system
python3: called directly, never from our virtualenv.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from potluck_ops.failures import OpsError
from potluck_ops.ports import HOST
from potluck_ops.postgres import (
    DB_NAME,
    MAX_SOCKET_PATH,
    PG_BIN,
    PG_USER,
    chown_to_postgres,
    postgres_account,
    postgres_env,
)
from potluck_ops.processes import (
    http_json,
    is_ours,
    pid_alive,
    read_pid,
    start_logged,
    stop_pidfile,
    terminate,
    wait_exit,
    wait_until,
)

PATRONI = "patroni"
SCOPE = "recipes"
TEMPLATE = Path("patroni") / "patroni.yml.template"
# Every node's PostgreSQL settings that Patroni keeps in the DCS (the same on every node). wal_log_hints lets
# pg_rewind bring a failed leader back as a replica.
DCS_PARAMETERS: dict[str, str | int] = {
    "wal_level": "replica",
    "hot_standby": "on",
    "wal_log_hints": "on",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "max_connections": 200,
    "timezone": "UTC",
}
# Every node of `potluck cluster` shares one machine (with Redis and the API): the base file sizes memory and WAL
# for a dedicated host (shared_buffers = 25% of RAM, ...), which three nodes would each take.
SHARED_HOST_PARAMETERS: dict[str, str | int] = {
    "shared_buffers": "128MB",
    "effective_cache_size": "1GB",
    "maintenance_work_mem": "64MB",
    "huge_pages": "off",
    "max_wal_size": "512MB",
    "min_wal_size": "32MB",
    "wal_keep_size": 0,
    "max_slot_wal_keep_size": "2GB",
}
BASE_CONF = "potluck.base.conf"
# Roles in GET /cluster: a replica that is the synchronous standby says so.
REPLICA_ROLES = ("replica", "sync_standby")
RUNNING_STATES = ("running", "streaming")


@dataclass(frozen=True)
class PatroniNode:
    name: str
    root: Path  # owned by postgres: patroni.yml, the data dir, the pgpass file
    pg_port: int
    api_port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "patroni.yml"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def postmaster_pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")


def check_patroni() -> None:
    if shutil.which(PATRONI) is None:
        raise OpsError("patroni not found on PATH: install it (apt-get install patroni etcd-server)")


def render_config(
    template: str,
    node: PatroniNode,
    *,
    etcd_hosts: Sequence[str],
    dcs_parameters: Mapping[str, str | int] = DCS_PARAMETERS,
    node_parameters: Mapping[str, str | int] | None = None,
    custom_conf: Path | None = None,
) -> str:
    """The node's patroni.yml. Mappings are written as JSON, which YAML reads as flow mappings. `custom_conf`: a
    postgresql.conf to use as the base of the node's (readable by postgres)."""
    socket = node.root if len(str(node.root / ".s.PGSQL.65535")) <= MAX_SOCKET_PATH else ""
    own = {"unix_socket_directories": str(socket), **(node_parameters or {})}
    return Template(template).substitute(
        scope=SCOPE,
        name=node.name,
        host=HOST,
        api_port=node.api_port,
        pg_port=node.pg_port,
        etcd_hosts=",".join(etcd_hosts),
        dcs_parameters=json.dumps(dict(dcs_parameters)),
        node_parameters=json.dumps(own),
        data_dir=node.data_dir,
        bin_dir=PG_BIN,
        pgpass=node.root / "pgpass",
        custom_conf=f"custom_conf: {json.dumps(str(custom_conf))}" if custom_conf else "# no custom_conf",
    )


def write_config(template_file: Path, node: PatroniNode, *, base_conf: Path | None = None, **kwargs: Any) -> None:
    """Render the node's patroni.yml into its dir; `base_conf` is copied beside it and used as custom_conf."""
    node.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    chown_to_postgres(node.root)
    if base_conf is not None:
        copy = node.root / BASE_CONF
        copy.write_text(f"# Copied from {base_conf} at every start: edit that file.\n{base_conf.read_text()}")
        chown_to_postgres(copy)
        kwargs["custom_conf"] = copy
    node.config.write_text(render_config(template_file.read_text(), node, **kwargs))
    chown_to_postgres(node.config)


def start_patroni(
    node: PatroniNode, *, log: Path, pid_file: Path | None, env: Mapping[str, str] | None = None, detach: bool = True
) -> subprocess.Popen[bytes]:
    """Start Patroni as the postgres user. Popen switches the account itself and execs patroni in place, so the
    pid is patroni's own (runuser would put its own pid there); Patroni starts and stops its postmaster."""
    check_patroni()
    return start_logged(
        [PATRONI, node.config],
        log=log,
        pid_file=pid_file,
        env=postgres_env(env),
        account=postgres_account(),
        detach=detach,
    )


def stop_patroni(pid_file: Path, timeout: float = 30) -> bool:
    """SIGTERM: Patroni stops its PostgreSQL (fast shutdown) and releases the leader key, then exits."""
    return stop_pidfile(pid_file, [b"patroni"], timeout=timeout)


def stop_patroni_nodes(pid_files: Sequence[Path], timeout: float = 30) -> list[Path]:
    """SIGTERM every node at once (stopped one by one, each replica would in turn be promoted), wait for all;
    SIGKILL what is still running after `timeout`. The pid files of the nodes that were running."""
    running: list[tuple[Path, int]] = []
    for pid_file in pid_files:
        pid = read_pid(pid_file)
        if pid is not None and pid_alive(pid) and is_ours(pid, b"patroni"):
            os.kill(pid, signal.SIGTERM)
            running.append((pid_file, pid))
        pid_file.unlink(missing_ok=True)
    for _, pid in running:
        if not wait_exit(pid, timeout):
            terminate(pid, timeout=1)
    return [pid_file for pid_file, _ in running]


def multi_host_url(ports: Sequence[int]) -> str:
    """SQLAlchemy's multi-host form for asyncpg: every node, and only one that accepts writes will do."""
    hosts = "&".join(f"host={HOST}:{port}" for port in ports)
    return f"postgresql+asyncpg://{PG_USER}@/{DB_NAME}?{hosts}&target_session_attrs=read-write"


def fetch_cluster(api_urls: Sequence[str], timeout: float = 1.0) -> dict[str, Any] | None:
    """GET /cluster from the first member that answers (any member reports the whole cluster)."""
    for url in api_urls:
        body = http_json(f"{url}/cluster", timeout=timeout)
        if isinstance(body, dict) and "members" in body:
            return body
    return None


def summarize(cluster: Mapping[str, Any] | None) -> dict[str, Any]:
    """leader, timeline, sync_standby and members (name, role, state, host, port, timeline, lag) of /cluster."""
    if cluster is None:
        return {"leader": None, "timeline": None, "sync_standby": None, "members": []}
    members = [
        {k: m.get(k) for k in ("name", "role", "state", "host", "port", "timeline", "lag", "api_url")}
        for m in cluster.get("members", [])
    ]
    leader = next((m for m in members if m["role"] == "leader"), None)
    sync = next((m["name"] for m in members if m["role"] == "sync_standby"), None)
    return {
        "leader": leader["name"] if leader else None,
        "timeline": leader["timeline"] if leader else None,
        "sync_standby": sync,
        "members": members,
    }


def cluster_ready(summary: Mapping[str, Any], replicas: int) -> bool:
    """A running leader, `replicas` running replicas, and (with any replica) a synchronous standby."""
    members = summary["members"]
    leader_up = any(m["role"] == "leader" and m["state"] == "running" for m in members)
    streaming = [m for m in members if m["role"] in REPLICA_ROLES and m["state"] in RUNNING_STATES]
    return leader_up and len(streaming) >= replicas and (replicas == 0 or summary["sync_standby"] is not None)


def wait_cluster(
    api_urls: Sequence[str], *, replicas: int, timeout: float = 90, logs: Sequence[Path] = ()
) -> dict[str, Any]:
    """Wait for cluster_ready; its summary."""
    seen: dict[str, Any] = {}

    def ready() -> bool:
        seen.update(summarize(fetch_cluster(api_urls)))
        return cluster_ready(seen, replicas)

    wait_until(ready, what=f"Patroni: a leader and {replicas} replica(s)", timeout=timeout, logs=logs, max_delay=0.5)
    return seen


def leader_port(summary: Mapping[str, Any]) -> int:
    leader = next((m for m in summary["members"] if m["role"] == "leader"), None)
    if leader is None:
        raise OpsError("Patroni has no leader")
    port: int = leader["port"]
    return port
