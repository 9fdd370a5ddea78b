"""Redis under Sentinel on 127.0.0.1, as child processes: per role (cache, coord) a master and a replica, and three
sentinels watching both masters, configured from deploy/redis/sentinel.conf as `potluck cluster up` does.

Usage::

    with SentinelSet() as s:
        settings.redis.sentinels = s.addresses        # ["127.0.0.1:p1", ...]
        old = s.kill_master("cache")                  # SIGKILL, like a crash
        new = s.wait_failover("cache", old)           # Sentinel promoted the replica
        s.restore("cache")                            # the killed one back, as the new master's replica

Which node is master is Sentinel's to say: `master(role)` asks it.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

import redis

from potluck_ops.failures import OpsError
from potluck_ops.layout import find_repo_root
from potluck_ops.ports import HOST, pick_free_ports
from potluck_ops.processes import wait_or_kill, wait_until
from potluck_ops.redis import REDIS_ROLES
from potluck_ops.sentinel import (
    MASTER_NAMES,
    SENTINEL_NAMES,
    current_master_ports,
    start_sentinel,
    wait_sentinels_ready,
)

from ._util import HarnessError, ManagedServer
from .redis import RedisServer

# The coordination instance persists as deploy/redis/coord.conf says; the cache instance does not.
_PERSISTENCE = {"coord": ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"], "cache": []}
# A new replica syncs at once (Redis 7's default waits 5 s for more replicas).
_REPLICATION = ["--repl-diskless-sync-delay", "0"]


class SentinelSet(ManagedServer):
    def __init__(self, base_dir: Path | None = None) -> None:
        self.parent_dir = base_dir
        self.dir: Path | None = None
        self.nodes: dict[str, list[RedisServer]] = {}
        self.ports: list[int] = []
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> list[str]:
        """The sentinels as `host:port`, as `POTLUCK_REDIS__SENTINELS` takes them."""
        return [f"{HOST}:{port}" for port in self.ports]

    def start(self) -> Self:
        if self.dir is not None:
            raise HarnessError("SentinelSet already started")
        self.dir = Path(tempfile.mkdtemp(prefix="potluck-sentinel-", dir=self.parent_dir))
        atexit.register(self.stop)
        try:
            for role in REDIS_ROLES:
                args = [*_PERSISTENCE[role], *_REPLICATION]
                master = RedisServer(self.dir, extra_args=args).start()
                replica = RedisServer(self.dir, extra_args=[*args, "--replicaof", HOST, str(master.port)]).start()
                self.nodes[role] = [master, replica]
            self.ports = pick_free_ports(len(SENTINEL_NAMES))
            template = find_repo_root() / "deploy" / "redis" / "sentinel.conf"
            masters = {role: nodes[0].port for role, nodes in self.nodes.items()}
            for name, port in zip(SENTINEL_NAMES, self.ports, strict=True):
                proc = start_sentinel(template, self.dir / "sentinels", name, port, masters, detach=False)
                self._sentinels.append(proc)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        """Every sentinel sees both masters up, a linked replica of each, and the other sentinels."""
        assert self.dir is not None
        wait_sentinels_ready(self.ports, timeout=timeout, logs=sorted((self.dir / "sentinels").glob("*.log")))

    def stop(self) -> None:
        atexit.unregister(self.stop)
        for proc in self._sentinels:  # first: a master stopped under their watch would start a failover
            proc.terminate()
            wait_or_kill(proc, timeout=5)
        self._sentinels.clear()
        for nodes in self.nodes.values():
            for node in nodes:
                node.stop()
        self.nodes.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ------------------------------------------------------------------ who is who

    def master_port(self, role: str) -> int:
        port = current_master_ports(self.ports).get(role)
        if port is None:
            raise HarnessError(f"no sentinel names a live master for {role} ({MASTER_NAMES[role]})")
        return port

    def master(self, role: str) -> RedisServer:
        port = self.master_port(role)
        return next(node for node in self.nodes[role] if node.port == port)

    def replica(self, role: str) -> RedisServer:
        port = self.master_port(role)
        return next(node for node in self.nodes[role] if node.port != port)

    def flushall(self) -> None:
        """Empty every master (the replicas follow), between tests."""
        for role in REDIS_ROLES:
            with redis.Redis(host=HOST, port=self.master_port(role)) as client:
                client.flushall()
                client.wait(1, 1000)

    # ------------------------------------------------------------------ failures

    def kill_master(self, role: str) -> RedisServer:
        """SIGKILL the role's master; the killed node."""
        node = self.master(role)
        node.kill()
        return node

    def wait_failover(self, role: str, old: RedisServer, timeout: float = 20) -> RedisServer:
        """Until the sentinels name another master for `role` and it answers as one; that node."""
        promoted: list[int] = []

        def failed_over() -> bool:
            port = current_master_ports(self.ports).get(role)
            if port is None or port == old.port:
                return False
            with redis.Redis(host=HOST, port=port, socket_timeout=1) as client:
                if client.role()[0] != b"master":
                    return False
            promoted.append(port)
            return True

        try:
            wait_until(failed_over, what=f"failover of {role}", timeout=timeout, max_delay=0.05)
        except OpsError as exc:
            raise HarnessError(f"no failover of {role} within {timeout:g} s") from exc
        return next(node for node in self.nodes[role] if node.port == promoted[-1])

    def restore(self, role: str) -> None:
        """Start the role's dead nodes again, as replicas of its current master, and wait until Sentinel sees them."""
        master_port = self.master_port(role)
        for node in self.nodes[role]:
            if node.pid is None:
                args = list(node.extra_args)
                if "--replicaof" in args:
                    at = args.index("--replicaof")
                    del args[at : at + 3]
                node.extra_args = [*args, "--replicaof", HOST, str(master_port)]
                node.restart()
        self.wait_ready()
