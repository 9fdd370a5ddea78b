"""The backup steps of `potluck cluster up`: the local S3 server with the backup bucket and pgbackrest.conf
(before the Patroni nodes start: their archive_command names that config), then the stanza and an end-to-end
check of WAL archiving (once Patroni has a leader and its replicas, which pgBackRest backs up from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from potluck_ops.app import potluck_command
from potluck_ops.failures import OpsError
from potluck_ops.pgbackrest import BUCKET, STANZA, PgBackRest, PgNode, Repo, archive_parameters, write_conf
from potluck_ops.postgres import MAX_SOCKET_PATH
from potluck_ops.s3 import ensure_bucket, running_local_s3, start_local_s3, stop_local_s3

if TYPE_CHECKING:
    from potluck_ops.bringup import BringUp

# The local S3 server's two ports: moto's plain HTTP, and nginx's TLS in front of it (what clients use).
S3_PORTS = ("s3", "s3-tls")


def start_s3(state: BringUp) -> None:
    layout = state.layout
    nodes = [state.node(name) for name in state.node_names]
    if any(len(str(node.root / ".s.PGSQL.65535")) > MAX_SOCKET_PATH for node in nodes):
        raise OpsError(f"the state dir {layout.root} is too long for a unix socket, which pgBackRest needs")
    # Kept across `down`/`up` (moto's objects live in memory): reuse a running one, so the backups survive.
    endpoint = running_local_s3(layout.s3)
    if endpoint is None:
        stop_local_s3(layout.s3)  # half of one (moto without its proxy, or the other way round)
        ports = {"http_port": state.ports["s3"], "tls_port": state.ports["s3-tls"]}
        endpoint = start_local_s3(layout.s3, layout.deploy, **ports).endpoint
    ensure_bucket(endpoint, BUCKET)
    # Every Patroni node (each is the primary some day); pgBackRest finds the leader and copies from a standby.
    pg_nodes = [PgNode(node.data_dir, node.pg_port, node.root) for node in nodes]
    conf = write_conf(layout.deploy, layout.backup_dir, Repo("/potluck", s3=endpoint), pg_nodes)
    state.backup = {
        "s3": endpoint.as_json(),
        "repository": f"s3://{BUCKET}/potluck",
        "pgbackrest_conf": str(conf),
        "stanza": STANZA,
    }


def s3_title(state: BringUp) -> str:
    return "local S3 for backups (moto behind nginx TLS; a running one is reused)"


def archiving(state: BringUp, data_dir: Path) -> dict[str, str]:
    """The archive settings of the node at `data_dir` (only a primary archives; a promoted replica starts to)."""
    if not state.backup:
        return {}
    return archive_parameters(Path(state.backup["pgbackrest_conf"]), data_dir=data_dir)


def configure_archiving(state: BringUp) -> None:
    backrest = PgBackRest(Path(state.backup["pgbackrest_conf"]))
    backrest.stanza_create()
    backrest.check()


def backup_env(backup: dict[str, Any]) -> dict[str, str]:
    """The settings that let the worker's scheduled backup jobs run pgBackRest on this stanza."""
    if not backup:
        return {}
    return {
        "POTLUCK_BACKUP__ENABLED": "true",
        "POTLUCK_BACKUP__PGBACKREST_CONFIG": backup["pgbackrest_conf"],
        "POTLUCK_BACKUP__STANZA": backup["stanza"],
        "POTLUCK_BACKUP__REDIS_COMMAND": json.dumps([*potluck_command(), "backup", "redis"]),
    }
