"""PostgreSQL 15: its binaries (as the postgres user when we are root: they refuse root), a primary made by
initdb, streaming replicas made by pg_basebackup; then the nodes of `potluck cluster` under the state dir.

The test harness shares the first part (PgTools, postmaster_ready) and runs its nodes its own way.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Unpack

from potluck_ops.failures import OpsError, failure
from potluck_ops.layout import Layout
from potluck_ops.ports import HOST
from potluck_ops.processes import RunOptions, pid_alive, read_pid, run, wait_until

PG_BIN = Path(os.environ.get("POTLUCK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DB_NAME = "potluck"
# trust on loopback: clusters bound to 127.0.0.1 only. --no-sync: nothing here is precious, and syncing every
# file initdb writes costs seconds (checkpoints still flush the data pages later).
INITDB_ARGS = ("-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
# The per-node conf files, inside each data dir (so pg_basebackup copies the includes along).
PG_BASE_CONF = "potluck.base.conf"
PG_INSTANCE_CONF = "potluck.instance.conf"
# Unix socket paths are limited to 107 bytes (sun_path); longer state dirs get TCP only.
_MAX_SOCKET_PATH = 100


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

PG_CONF_INCLUDES = f"""
# --- potluck cluster: the deployment's shared settings, then this node's own lines (later lines win) ---
include '{PG_BASE_CONF}'
include '{PG_INSTANCE_CONF}'
"""


def pg_instance_conf(*, name: str, port: int, socket_dir: Path | None) -> str:
    """This node's own settings; included after potluck.base.conf (deploy/postgres/postgresql.conf), so they win."""
    socket_line = f"unix_socket_directories = '{socket_dir}'" if socket_dir else "unix_socket_directories = ''"
    return "\n".join(
        [
            "# Written by `potluck cluster up` at every start: this node's own settings. Edits here are lost;",
            "# change deploy/postgres/postgresql.conf (copied to potluck.base.conf) or potluck_ops/postgres.py.",
            f"port = {port}",
            f"listen_addresses = '{HOST}'",
            socket_line,
            f"cluster_name = '{name}'",
            "",
            "# Every node of this cluster shares one machine (with Redis and the API). The base file sizes memory",
            "# for a dedicated host (shared_buffers = 25% of RAM, effective_cache_size = 75%); three nodes each",
            "# taking that would overcommit RAM and mostly cache the same pages three times. This is the same as",
            "# starting each postmaster with -c shared_buffers=128MB, kept in a file so `pg_ctl start` by hand",
            "# gets it too.",
            "shared_buffers = 128MB",
            "effective_cache_size = 1GB",
            "maintenance_work_mem = 64MB",
            "huge_pages = off",
            "# WAL sized for a laptop's disk: every node keeps min_wal_size, and the slots already hold what a",
            "# replica still needs, so no extra wal_keep_size margin.",
            "max_wal_size = 512MB",
            "min_wal_size = 32MB",
            "wal_keep_size = 0",
            "max_slot_wal_keep_size = 2GB",
            "",
        ]
    )


def _psql(port: int, sql: str, *, what: str = "psql") -> str:
    return PG.psql(port, sql, what=what).strip()


def socket_dir(layout: Layout) -> Path | None:
    return layout.pg if len(str(layout.pg / ".s.PGSQL.65535")) <= _MAX_SOCKET_PATH else None


def _write_confs(layout: Layout, data_dir: Path, name: str, port: int, extra: str = "") -> None:
    """Refresh the shared settings from deploy/ and write this node's own lines (port, name, memory)."""
    base = (layout.deploy / "postgres" / "postgresql.conf").read_text()
    header = "# Copied by `potluck cluster up` from deploy/postgres/postgresql.conf at every start: edit that file.\n"
    files = {
        PG_BASE_CONF: header + base,
        PG_INSTANCE_CONF: pg_instance_conf(name=name, port=port, socket_dir=socket_dir(layout)) + extra,
    }
    for filename, text in files.items():
        path = data_dir / filename
        path.write_text(text)
        chown_to_postgres(path)


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


def init_primary(layout: Layout) -> None:
    target = layout.pg_data("primary")
    partial = layout.pg / "primary.partial"
    shutil.rmtree(partial, ignore_errors=True)
    PG.initdb(partial)
    with (partial / "postgresql.conf").open("a") as fh:
        fh.write(PG_CONF_INCLUDES)
    # Renamed only once complete: a half-built data dir is never mistaken for a usable one by the next `up`.
    partial.rename(target)


def create_database(port: int, name: str = DB_NAME) -> None:
    """CREATE DATABASE unless it exists."""
    if not _psql(port, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        _psql(port, f"CREATE DATABASE {name}", what=f"create database {name}")


def start_node(layout: Layout, name: str, port: int, extra_conf: str = "") -> int:
    """pg_ctl start (detached, waits until it accepts connections); the postmaster's pid. `extra_conf`: lines
    appended to the node's own settings (WAL archiving)."""
    data_dir = layout.pg_data(name)
    _write_confs(layout, data_dir, name, port, extra_conf)
    log = layout.pg_log(name)
    pg_ctl: list[str | Path] = ["-D", data_dir, "-l", log, "-w", "-t", "90", "start"]
    what = f"start PostgreSQL {name} on port {port}"
    PG.run("pg_ctl", *pg_ctl, what=what, timeout=120, logs=[log], new_session=True)
    pid = read_pid(data_dir / "postmaster.pid")
    if pid is None:
        raise failure(f"PostgreSQL {name} started but wrote no postmaster.pid", logs=[log])
    return pid


def create_replica(layout: Layout, name: str, primary_port: int) -> None:
    partial = layout.pg / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    # A slot left by an earlier, interrupted attempt would make pg_basebackup -C fail.
    _psql(
        primary_port,
        f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}'",
        what=f"drop a stale slot {name}",
    )
    PG.basebackup(partial, name=name, primary_port=primary_port, logs=[layout.pg_log("primary")])
    partial.rename(layout.pg_data(name))


def follow_primary(name: str, port: int, primary_port: int) -> None:
    """Point a replica at the primary's current port (ports may change between runs); reloadable, no restart."""
    current = _psql(port, "SHOW primary_conninfo", what=f"read primary_conninfo of {name}")
    match = re.search(r"\bport=(\d+)", current)
    if match and int(match.group(1)) == primary_port:
        return
    conninfo = replica_conninfo(name, primary_port)
    _psql(port, f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'", what=f"re-point {name}")
    _psql(port, "SELECT pg_reload_conf()", what=f"reload {name}")


def wait_streaming(layout: Layout, primary_port: int, names: Sequence[str], timeout: float = 60) -> None:
    if not names:
        return
    sql = "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'"

    def streaming() -> bool:
        return set(names) <= set(_psql(primary_port, sql, what="read pg_stat_replication").split())

    logs = [layout.pg_log("primary"), *(layout.pg_log(n) for n in names)]
    wait_until(streaming, what=f"replicas {', '.join(names)} streaming", timeout=timeout, logs=logs)


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
