"""A throwaway Redis 7 server on 127.0.0.1, run as a child process (no persistence).

Usage::

    with RedisServer(maxmemory="64mb", policy="allkeys-lru") as r:
        client = redis.Redis.from_url(r.url)
        r.pause()    # SIGSTOP: connections are accepted by the kernel but never answered
        r.resume()
        r.kill()     # SIGKILL, like a crash
        r.restart()  # same port, empty dataset

Note for clients: redis-py 8 retries timeouts and connection errors 10 times with exponential
backoff by default; pass ``retry=Retry(NoBackoff(), 0)`` to see failures quickly.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from potluck_ops.failures import OpsError
from potluck_ops.ports import HOST, free_port
from potluck_ops.processes import start_logged, wait_or_kill, wait_until
from potluck_ops.redis import redis_ping, redis_url

from ._util import HarnessError, ManagedServer

REDIS_SERVER = os.environ.get("POTLUCK_TEST_REDIS_SERVER", "redis-server")


class RedisServer(ManagedServer):
    """``redis-server --save "" --appendonly no`` on a free port, in a temp dir removed by stop()."""

    def __init__(
        self,
        base_dir: Path | None = None,
        maxmemory: str | None = None,
        policy: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.parent_dir = Path(base_dir) if base_dir is not None else None
        self.maxmemory = maxmemory
        self.policy = policy
        self.extra_args = list(extra_args)
        self.host = HOST
        self.port = 0
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return redis_url(self.port)

    @property
    def log_path(self) -> Path:
        return self._require_dir() / "redis.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> Self:
        if self.dir is not None:
            raise HarnessError("RedisServer already started")
        if shutil.which(REDIS_SERVER) is None:
            raise HarnessError(f"{REDIS_SERVER} not found: run scripts/install-deps.sh (redis-server)")
        if self.parent_dir is not None:
            self.parent_dir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="potluck-redis-", dir=self.parent_dir))
        atexit.register(self.stop)
        try:
            for attempt in range(3):  # the free port may be taken before redis binds it
                self.port = free_port()
                try:
                    self._spawn()
                    break
                except HarnessError as exc:
                    if attempt == 2 or "Address already in use" not in str(exc):
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the server and delete its dir. Idempotent."""
        atexit.unregister(self.stop)
        self._terminate()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} pid={self.pid}>"

    # ------------------------------------------------------------------ fault injection

    def pause(self) -> None:
        """SIGSTOP the server: it still accepts TCP connections (kernel backlog) but never answers."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        """SIGKILL the server (a crash). The dataset is lost; restart() brings it back on the same port."""
        proc = self._require_proc()
        proc.kill()
        proc.wait()
        self._paused = False

    def restart(self) -> None:
        """(Kill if running, then) start a fresh server on the same port and wait until it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            self.kill()
        self._require_dir()
        self._spawn()

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING within ``timeout`` seconds (raw socket, no client library)."""
        return redis_ping(self.port, timeout=timeout)

    # ------------------------------------------------------------------ internals

    def _require_dir(self) -> Path:
        if self.dir is None:
            raise HarnessError("RedisServer is not started")
        return self.dir

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise HarnessError("redis-server is not running")
        return self._proc

    def _signal(self, sig: signal.Signals) -> None:
        self._require_proc().send_signal(sig)

    def _command(self) -> list[str]:
        base = self._require_dir()
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", self.host, "--daemonize", "no"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(base), "--logfile", str(base / "redis.log")]
        if self.maxmemory is not None:
            cmd += ["--maxmemory", self.maxmemory]
        if self.policy is not None:
            cmd += ["--maxmemory-policy", self.policy]
        return cmd + self.extra_args

    def _spawn(self, timeout: float = 10.0) -> None:
        base = self._require_dir()
        output = base / "redis.out"  # errors printed before the log file is opened
        command = self._command()
        self._proc = start_logged(command, log=output, env=os.environ, cwd=base, detach=False)
        try:
            wait_until(
                lambda: self.ping(timeout=0.5),
                what=f"redis-server on port {self.port} ({shlex.join(command)})",
                timeout=timeout,
                proc=self._proc,
                logs=(output, base / "redis.log"),
                delay=0.005,
                max_delay=0.005,
            )
        except OpsError:
            self._terminate()
            raise

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
            wait_or_kill(proc, timeout=5)
        self._paused = False
