"""Runs the backup commands for the scheduled jobs (schedule.py). Processes, not imports: the app never imports
potluck_ops, and pgBackRest's configuration (repository, retention, standby) is the operator's, named by settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from collections.abc import Sequence

from potluck.config import BackupSettings

log = logging.getLogger(__name__)


class BackupFailed(RuntimeError):
    """A backup command exited non-zero; the message carries the end of its output."""


class BackupRunner:
    def __init__(self, settings: BackupSettings) -> None:
        self.settings = settings

    def pgbackrest_command(self, kind: str) -> list[str]:
        s = self.settings
        return ["pgbackrest", f"--config={s.pgbackrest_config}", f"--stanza={s.stanza}", f"--type={kind}", "backup"]

    async def postgres(self, kind: str) -> int:
        """One pgBackRest backup of `kind` (full, diff, incr); 1 when taken, 0 when backups are off."""
        if not self.settings.enabled:
            return 0
        # pgBackRest reads the data dirs: as root, it runs as their owner.
        await self._run(self.pgbackrest_command(kind), what=f"pgbackrest {kind} backup", as_owner=True)
        return 1

    async def redis(self) -> int:
        """The coordination Redis's files to the bucket (settings.redis_command); 0 when none is configured."""
        if not self.settings.enabled or not self.settings.redis_command:
            return 0
        await self._run(self.settings.redis_command, what="redis backup", as_owner=False)
        return 1

    async def _run(self, command: Sequence[str], *, what: str, as_owner: bool) -> None:
        user: int | None = None
        group: int | None = None
        if as_owner and os.geteuid() == 0:
            entry = pwd.getpwnam(self.settings.run_as)
            user, group = entry.pw_uid, entry.pw_gid
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = await asyncio.create_subprocess_exec(
            *command,
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
            raise BackupFailed(f"{what}: timed out") from None
        if proc.returncode != 0:
            raise BackupFailed(f"{what}: exit {proc.returncode}: {out.decode(errors='replace')[-2000:]}")
        log.info("backup.taken", extra={"what": what})
