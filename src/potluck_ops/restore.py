"""Restore: pgBackRest into a fresh data dir, start it on its own port, wait until it is promoted, check it.

A restored copy starts with archive_mode off: its settings are the old primary's, and archiving from it would
push a second history into the same stanza. `potluck cluster up` turns archiving on again for a copy promoted to
the topology's primary (its instance settings are rewritten at every start).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from potluck_ops.failures import OpsError, failure
from potluck_ops.pgbackrest import PgBackRest
from potluck_ops.ports import HOST, free_port
from potluck_ops.postgres import DB_NAME, PG, node_running
from potluck_ops.processes import read_pid, wait_until


@dataclass
class Restored:
    """A restored copy, started: where, on which port, how long each part took, and what the check saw."""

    data_dir: Path
    port: int
    pid: int = 0
    restore_seconds: float = 0.0
    recovery_seconds: float = 0.0
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.restore_seconds + self.recovery_seconds

    def psql(self, sql: str, *, db: str = DB_NAME, timeout: float = 300) -> str:
        return PG.psql(self.port, sql, db=db, what=f"psql on the restored copy (port {self.port})", timeout=timeout)

    def stop(self, mode: str = "fast") -> None:
        if node_running(self.data_dir):
            stop: list[str | Path] = ["-D", self.data_dir, "-m", mode, "-w", "-t", "60", "stop"]
            PG.run("pg_ctl", *stop, what="stop the restored copy", timeout=90, check=False)


def refuse_target(data_dir: Path, *, force: bool) -> None:
    """Refuse a data dir that a running PostgreSQL uses, or that holds anything, unless `force`; with `force`,
    stop what runs there and move the old contents aside (never deleted)."""
    if not data_dir.exists() or not any(data_dir.iterdir()):
        return
    running = node_running(data_dir)
    if not force:
        if running:
            raise OpsError(
                f"refusing to restore into {data_dir}: a running PostgreSQL uses it. Restore into a fresh "
                "directory (--data-dir), or stop it and pass --force to move its data aside"
            )
        raise OpsError(f"refusing to restore into {data_dir}: it is not empty (pass --force to move it aside)")
    if running:
        stop: list[str | Path] = ["-D", data_dir, "-m", "fast", "-w", "-t", "60", "stop"]
        PG.run("pg_ctl", *stop, what=f"stop PostgreSQL on {data_dir}", timeout=90)
    aside = data_dir.with_name(f"{data_dir.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    data_dir.rename(aside)


def start_restored(data_dir: Path, *, port: int | None = None, timeout: float = 600) -> Restored:
    """Start a restored data dir on HOST:port (a free one by default), archive off; wait until it accepts writes."""
    node = Restored(data_dir, port or free_port())
    log = data_dir.with_name(f"{data_dir.name}.log")
    options = f"-p {node.port} -c listen_addresses={HOST} -c archive_mode=off -c cluster_name={data_dir.name}"
    options += f" -c unix_socket_directories={data_dir.parent}"
    began = time.monotonic()
    start: list[str | Path] = ["-D", data_dir, "-l", log, "-o", options, "-w", "-t", str(int(timeout)), "start"]
    PG.run("pg_ctl", *start, what=f"start the restored copy on port {node.port}", timeout=timeout, logs=[log])
    node.pid = read_pid(data_dir / "postmaster.pid") or 0

    def promoted() -> bool:
        # pg_ctl -w returns once read-only connections are accepted, while WAL is still being replayed.
        return node.psql("SELECT pg_is_in_recovery()", db="postgres").strip() == "f"

    wait_until(promoted, what="the restored copy ends recovery", timeout=timeout, logs=[log], max_delay=0.2)
    node.recovery_seconds = time.monotonic() - began
    return node


def check_restored(node: Restored) -> dict[str, str]:
    """What a restored copy must answer: writable, its database there, its tables readable (row counts)."""
    checks = {"in_recovery": node.psql("SELECT pg_is_in_recovery()", db="postgres").strip()}
    if checks["in_recovery"] != "f":
        raise OpsError(f"the restored copy on port {node.port} is still in recovery")
    has_db = node.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{DB_NAME}'", db="postgres").strip()
    if has_db != "1":
        checks["database"] = "missing"
        node.checks = checks
        return checks
    tables = node.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    checks["tables"] = str(len(tables))
    for table in ("recipe", "user_account", "alembic_version"):
        if table in tables:
            checks[f"rows.{table}"] = node.psql(f'SELECT count(*) FROM "{table}"').strip()
    node.checks = checks
    return checks


def restore_into(
    backrest: PgBackRest,
    data_dir: Path,
    *,
    to: str | None = None,
    label: str | None = None,
    port: int | None = None,
    force: bool = False,
) -> Restored:
    """Refusals first, then restore, start, wait for promotion and check. The copy is left running."""
    refuse_target(data_dir, force=force)
    restore_seconds = backrest.restore(data_dir, to=to, label=label)
    try:
        node = start_restored(data_dir, port=port)
    except OpsError as exc:
        log = data_dir.with_name(f"{data_dir.name}.log")
        raise failure(f"the restore ran, but the copy did not start: {exc}", logs=[log]) from None
    node.restore_seconds = restore_seconds
    check_restored(node)
    return node


def discard(node: Restored) -> None:
    """Stop a scratch copy and delete it with its log."""
    node.stop(mode="immediate")
    shutil.rmtree(node.data_dir, ignore_errors=True)
    node.data_dir.with_name(f"{node.data_dir.name}.log").unlink(missing_ok=True)
