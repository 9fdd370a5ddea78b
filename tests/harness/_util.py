"""What the harness's process managers share beyond potluck_ops: their error and where their data dirs go."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Self

from potluck_ops.failures import OpsError

# The harness starts its servers with potluck_ops, whose failures are OpsErrors: one error for both, so that
# `except HarnessError` catches whatever a harness call raises.
HarnessError = OpsError


def default_parent_dir(min_free: int = 4 << 30) -> Path | None:
    """Where to put server data dirs: $POTLUCK_TEST_TMPDIR, else /dev/shm if it is a roomy tmpfs.

    On this machine kind, disk-backed temp dirs made pg_basebackup 15x slower (1 s vs 0.06 s), because
    freshly written files were read back from disk. Returns None (tempfile's default) otherwise.
    """
    override = os.environ.get("POTLUCK_TEST_TMPDIR")
    if override:
        return Path(override)
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    if os.access(shm, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= min_free:
        return shm
    return None


class ManagedServer:
    """A harness server as a context manager: `start()` on entering the block, `stop()` on leaving it."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
