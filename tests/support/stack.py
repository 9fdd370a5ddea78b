"""The pieces of an e2e stack: Potluck CLI processes, a migrated database, the environment they share, their logs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from potluck_ops.ports import free_port
from tests.harness import PgCluster, RedisServer
from tests.support.eventually import eventually_sync


class ApiProcess:
    """`potluck serve` on a free port (and its internal listener, /metrics, on another), its output in `log`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "potluck.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
            ],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90) -> None:  # importing the app takes 45 s on a loaded box
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API process exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually_sync(
            ready, timeout, interval=0.1, message=lambda: f"API process not ready: {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


class Process:
    """A CLI command in its own process group (the worker's pool children die with it)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, *, supervised: Path | None = None) -> None:
        """`supervised`: run it under potluck_ops.supervise (restarted when it exits), the child's pid in that file;
        `proc` is then the supervisor, and stopping it stops the child."""
        self.args, self.env, self.log, self.supervised = args, env, log, supervised
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        command = [sys.executable, "-m", "potluck.cli.main", *self.args]
        if self.supervised is not None:
            wrapper = [sys.executable, "-m", "potluck_ops.supervise", "--pid-file", str(self.supervised)]
            command = [*wrapper, "--name", self.args[0], "--", *command]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, the whole group: no shutdown handler runs, nothing is acknowledged."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(45 if self.supervised else 15)
        except subprocess.TimeoutExpired:
            self.kill()


def migrated_database(pg_cluster: PgCluster, prefix: str) -> str:
    """A new, migrated database on the harness's primary; its URL."""
    base = make_url(pg_cluster.dsn("primary"))
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = base.set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        conn = await asyncpg.connect(host=base.host, port=base.port, user=base.username, database="postgres")
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        engine = create_engine(url, DatabaseSettings())
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(create())
    return url


def stack_env(url: str, cache: RedisServer, coord: RedisServer, logs: Path) -> dict[str, str]:
    """What an API process, the worker and beat of an e2e stack share: the stores, fast auth, a quick relay."""
    return {
        **os.environ,
        "POTLUCK_DATABASE__URL": url,
        "POTLUCK_REDIS__URL": cache.url,
        "POTLUCK_REDIS__COORD_URL": coord.url,
        "POTLUCK_AUTH__SECRET_KEY": "e2e-secret-key-long-enough-for-hs256-signing",
        "POTLUCK_AUTH__ARGON2_TIME_COST": "1",
        "POTLUCK_AUTH__ARGON2_MEMORY_KIB": "1024",
        "POTLUCK_AUTH__ARGON2_PARALLELISM": "1",
        "POTLUCK_THROTTLE__REGISTER_PER_ADDRESS": "1000000",
        "POTLUCK_DATA_DIR": str(logs / "data"),
        "POTLUCK_WORKER__RELAY_INTERVAL_SECONDS": "0.3",
    }


def stack_logs(logs: Path) -> str:
    """The tail of every process's log in the folder, for a failure message."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))


async def register_user(client: httpx.AsyncClient) -> dict[str, Any]:
    """A new user over HTTP, with `headers` that authenticate as them."""
    name = f"u{uuid.uuid4().hex[:10]}"
    body = {"email": f"{name}@example.com", "username": name, "password": "long enough pw"}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 202
    token = (await client.post("/api/v1/auth/token", data={"username": name, "password": "long enough pw"})).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    user: dict[str, Any] = (await client.get("/api/v1/users/me", headers=headers)).json()
    user["headers"] = headers
    return user
