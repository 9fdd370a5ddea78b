"""PostgreSQL 15: its binaries (as the postgres user when we are root: they refuse root), a primary made by
initdb, streaming replicas made by pg_basebackup (the test harness's plain clusters); for `potluck cluster`,
whose nodes Patroni runs (potluck_ops.patroni): the application's database, probes, and stopping the plain
nodes of a state dir from before Patroni.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Unpack

from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout
from potluck_ops.ports import HOST
from potluck_ops.processes import RunOptions, pid_alive, read_pid, run

PG_BIN = Path(os.environ.get("POTLUCK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DB_NAME = "potluck"
# trust on loopback: clusters bound to 127.0.0.1 only. --no-sync: nothing here is precious, and syncing every
# file initdb writes costs seconds (checkpoints still flush the data pages later).
INITDB_ARGS = ("-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
# Unix socket paths are limited to 107 bytes (sun_path); longer state dirs get TCP only.
MAX_SOCKET_PATH = 100


def postgres_account() -> pwd.struct_passwd | None:
    """The postgres account when we are root (PostgreSQL refuses to run as root), else None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        raise OpsError(f"running as root, but there is no {PG_USER!r} user: install postgresql-15") from None


def chown_to_postgres(path: Path) -> None:
    """Hand `path` to the account the servers run as (nothing to do unless we are root)."""
    account = postgres_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def postgres_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (ours by default) without libpq's PG* variables, which would redirect the tools (PGHOST, PGPORT, ...)."""
    return {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("PG")}


def replica_conninfo(name: str, primary_port: int) -> str:
    """primary_conninfo of replica `name`; application_name is its name in pg_stat_replication."""
    return f"host={HOST} port={primary_port} user={PG_USER} application_name={name}"


def postmaster_ready(data_dir: Path, pid: int) -> bool:
    """Whether postmaster `pid` of `data_dir` accepts connections (what `pg_ctl -w start` waits for)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    # Line 8 of postmaster.pid is the postmaster status: "ready" (primary) or "standby".
    return len(lines) >= 8 and lines[0] == str(pid) and lines[7].strip() in ("ready", "standby")


def pg_url(port: int) -> str:
    """The SQLAlchemy URL the API uses."""
    return f"postgresql+asyncpg://{PG_USER}@{HOST}:{port}/{DB_NAME}"


def pg_dsn(port: int) -> str:
    """The libpq URL, for psql."""
    return f"postgresql://{PG_USER}@{HOST}:{port}/{DB_NAME}"


@dataclass(frozen=True)
class PgTools:
    """The PostgreSQL binaries in `bin_dir`, run as the postgres user when we are root."""

    bin_dir: Path = PG_BIN

    def path(self, tool: str) -> Path:
        return self.bin_dir / tool

    def missing(self, tools: Iterable[str]) -> list[Path]:
        return [self.path(tool) for tool in tools if not self.path(tool).exists()]

    def run(self, tool: str, *args: str | Path, what: str, **options: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run `tool` to completion; raise OpsError with its output on failure (unless `check` is false)."""
        account = postgres_account()
        try:
            return run([self.path(tool), *args], what=what, account=account, env=postgres_env(), **options)
        except OpsError as exc:
            if account is not None and "Permission denied" in str(exc):
                raise OpsError(f"{exc}\n(is every parent dir traversable by the {PG_USER} user?)") from None
            raise

    def psql(
        self,
        port: int,
        *statements: str,
        host: str | Path = HOST,
        db: str = "postgres",
        what: str = "psql",
        timeout: float = 60,
        logs: Iterable[Path] = (),
    ) -> str:
        """Run each statement as its own `-c` (its own transaction, one session); unaligned tuples on stdout."""
        args: list[str | Path] = ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
        args += ["-h", host, "-p", str(port), "-U", PG_USER, "-d", db]
        for statement in statements:
            args += ["-c", statement]
        return self.run("psql", *args, what=what, timeout=timeout, logs=logs).stdout

    def initdb(self, data_dir: Path) -> None:
        self.run("initdb", "-D", data_dir, *INITDB_ARGS, what="initdb")

    def basebackup(self, target: Path, *, name: str, primary_port: int, logs: Iterable[Path] = ()) -> None:
        """A hot standby of the primary in `target`, with a replication slot `name` that keeps the WAL it needs."""
        # -R: standby.signal + primary_conninfo; -X stream: the WAL written meanwhile; -c fast: immediate checkpoint;
        # -C -S: create the slot.
        args: list[str | Path] = ["-d", replica_conninfo(name, primary_port), "-D", target, "-R"]
        args += ["-X", "stream", "-c", "fast", "-C", "-S", name, "--no-sync"]
        self.run("pg_basebackup", *args, what=f"pg_basebackup for replica {name}", timeout=600, logs=logs)


# ---------------------------------------------------------------------------------- the nodes of `potluck cluster`

# The binaries `potluck cluster` runs ($POTLUCK_PG_BIN).
PG = PgTools()
CLUSTER_TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "psql", "pg_isready")


def node_running(data_dir: Path) -> bool:
    if not (data_dir / "PG_VERSION").exists():
        return False
    pid_file = data_dir / "postmaster.pid"
    pid = read_pid(pid_file)
    if pid is not None and not pid_alive(pid):
        # A crashed (kill -9) postmaster leaves its pid file. When no init reaps the orphan, it stays a zombie,
        # which both pg_ctl and the next postmaster's lock check take for a live server: clear it.
        pid_file.unlink(missing_ok=True)
        return False
    return PG.run("pg_ctl", "-D", data_dir, "status", what="pg_ctl status", check=False).returncode == 0


def accepting_connections(port: int) -> bool:
    """pg_isready on HOST:port (False too where there are no PostgreSQL binaries)."""
    try:
        probe = PG.run("pg_isready", "-h", HOST, "-p", str(port), "-t", "2", what="pg_isready", check=False)
    except OpsError:
        return False
    return probe.returncode == 0


def _psql(port: int, sql: str, *, what: str = "psql") -> str:
    return PG.psql(port, sql, what=what).strip()


def create_database(port: int, name: str = DB_NAME) -> None:
    """CREATE DATABASE unless it exists."""
    if not _psql(port, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        _psql(port, f"CREATE DATABASE {name}", what=f"create database {name}")


def stop_node(layout: Layout, name: str) -> bool:
    """pg_ctl stop -m fast (immediate when that fails); whether it was running."""
    data_dir = layout.pg_data(name)
    if not node_running(data_dir):
        return False
    log = layout.pg_log(name)
    fast: list[str | Path] = ["-D", data_dir, "-m", "fast", "-w", "-t", "60", "stop"]
    result = PG.run("pg_ctl", *fast, what=f"stop PostgreSQL {name}", timeout=90, check=False, logs=[log])
    if result.returncode != 0:
        immediate: list[str | Path] = ["-D", data_dir, "-m", "immediate", "-w", "stop"]
        PG.run("pg_ctl", *immediate, what=f"stop PostgreSQL {name} (immediate)", timeout=60, logs=[log])
    return True
