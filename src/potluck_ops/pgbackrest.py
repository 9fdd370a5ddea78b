"""pgBackRest: its configuration (rendered from deploy/pgbackrest/pgbackrest.conf.template), the archive settings
of the PostgreSQL nodes, and its commands, run as the postgres user when we are root (it reads the data dirs).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from potluck_ops.failures import OpsError
from potluck_ops.nginx import render_template
from potluck_ops.postgres import chown_to_postgres, postgres_account, postgres_env
from potluck_ops.processes import run
from potluck_ops.s3 import S3Endpoint

STANZA = "main"
BUCKET = "potluck-backups"
RETENTION_FULL = 7
# The RPO bound when writes are rare: a WAL segment is archived at least this often when anything was written.
ARCHIVE_TIMEOUT_SECONDS = 60
BACKUP_TYPES = ("full", "diff", "incr")


@dataclass(frozen=True)
class PgNode:
    """A PostgreSQL data dir pgBackRest reads. With several, pgBackRest finds which one is the primary (under
    Patroni that changes) and copies the files from a standby."""

    path: Path
    port: int
    socket_dir: Path


@dataclass(frozen=True)
class Repo:
    """Where backups live: a bucket (`s3` set) or a POSIX directory (`path` on disk)."""

    path: str
    s3: S3Endpoint | None = None
    bucket: str = BUCKET

    def options(self) -> list[str]:
        lines = [f"repo1-path={self.path}"]
        if self.s3 is None:
            return ["repo1-type=posix", *lines]
        s3 = self.s3
        lines += ["repo1-type=s3", f"repo1-s3-bucket={self.bucket}", f"repo1-s3-region={s3.region}"]
        lines += [f"repo1-s3-endpoint={s3.host}", f"repo1-storage-port={s3.port}", "repo1-s3-uri-style=path"]
        lines += [f"repo1-s3-key={s3.key}", f"repo1-s3-key-secret={s3.secret}"]
        if not s3.verify_tls:
            lines.append("repo1-storage-verify-tls=n")
        return lines

    def describe(self) -> str:
        if self.s3 is None:
            return f"posix:{self.path}"
        return f"s3://{self.bucket}{self.path} at {self.s3.url}"


def render_conf(template: str, *, backup_dir: Path, repo: Repo, stanza: str, nodes: Sequence[PgNode]) -> str:
    """pgbackrest.conf: the repository, then pg1..pgN (every node; pgBackRest asks each whether it is in recovery)."""
    if not nodes:
        raise OpsError("pgBackRest needs at least the primary's data dir")
    pg_lines: list[str] = []
    for index, node in enumerate(nodes, start=1):
        pg_lines += [f"pg{index}-path={node.path}", f"pg{index}-port={node.port}"]
        pg_lines.append(f"pg{index}-socket-path={node.socket_dir}")
    values = {
        "repo_options": "\n".join(repo.options()),
        "retention_full": str(RETENTION_FULL),
        "backup_dir": str(backup_dir),
        "backup_standby": "y" if len(nodes) > 1 else "n",
        "stanza": stanza,
        "pg_options": "\n".join(pg_lines),
    }
    return render_template(template, values)


def write_conf(deploy: Path, backup_dir: Path, repo: Repo, nodes: Sequence[PgNode], *, stanza: str = STANZA) -> Path:
    """Render the config into backup_dir/pgbackrest.conf, with its log, lock and spool dirs (postgres owns them)."""
    template = (deploy / "pgbackrest" / "pgbackrest.conf.template").read_text()
    backup_dir.mkdir(parents=True, exist_ok=True)
    chown_to_postgres(backup_dir)
    for sub in ("log", "lock", "spool"):
        # pgBackRest does not create its log dir: it only warns and logs nothing.
        (backup_dir / sub).mkdir(exist_ok=True)
        chown_to_postgres(backup_dir / sub)
    if repo.s3 is None:
        Path(repo.path).mkdir(parents=True, exist_ok=True)
        chown_to_postgres(Path(repo.path))
    conf = backup_dir / "pgbackrest.conf"
    conf.write_text(render_conf(template, backup_dir=backup_dir, repo=repo, stanza=stanza, nodes=nodes))
    conf.chmod(0o640)  # it may hold S3 credentials
    chown_to_postgres(conf)
    return conf


def archive_parameters(
    conf: Path, *, stanza: str = STANZA, timeout: int = ARCHIVE_TIMEOUT_SECONDS, data_dir: Path | None = None
) -> dict[str, str]:
    """The settings that archive every WAL segment to the repository (standbys archive nothing); archive_timeout
    bounds the RPO when writes are rare.

    `data_dir`: this node's own. archive-push refuses to run unless the server's data dir is the config's pg1-path,
    and the config lists every node (pg1..pgN); where several nodes share a host (the local topology), each names
    its own data dir as pg1 on its command line, so whichever node leads can archive."""
    own = f" --pg1-path={data_dir}" if data_dir is not None else ""
    return {
        "archive_mode": "on",
        "archive_timeout": str(timeout),
        "archive_command": f"pgbackrest --config={conf} --stanza={stanza}{own} archive-push %p",
    }


def archive_settings(conf: Path, *, stanza: str = STANZA, timeout: int = ARCHIVE_TIMEOUT_SECONDS) -> str:
    """The same as postgresql.conf lines (a plain node that Patroni does not manage: the drills' scratch primary)."""
    lines = ["# Continuous WAL archiving to pgBackRest (potluck_ops/pgbackrest.py); archive_timeout bounds the RPO."]
    for name, value in archive_parameters(conf, stanza=stanza, timeout=timeout).items():
        lines.append(f"{name} = {value}" if name == "archive_timeout" else f"{name} = '{value}'")
    return "\n".join([*lines, ""])


class PgBackRest:
    """pgBackRest commands on one stanza of one config."""

    def __init__(self, conf: Path, stanza: str = STANZA) -> None:
        self.conf = conf
        self.stanza = stanza

    def run(self, *args: str, what: str, timeout: float = 3600, check: bool = True) -> CompletedProcess[str]:
        if shutil.which("pgbackrest") is None:
            raise OpsError("pgbackrest not found on PATH: apt-get install pgbackrest")
        if not self.conf.is_file():
            raise OpsError(
                f"no pgBackRest config at {self.conf}: start the cluster (`potluck cluster up`) or pass --config"
            )
        command = ["pgbackrest", f"--config={self.conf}", f"--stanza={self.stanza}", *args]
        env = postgres_env()
        return run(command, what=what, account=postgres_account(), env=env, timeout=timeout, check=check)

    def stanza_create(self) -> None:
        self.run("stanza-create", what="pgbackrest stanza-create", timeout=300)

    def check(self) -> None:
        """Checks the archive_command works end to end (it switches and archives a WAL segment)."""
        self.run("check", what="pgbackrest check", timeout=300)

    def backup(self, kind: str) -> float:
        """A backup of `kind` (full, diff, incr); its duration in seconds."""
        if kind not in BACKUP_TYPES:
            raise OpsError(f"unknown backup type {kind!r}: one of {', '.join(BACKUP_TYPES)}")
        began = time.monotonic()
        self.run(f"--type={kind}", "backup", what=f"pgbackrest backup --type={kind}")
        return time.monotonic() - began

    def info(self) -> dict[str, Any]:
        """`pgbackrest info --output=json` of this stanza ({} when it has none)."""
        out = self.run("--output=json", "info", what="pgbackrest info", timeout=300).stdout
        stanzas: list[dict[str, Any]] = json.loads(out or "[]")
        return stanzas[0] if stanzas else {}

    def verify(self) -> CompletedProcess[str]:
        """pgBackRest verify: every file of every backup and the WAL against their checksums (not raised on)."""
        return self.run("--log-level-console=info", "verify", what="pgbackrest verify", check=False)

    def restore(self, target: Path, *, to: str | None = None, label: str | None = None) -> float:
        """Restore into the empty or missing dir `target`: the end of the archive, the time `to`, or backup
        `label` alone; seconds."""
        args = [f"--pg1-path={target}"]
        if to is not None:
            args += ["--type=time", f"--target={to}", "--target-action=promote"]
        elif label is not None:
            # Only that backup's consistent point: checks the backup itself, not the WAL after it.
            args += [f"--set={label}", "--type=immediate", "--target-action=promote"]
        target.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        self.run(*args, "restore", what=f"pgbackrest restore into {target}")
        return time.monotonic() - began
