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
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from ._util import HarnessError, format_failure, free_port

REDIS_SERVER = os.environ.get("POTLUCK_TEST_REDIS_SERVER", "redis-server")
HOST = "127.0.0.1"


class RedisServer:
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
        self._output: IO[bytes] | None = None
        self._paused = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

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
        self._close_output()
        self._paused = False

    def restart(self) -> None:
        """(Kill if running, then) start a fresh server on the same port and wait until it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            self.kill()
        self._require_dir()
        self._spawn()

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING within ``timeout`` seconds (raw socket, no client library)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

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
        output_path = base / "redis.out"  # errors printed before the log file is opened
        self._output = open(output_path, "ab")  # closed in _close_output()
        self._proc = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT, cwd=base
        )
        deadline = time.monotonic() + timeout
        while not self.ping(timeout=0.5):
            rc = self._proc.poll()
            if rc is not None or time.monotonic() > deadline:
                what = f"exited with rc={rc}" if rc is not None else f"did not answer PING within {timeout}s"
                self._terminate()
                raise HarnessError(
                    format_failure(
                        f"redis-server on port {self.port} {what}: {shlex.join(self._command())}",
                        logs=(output_path, base / "redis.log"),
                    )
                )
            time.sleep(0.005)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._paused = False
        self._close_output()

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None
