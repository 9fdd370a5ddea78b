"""A throwaway Patroni cluster on 127.0.0.1: one etcd member and three Patroni-managed PostgreSQL 15 nodes
(one leader, two replicas, one of them the synchronous standby), rendered from deploy/patroni/ like the real one.

    with PatroniCluster() as cluster:
        cluster.primary_url()       # multi-host, target_session_attrs=read-write: whoever leads now
        cluster.kill("pg1")         # SIGKILL of patroni and of its postmaster: a crash
        cluster.restart("pg1")      # comes back as a replica (pg_rewind)

Test-only settings on top of the template: fsync=off (never for real data). full_page_writes stays on: pg_rewind
needs it. Started in about 7 s; a crashed leader is replaced in about ttl (10 s).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from potluck_ops.drills.patroni_faults import postgres_processes
from potluck_ops.etcd import EtcdMember, start_etcd, stop_etcd
from potluck_ops.layout import find_repo_root
from potluck_ops.patroni import (
    SCOPE,
    TEMPLATE,
    PatroniNode,
    fetch_cluster,
    multi_host_url,
    start_patroni,
    summarize,
    wait_cluster,
    write_config,
)
from potluck_ops.ports import HOST, pick_free_ports
from potluck_ops.postgres import DB_NAME, PG_USER, chown_to_postgres, create_database
from potluck_ops.processes import is_ours, pid_alive, read_pid, wait_until

from ._util import HarnessError, ManagedServer, default_parent_dir

NODE_NAMES = ("pg1", "pg2", "pg3")
_DIR_PREFIX = "potluck-patroni-"
_OWNER_FILE = "harness.pid"


def _reap_stale_clusters(parent: Path | None, min_age: float = 60) -> None:
    """Stop and delete clusters whose test process died without stop() (SIGKILL): their Patroni nodes, their
    postmasters and etcd would otherwise run on."""
    for path in Path(parent or tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"):
        try:
            if time.time() - path.stat().st_mtime < min_age or pid_alive(int((path / _OWNER_FILE).read_text())):
                continue
        except (OSError, ValueError):
            continue  # not ours to judge
        pids = [read_pid(f) for f in [*path.glob("pg*/patroni.pid"), *path.glob("pg*/data/postmaster.pid")]]
        pids.append(read_pid(path / "etcd.pid"))
        for pid in pids:
            if pid is not None and pid_alive(pid) and is_ours(pid, os.fsencode(path)):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


_TEST_PARAMETERS = {"fsync": "off", "wal_writer_delay": "10ms", "wal_init_zero": "off"}


class PatroniCluster(ManagedServer):
    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: keep fsync on (benchmarks of commit latency); tests leave it off."""
        self.parameters = {} if durable else _TEST_PARAMETERS
        self.dir: Path | None = None
        self.etcd: EtcdMember | None = None
        self.nodes: dict[str, PatroniNode] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._etcd_proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if shutil.which("patroni") is None or shutil.which("etcd") is None:
            raise HarnessError("patroni and etcd not found: apt-get install patroni etcd-server")
        parent = default_parent_dir()
        _reap_stale_clusters(parent)
        self.dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=parent))
        (self.dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        chown_to_postgres(self.dir)
        atexit.register(self.stop)
        try:
            ports = pick_free_ports(2 + 2 * len(NODE_NAMES))
            self.etcd = EtcdMember("e1", self.dir / "etcd", ports[0], ports[1])
            self._etcd_proc = start_etcd(
                self.etcd, log=self.dir / "etcd.log", pid_file=self.dir / "etcd.pid", env=os.environ
            )
            template = find_repo_root() / "deploy" / TEMPLATE
            for i, name in enumerate(NODE_NAMES):
                node = PatroniNode(name, self.dir / name, ports[2 + 2 * i], ports[3 + 2 * i])
                write_config(template, node, etcd_hosts=[self.etcd.endpoint], node_parameters=self.parameters)
                self.nodes[name] = node
            for name in NODE_NAMES:
                self._start_node(name)
            summary = self.wait_ready()
            leader = next(m for m in summary["members"] if m["role"] == "leader")
            create_database(leader["port"])
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, name: str) -> None:
        node = self.nodes[name]
        log = self.log(name)
        self._procs[name] = start_patroni(node, log=log, pid_file=node.root / "patroni.pid", env=os.environ)

    def wait_ready(self, replicas: int = 2, timeout: float = 120) -> dict[str, Any]:
        """A running leader, `replicas` streaming replicas and a synchronous standby; the summary."""
        logs = [self.log(n) for n in self.nodes]
        return wait_cluster(self.api_urls(), replicas=replicas, timeout=timeout, logs=logs)

    def stop(self) -> None:
        """SIGTERM every Patroni (each stops its PostgreSQL), then etcd; delete the dir. Idempotent."""
        atexit.unregister(self.stop)
        if self.dir is None:
            return
        for name in list(self._procs):
            self._procs[name].send_signal(signal.SIGTERM)
        for name, proc in list(self._procs.items()):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(name)
        for node in self.nodes.values():
            self._kill_postmaster(node)
        stop_etcd(self.dir / "etcd.pid")
        if self._etcd_proc is not None:
            self._etcd_proc.wait(timeout=10)
            self._etcd_proc = None
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    # ------------------------------------------------------------------ addresses and state

    def log(self, name: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{name}.log"

    def api_urls(self) -> list[str]:
        return [node.api_url for node in self.nodes.values()]

    def primary_url(self) -> str:
        """SQLAlchemy's multi-host form: asyncpg tries each host and keeps the one that accepts writes."""
        return multi_host_url([node.pg_port for node in self.nodes.values()])

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{PG_USER}@{HOST}:{self.nodes[name].pg_port}/{DB_NAME}"

    def summary(self) -> dict[str, Any]:
        """leader, timeline, sync_standby, members: Patroni's /cluster, condensed."""
        return summarize(fetch_cluster(self.api_urls()))

    def set_synchronous_mode(self, enabled: bool, timeout: float = 30) -> None:
        """Switch synchronous_mode in the DCS (PATCH /config) and wait until the leader applies it."""
        body = json.dumps({"synchronous_mode": enabled}).encode()
        request = urllib.request.Request(f"{self.api_urls()[0]}/config", data=body, method="PATCH")
        request.add_header("Content-Type", "application/json")
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5).close()

        def applied() -> bool:
            summary = self.summary()
            return (summary["sync_standby"] is not None) == enabled

        wait_until(applied, what=f"synchronous_mode {enabled} applied", timeout=timeout, max_delay=0.5)

    def leader(self) -> str:
        leader = self.summary()["leader"]
        if leader is None:
            raise HarnessError("no leader")
        name: str = leader
        return name

    # ------------------------------------------------------------------ faults

    def _kill_postmaster(self, node: PatroniNode) -> None:
        pid = node.postmaster_pid()
        if pid is not None and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), what=f"postmaster {pid} gone", timeout=10)

    def kill(self, name: str) -> None:
        """A crash: SIGKILL of Patroni and of its postmaster (Patroni alone would leave a writable primary)."""
        node = self.nodes[name]
        postmaster = node.postmaster_pid()
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.kill()
            proc.wait()
        if postmaster is not None and pid_alive(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
            wait_until(lambda: not pid_alive(postmaster), what=f"postmaster {postmaster} gone", timeout=10)
        # An orphan that nobody reaps stays a zombie, which Patroni would take for a running postmaster.
        (node.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def switchover(self, candidate: str) -> None:
        """A planned switchover to `candidate`, as an operator runs it (`patronictl switchover --force`)."""
        leader = self.leader()
        args = ["patronictl", "-c", str(self.nodes[leader].config), "switchover", "--force"]
        args += ["--leader", leader, "--candidate", candidate, SCOPE]
        subprocess.run(args, check=True, capture_output=True, timeout=90)

    def processes(self, name: str) -> list[int]:
        """Patroni and every process of its PostgreSQL: what a network partition silences."""
        node = self.nodes[name]
        postmaster, patroni = node.postmaster_pid(), read_pid(node.root / "patroni.pid")
        if postmaster is None or patroni is None:
            raise HarnessError(f"{name} is not running")
        return [patroni, *postgres_processes(postmaster)]

    def restart(self, name: str) -> None:
        """Start a killed node's Patroni again: it rejoins as a replica (pg_rewind if it had diverged)."""
        self._start_node(name)
