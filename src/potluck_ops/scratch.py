"""A throwaway PostgreSQL primary archiving to its own local S3 server through pgBackRest: what the restore drill
destroys and rebuilds, and what the backup tests run against. Nothing here touches `potluck cluster`'s state.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from potluck_ops.failures import OpsError
from potluck_ops.layout import find_repo_root
from potluck_ops.pgbackrest import ARCHIVE_TIMEOUT_SECONDS, PgBackRest, PgNode, Repo, archive_settings, write_conf
from potluck_ops.ports import HOST, pick_free_ports
from potluck_ops.postgres import DB_NAME, PG, chown_to_postgres, create_database, node_running
from potluck_ops.processes import read_pid
from potluck_ops.s3 import LocalS3, S3Endpoint, ensure_bucket, start_local_s3, stop_local_s3


class BackupLab:
    """A primary in `root/primary` on a free port, its repository in a bucket of a local S3 server (or a POSIX
    dir with `s3=False`), a stanza created and archiving checked. A context manager: leaving it stops all."""

    def __init__(self, root: Path | None = None, *, archive_timeout: int = ARCHIVE_TIMEOUT_SECONDS, s3: bool = True):
        self.root = root or Path(tempfile.mkdtemp(prefix="potluck-lab-"))
        self.deploy = find_repo_root() / "deploy"
        self.archive_timeout = archive_timeout
        self.use_s3 = s3
        self.endpoint: S3Endpoint | None = None
        self.local_s3: LocalS3 | None = None
        self.port = 0
        self.backrest = PgBackRest(self.root / "pgbackrest" / "pgbackrest.conf")

    @property
    def data_dir(self) -> Path:
        return self.root / "primary"

    @property
    def log(self) -> Path:
        return self.root / "primary.log"

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        chown_to_postgres(self.root)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        http_port, tls_port, self.port = pick_free_ports(3)
        if self.use_s3:
            self.local_s3 = start_local_s3(self.root / "s3", self.deploy, http_port=http_port, tls_port=tls_port)
            self.endpoint = self.local_s3.endpoint
            ensure_bucket(self.endpoint, "potluck-backups")
            repo = Repo("/lab", s3=self.endpoint)
        else:
            repo = Repo(str(self.root / "repo"))
        node = PgNode(self.data_dir, self.port, self.root)
        conf = write_conf(self.deploy, self.root / "pgbackrest", repo, [node])
        PG.initdb(self.data_dir)
        lines = [f"port = {self.port}", f"listen_addresses = '{HOST}'", f"unix_socket_directories = '{self.root}'"]
        lines += ["cluster_name = 'lab'", "wal_level = replica", "timezone = 'UTC'", "log_timezone = 'UTC'"]
        lines.append(archive_settings(conf, timeout=self.archive_timeout))
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# --- potluck_ops.scratch.BackupLab ---\n" + "\n".join(lines) + "\n")
        self.start_primary()
        create_database(self.port)
        self.backrest.stanza_create()
        self.backrest.check()

    def start_primary(self) -> None:
        start: list[str | Path] = ["-D", self.data_dir, "-l", self.log, "-w", "-t", "120", "start"]
        PG.run("pg_ctl", *start, what=f"start the lab primary on port {self.port}", timeout=180, logs=[self.log])

    @property
    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def psql(self, sql: str, *, db: str = DB_NAME, timeout: float = 600) -> str:
        return PG.psql(self.port, sql, db=db, what="psql on the lab primary", timeout=timeout).strip()

    def destroy_primary(self) -> None:
        """The disaster: the postmaster dies at once (no shutdown checkpoint, no last WAL archived), data deleted."""
        if node_running(self.data_dir):
            stop: list[str | Path] = ["-D", self.data_dir, "-m", "immediate", "-w", "stop"]
            PG.run("pg_ctl", *stop, what="kill the lab primary", timeout=60)
        shutil.rmtree(self.data_dir)

    def stop(self) -> None:
        for data_dir in [self.data_dir, *self.root.glob("restored*")]:
            if data_dir.is_dir() and node_running(data_dir):
                stop: list[str | Path] = ["-D", data_dir, "-m", "immediate", "-w", "stop"]
                PG.run("pg_ctl", *stop, what=f"stop {data_dir.name}", timeout=60, check=False)
        stop_local_s3(self.root / "s3")
        if self.local_s3 is not None:
            self.local_s3.reap()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def require_tools() -> None:
    """Fail with what to install when pgbackrest or the PostgreSQL binaries are missing."""
    if shutil.which("pgbackrest") is None:
        raise OpsError("pgbackrest not found on PATH: apt-get install pgbackrest")
    missing = PG.missing(["initdb", "pg_ctl", "psql"])
    if missing:
        raise OpsError(f"{missing[0]} not found: install postgresql-15 (or set POTLUCK_PG_BIN)")
