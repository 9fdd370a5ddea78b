"""Runs `pgbackrest backup` for the scheduled jobs (schedule.py). A process, not an import: the app never imports
potluck_ops, and pgBackRest's configuration (repository, retention, standby) is the operator's, named by settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd

from potluck.config import BackupSettings

log = logging.getLogger(__name__)


class BackupFailed(RuntimeError):
    """pgBackRest exited non-zero; the message carries the end of its output."""


class PgBackRestRunner:
    def __init__(self, settings: BackupSettings) -> None:
        self.settings = settings

    def command(self, kind: str) -> list[str]:
        s = self.settings
        return ["pgbackrest", f"--config={s.pgbackrest_config}", f"--stanza={s.stanza}", f"--type={kind}", "backup"]

    async def backup(self, kind: str) -> int:
        """One backup of `kind` (full, diff, incr); 1 when taken, 0 when backups are off. Raises on failure."""
        if not self.settings.enabled:
            return 0
        user: int | None = None
        group: int | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.settings.run_as)
            user, group = entry.pw_uid, entry.pw_gid
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = await asyncio.create_subprocess_exec(
            *self.command(kind),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd="/",
            env=env,
            user=user,
            group=group,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.settings.timeout_seconds)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BackupFailed(f"pgbackrest {kind} backup: timed out") from None
        if proc.returncode != 0:
            raise BackupFailed(f"pgbackrest {kind} backup: exit {proc.returncode}: {out.decode()[-2000:]}")
        log.info("backup.taken", extra={"type": kind, "stanza": self.settings.stanza})
        return 1
