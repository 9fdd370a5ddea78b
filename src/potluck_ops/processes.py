"""Processes: run a command to completion, start a server with its output in a log, find it again by its pid
file, stop it with signals, and wait until it answers.

A server started detached (its own session) outlives its starter, which finds it later by its pid file; a
server started attached stays a child and is stopped through its Popen.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from potluck_ops.failures import OpsError, failure

# ------------------------------------------------------------------------------------------------ pids


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` is a running process (a zombie counts as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # PID 1 of a container does not always reap orphans: a stopped daemon can linger as a zombie that
    # kill(pid, 0) still finds.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    """The pid on the first line of a pid file (ours, nginx's, postmaster.pid), or None."""
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def is_ours(pid: int, *needles: bytes) -> bool:
    """Guard against pid reuse: the process's command line has every needle (trusted where /proc is missing)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return all(needle in cmdline for needle in needles)


# ------------------------------------------------------------------------------------------------ stopping


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to be gone; whether it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def terminate(pid: int, *, timeout: float, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds. `group`: signal the process group it leads."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    if not wait_exit(pid, timeout):
        send(signal.SIGKILL)
        wait_exit(pid, 5)


def stop_pidfile(pid_file: Path, needles: Sequence[bytes], *, timeout: float, group: bool = False) -> bool:
    """Terminate the process a pid file names if it runs and is ours (see is_ours); whether it was stopped."""
    pid = read_pid(pid_file)
    stopped = False
    if pid is not None and pid_alive(pid) and is_ours(pid, *needles):
        terminate(pid, timeout=timeout, group=group)
        stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped


def wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Reap a child that was told to stop; SIGKILL it after `timeout` seconds. Whether it exited by itself."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


# ------------------------------------------------------------------------------------------------ starting


def _as_account(account: pwd.struct_passwd | None, env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Popen keyword arguments and environment that run a child as `account` (None: as ourselves)."""
    if account is None:
        return {}, dict(env)
    kwargs: dict[str, Any] = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    return kwargs, {**env, "HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}


class RunOptions(TypedDict, total=False):
    """What `run` takes besides the command, its account and environment (for wrappers that fix those)."""

    input_text: str | None
    timeout: float
    logs: Iterable[Path]
    check: bool
    new_session: bool


def run(
    args: Sequence[str | Path],
    *,
    what: str,
    account: pwd.struct_passwd | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 120,
    logs: Iterable[Path] = (),
    check: bool = True,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (never through a shell); raise OpsError with its output on failure."""
    kwargs, run_env = _as_account(account, env if env is not None else os.environ)
    if input_text is None:
        kwargs["stdin"] = subprocess.DEVNULL
    try:
        result = subprocess.run(
            [str(a) for a in args],
            env=run_env,
            cwd="/",  # absolute paths only; another account may not be able to enter the caller's cwd
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=new_session,
            **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        raise failure(f"{what}: timed out after {timeout:.0f}s", output=text, logs=logs) from None
    except FileNotFoundError as exc:
        raise OpsError(f"{what}: {exc.filename} not found") from None
    if check and result.returncode != 0:
        raise failure(f"{what}: exit code {result.returncode}", output=result.stdout + result.stderr, logs=logs)
    return result


def start_logged(
    args: Sequence[str | Path],
    *,
    log: Path,
    env: Mapping[str, str],
    pid_file: Path | None = None,
    account: pwd.struct_passwd | None = None,
    cwd: Path | str = "/",
    detach: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a long-running server with its output appended to `log` (and its pid in `pid_file`).

    `detach`: in its own session, so it outlives us and a Ctrl-C of ours; else it stays in our session.
    """
    kwargs, child_env = _as_account(account, env)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat()} starting: {' '.join(map(str, args))}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [str(a) for a in args],
            env=child_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
            **kwargs,
        )
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    return proc


# ------------------------------------------------------------------------------------------------ readiness


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    logs: Iterable[Path] = (),
    delay: float = 0.02,
    max_delay: float = 0.25,
) -> None:
    """Poll `check()` until true; fail early if `proc` exits, or after `timeout` seconds.

    Polls after `delay` seconds, then 1.5 times longer each time up to `max_delay`.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise failure(f"{what}: the process exited with code {proc.returncode}", logs=logs)
        if time.monotonic() > deadline:
            raise failure(f"{what}: not ready after {timeout:.0f}s", logs=logs)
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay)


# Probes go straight to loopback, whatever http_proxy the caller's environment sets.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def http_json(url: str, timeout: float = 2.0) -> Any:
    """The JSON body of GET `url` (whatever its status: Patroni answers 503 with a body), or None."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (OSError, ValueError):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
