"""etcd, the store Patroni keeps its leader key and cluster state in (Debian's etcd-server, v3 API).

One member on loopback is enough for one machine; three members tolerate the loss of one (docs/operations.md).
etcd runs as whoever starts it: it does not need the postgres account.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from potluck_ops.failures import OpsError
from potluck_ops.ports import HOST
from potluck_ops.processes import http_status, start_logged, stop_pidfile, wait_until

ETCD = "etcd"


@dataclass(frozen=True)
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        """host:port, as Patroni's etcd3.hosts takes it."""
        return f"{HOST}:{self.client_port}"


def check_etcd() -> None:
    if shutil.which(ETCD) is None:
        raise OpsError("etcd not found on PATH: install it (apt-get install etcd-server)")


def etcd_args(member: EtcdMember) -> list[str]:
    """A single-member cluster (a new one when the data dir is empty, else the one it holds)."""
    return [
        ETCD,
        "--name",
        member.name,
        "--data-dir",
        str(member.data_dir),
        "--listen-client-urls",
        member.client_url,
        "--advertise-client-urls",
        member.client_url,
        "--listen-peer-urls",
        member.peer_url,
        "--initial-advertise-peer-urls",
        member.peer_url,
        "--initial-cluster",
        f"{member.name}={member.peer_url}",
        "--log-level",
        "warn",
    ]


def etcd_healthy_url(client_url: str) -> bool:
    return http_status(f"{client_url}/health", timeout=1.0) == 200


def etcd_healthy(member: EtcdMember) -> bool:
    return etcd_healthy_url(member.client_url)


def start_etcd(
    member: EtcdMember, *, log: Path, pid_file: Path | None, env: Mapping[str, str], detach: bool = True
) -> subprocess.Popen[bytes]:
    """Start etcd and wait until /health answers 200."""
    check_etcd()
    member.data_dir.parent.mkdir(parents=True, exist_ok=True)
    proc = start_logged(etcd_args(member), log=log, pid_file=pid_file, env=env, detach=detach)
    wait_until(
        lambda: etcd_healthy(member), what=f"etcd on port {member.client_port}", timeout=30, proc=proc, logs=[log]
    )
    return proc


def stop_etcd(pid_file: Path) -> bool:
    """SIGTERM (after every Patroni node is down: they keep writing their keys until then)."""
    return stop_pidfile(pid_file, [b"etcd"], timeout=10)
