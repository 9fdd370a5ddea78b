"""The state directory of `potluck cluster`: where everything lives, and the files kept at its top.

``.cluster/`` at the repository root, or ``$POTLUCK_CLUSTER_DIR``::

    cluster.json        endpoints and pids (written by `up`, read by `status`)
    secret.key          the JWT signing key shared by every API process (generated once)
    etcd/               etcd's data dir; etcd.log, etcd.pid (Patroni's store: leader key, members)
    pg/                 owned by postgres: one dir per Patroni node pg1/, pg2/ ... (patroni.yml, data/), their logs
                        (pgN.log) and pid files (pgN.patroni.pid). Older versions kept plain data dirs primary/, r1/
                        here; `up` refuses those (see bringup.refuse_plain_state)
    redis/cache/ coord/ data dirs; redis/<role>.log, redis/<role>.pid
    api/                api-<i>.log, api-<i>.pid
    worker/             worker.log, worker.pid, beat.log, beat.pid (Celery: the outbox relay, view flushes)
    edge/               edge-N.vcl (rendered from deploy/varnish/potluck.vcl.template), pid, log, work dir
    nginx/              nginx.conf (rendered from deploy/nginx/nginx.conf.template), pid, logs, temp files
    data/               POTLUCK_DATA_DIR of the API processes
    pgbackrest/         pgbackrest.conf (rendered from deploy/pgbackrest/), its log, lock and spool dirs
    s3/                 the local S3 server (moto behind nginx TLS): pid files, logs, certificate
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from potluck_ops.failures import OpsError

CLUSTER_DIR_ENV = "POTLUCK_CLUSTER_DIR"
MARKER = ".potluck-cluster"


def find_repo_root() -> Path:
    """The checkout holding deploy/: this module's own (editable install), else the working directory's."""
    here = Path(__file__).resolve()
    for candidate in [*here.parents, Path.cwd().resolve(), *Path.cwd().resolve().parents]:
        if (candidate / "deploy" / "nginx" / "nginx.conf.template").is_file():
            return candidate
    raise OpsError("cannot find the repository (a directory with deploy/nginx/nginx.conf.template)")


class Layout:
    """Where everything lives under the state dir. Pure path arithmetic."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.root = root
        self.repo = repo

    @classmethod
    def discover(cls) -> Layout:
        repo = find_repo_root()
        override = os.environ.get(CLUSTER_DIR_ENV)
        root = Path(override).expanduser().absolute() if override else repo / ".cluster"
        return cls(root, repo)

    @property
    def deploy(self) -> Path:
        return self.repo / "deploy"

    @property
    def cluster_json(self) -> Path:
        return self.root / "cluster.json"

    @property
    def secret_file(self) -> Path:
        return self.root / "secret.key"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def pg(self) -> Path:
        return self.root / "pg"

    def pg_data(self, name: str) -> Path:
        return self.pg / name

    def pg_log(self, name: str) -> Path:
        return self.pg / f"{name}.log"

    def patroni_root(self, name: str) -> Path:
        return self.pg / name

    def patroni_pid(self, name: str) -> Path:
        return self.pg / f"{name}.patroni.pid"

    def patroni_names(self) -> list[str]:
        """Patroni node dirs that exist, in order (pg1, pg2, ...)."""
        found = [p.name for p in self.pg.glob("pg*") if re.fullmatch(r"pg\d+", p.name) and p.is_dir()]
        return sorted(found, key=lambda n: int(n[2:]))

    @property
    def etcd(self) -> Path:
        return self.root / "etcd"

    @property
    def etcd_log(self) -> Path:
        return self.root / "etcd.log"

    @property
    def etcd_pid(self) -> Path:
        return self.root / "etcd.pid"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    def redis_log(self, role: str) -> Path:
        return self.redis / f"{role}.log"

    def redis_pid(self, role: str) -> Path:
        return self.redis / f"{role}.pid"

    @property
    def api(self) -> Path:
        return self.root / "api"

    def api_log(self, index: int) -> Path:
        return self.api / f"api-{index}.log"

    def api_pid(self, index: int) -> Path:
        return self.api / f"api-{index}.pid"

    @property
    def worker(self) -> Path:
        return self.root / "worker"

    def background_log(self, role: str) -> Path:
        """`worker` or `beat`."""
        return self.worker / f"{role}.log"

    def background_pid(self, role: str) -> Path:
        return self.worker / f"{role}.pid"

    def supervisor_pid(self, role: str) -> Path:
        """The supervisor that restarts `role` (potluck_ops/supervise.py); background_pid is its child's."""
        return self.worker / f"{role}.supervisor.pid"

    @property
    def nginx(self) -> Path:
        return self.root / "nginx"

    @property
    def edge(self) -> Path:
        """The edge nodes (Varnish): one VCL, log, pid file and work dir each."""
        return self.root / "edge"

    @property
    def backup_dir(self) -> Path:
        """pgbackrest.conf, its log, lock and spool dirs (owned by postgres)."""
        return self.root / "pgbackrest"

    @property
    def s3(self) -> Path:
        """The local S3 server: pid files, logs, its TLS certificate."""
        return self.root / "s3"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def replica_names(self) -> list[str]:
        """Replica data dirs that exist, in order (r1, r2, ...)."""
        found = [p.name for p in self.pg.glob("r*") if re.fullmatch(r"r\d+", p.name) and (p / "PG_VERSION").exists()]
        return sorted(found, key=lambda n: int(n[1:]))


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One `up`/`down` at a time per state dir."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OpsError(f"another `potluck cluster` command is running on {layout.root}") from None
        yield


def shared_secret(layout: Layout) -> str:
    """The signing key every API process shares: made once, kept with the cluster."""
    if not layout.secret_file.exists():
        fd = os.open(layout.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return layout.secret_file.read_text().strip()


def load_cluster_json(layout: Layout) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(layout.cluster_json.read_text())
    except (OSError, ValueError):
        return None
    return data


def write_cluster_json(layout: Layout, data: Mapping[str, Any]) -> None:
    """Replace cluster.json at once: `status` never reads half a file."""
    tmp = layout.cluster_json.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(layout.cluster_json)
