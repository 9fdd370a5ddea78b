"""potluck_ops.supervise: the restart delay, and a child killed is started again; SIGTERM stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from potluck_ops.processes import pid_alive, read_pid
from potluck_ops.supervise import FIRST_DELAY, MAX_DELAY, STABLE_AFTER, next_delay
from tests.support.eventually import eventually_sync


def test_the_delay_doubles_while_the_child_dies_young_and_resets_once_it_ran_long() -> None:
    assert next_delay(FIRST_DELAY, 0.5) == 2 * FIRST_DELAY
    assert next_delay(MAX_DELAY, 0.5) == MAX_DELAY
    assert next_delay(16.0, STABLE_AFTER) == FIRST_DELAY


def test_a_killed_child_is_restarted_and_sigterm_stops_both(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    command = [sys.executable, "-m", "potluck_ops.supervise", "--pid-file", str(pid_file), "--name", "sleeper"]
    command += ["--", sys.executable, "-c", "import time; time.sleep(60)"]
    with (tmp_path / "log").open("ab") as log:
        supervisor = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = eventually_sync(lambda: read_pid(pid_file), 10, message="no child started")
        os.killpg(first, signal.SIGKILL)  # its own group: the supervisor survives
        second = eventually_sync(
            lambda: (pid := read_pid(pid_file)) != first and pid_alive(pid) and pid, 10, message="not restarted"
        )
        assert supervisor.poll() is None
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(10) == 0
        time.sleep(0.1)
        assert not pid_alive(second)
        assert "supervisor of sleeper: pid" in (tmp_path / "log").read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
