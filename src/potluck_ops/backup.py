"""`potluck backup`: take one now, list them (from `pgbackrest info`), verify them (pgBackRest verify plus a
restore of the latest backup into a scratch dir, started and checked, then deleted).

Against `potluck cluster`'s stanza by default (<state dir>/pgbackrest/pgbackrest.conf), or any config and stanza
(production: the database host's /etc/pgbackrest/pgbackrest.conf).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from potluck_ops.failures import OpsError
from potluck_ops.pgbackrest import PgBackRest
from potluck_ops.postgres import chown_to_postgres
from potluck_ops.restore import discard, restore_into


@dataclass(frozen=True)
class BackupRow:
    """One backup, as `potluck backup list` shows it."""

    label: str
    type: str
    started: str
    seconds: int
    database_bytes: int
    repo_bytes: int
    wal_start: str
    wal_stop: str
    error: bool

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(sep=" ", timespec="seconds")


def backup_rows(info: Mapping[str, Any]) -> list[BackupRow]:
    """The backups of one stanza's `pgbackrest info --output=json`, oldest first."""
    rows = []
    for backup in info.get("backup", []):
        started, stopped = backup["timestamp"]["start"], backup["timestamp"]["stop"]
        rows.append(
            BackupRow(
                label=backup["label"],
                type=backup["type"],
                started=_stamp(started),
                seconds=stopped - started,
                database_bytes=backup["info"]["size"],
                repo_bytes=backup["info"]["repository"]["delta"],
                wal_start=backup["archive"]["start"],
                wal_stop=backup["archive"]["stop"],
                error=bool(backup.get("error", False)),
            )
        )
    return rows


def archive_range(info: Mapping[str, Any]) -> tuple[str, str] | None:
    """The oldest and newest WAL segment in the archive (the span a point-in-time restore can reach)."""
    archives = info.get("archive", [])
    if not archives:
        return None
    return archives[-1].get("min", ""), archives[-1].get("max", "")


@dataclass
class Verification:
    """What `potluck backup verify` found."""

    verify_ok: bool
    verify_output: str
    label: str = ""
    restore_ok: bool = False
    restore_seconds: float = 0.0
    checks: dict[str, str] | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.verify_ok and self.restore_ok


def _verify_problems(output: str) -> list[str]:
    """pgBackRest 2.45's verify exits 0 even when it finds invalid files; its log lines say so."""
    markers = ("invalid", "missing", "ERROR", "WARN")
    return [line.strip() for line in output.splitlines() if any(m in line for m in markers)]


def verify(backrest: PgBackRest, *, scratch_parent: Path | None = None) -> Verification:
    """pgBackRest verify, then the latest backup restored on its own (no WAL after it), started and checked."""
    result = backrest.verify()
    output = result.stdout + result.stderr
    problems = _verify_problems(output)
    found = Verification(verify_ok=result.returncode == 0 and not problems, verify_output="\n".join(problems))
    rows = backup_rows(backrest.info())
    if not rows:
        found.error = "no backup to restore: take one (potluck backup now --type full)"
        return found
    found.label = rows[-1].label
    scratch = Path(tempfile.mkdtemp(prefix="potluck-verify-", dir=scratch_parent))
    scratch.chmod(0o755)
    chown_to_postgres(scratch)
    try:
        node = restore_into(backrest, scratch / "restored", label=found.label)
    except OpsError as exc:
        found.error = str(exc)
        return found
    try:
        found.restore_ok = True
        found.restore_seconds = node.seconds
        found.checks = node.checks
    finally:
        discard(node)
        scratch.rmdir()
    return found
