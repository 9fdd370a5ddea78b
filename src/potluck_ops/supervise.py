"""Keep a background process running: `python -m potluck_ops.supervise --pid-file F --name worker -- CMD...`.

`potluck cluster up` runs the Celery worker and beat under it: nothing else restarts them in the local topology
(production has systemd or Kubernetes for that). The Celery worker can exit on its own: kombu's Redis transport
raises AttributeError on a late acknowledgement after the consumer closed a broken broker connection (a
coordination-master failover under load; docs/operations.md), and Celery treats it as unrecoverable.

The child runs in its own session, its pid in `--pid-file` (what drills and `cluster down` read), so a drill that
kills the worker's process group leaves the supervisor alive to restart it. SIGTERM (or SIGINT) to the supervisor
is passed to the child's group; the supervisor exits once the child has.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

SUPERVISOR_MARK = b"potluck_ops.supervise"  # in its command line: what `cluster down` checks before a signal
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # a child that ran this long resets the delay
STOP_TIMEOUT = 30.0


def next_delay(delay: float, uptime: float) -> float:
    """Pure: the wait before the next restart, doubling while the child keeps dying young."""
    if uptime >= STABLE_AFTER:
        return FIRST_DELAY
    return min(MAX_DELAY, delay * 2)


def _say(name: str, message: str) -> None:
    print(f"--- {datetime.now(UTC).isoformat()} supervisor of {name}: {message}", flush=True)


class Supervisor:
    def __init__(self, name: str, command: Sequence[str], pid_file: Path) -> None:
        self.name = name
        self.command = list(command)
        self.pid_file = pid_file
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    def run(self) -> int:
        delay = FIRST_DELAY
        restarts = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(self.command, start_new_session=True, stdin=subprocess.DEVNULL)
            self.pid_file.write_text(f"{self.child.pid}\n")
            if self.stopping.is_set():  # told to stop while it was starting
                self.stop(signal.SIGTERM, None)
            if restarts:
                _say(self.name, f"restart {restarts}: pid {self.child.pid}")
            code = self._wait()
            if self.stopping.is_set():
                return 0
            uptime = time.monotonic() - started
            delay = next_delay(delay, uptime) if restarts else FIRST_DELAY
            restarts += 1
            _say(self.name, f"pid {self.child.pid} exited ({code}) after {uptime:.1f} s; restarting in {delay:.0f} s")
            self.stopping.wait(delay)
        return 0

    def _wait(self) -> int:
        assert self.child is not None
        code = self.child.wait()
        if self.stopping.is_set():
            # The child's group got SIGTERM: give its pool children time to finish, then end what is left.
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and _group_alive(self.child.pid):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
        return code


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m potluck_ops.supervise", description=__doc__.split("\n")[0])
    parser.add_argument("--pid-file", type=Path, required=True, help="where the child's pid is written")
    parser.add_argument("--name", required=True, help="what the log lines call the child")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to keep running")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    supervisor = Supervisor(args.name, command, args.pid_file)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
