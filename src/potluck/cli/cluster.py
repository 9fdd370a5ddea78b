"""`potluck cluster up|down|status`: the full topology on one machine.

PostgreSQL 15 primary + streaming replicas, the Redis cache instance (deploy/redis/cache.conf, evicting) and the
non-evicting Redis coordination instance (deploy/redis/coord.conf), N API processes and nginx round-robin in
front of them, a Celery worker and beat (broker: the coordination instance), all on 127.0.0.1.

All state lives under one directory: ``.cluster/`` at the repository root, or ``$POTLUCK_CLUSTER_DIR``::

    cluster.json        endpoints and pids (written by `up`, read by `status`)
    secret.key          the JWT signing key shared by every API process (generated once)
    pg/                 owned by postgres: data dirs primary/, r1/, r2/ ..., their logs, the unix socket
    redis/cache/ coord/ data dirs; redis/<role>.log, redis/<role>.pid
    api/                api-<i>.log, api-<i>.pid
    worker/             worker.log, worker.pid, beat.log, beat.pid (Celery: the outbox relay, view flushes)
    nginx/              nginx.conf (rendered from deploy/nginx/nginx.conf.template), pid, logs, temp files
    data/               POTLUCK_DATA_DIR of the API processes

Every server is started in its own session with output in a log file, so it outlives `potluck cluster up`.
`down` finds them again from the pid files (and PostgreSQL from its data dirs), not from memory. As root,
PostgreSQL binaries run as the postgres user (they refuse root); Redis, nginx and the API run as the caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

cluster_app = typer.Typer(
    help="Run the full topology on this machine: PostgreSQL primary + replicas, Redis, N API processes, nginx, "
    "a Celery worker and beat.",
    no_args_is_help=True,
)
console = Console(stderr=True)

HOST = "127.0.0.1"
PG_BIN = Path(os.environ.get("POTLUCK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DB_NAME = "potluck"
CLUSTER_DIR_ENV = "POTLUCK_CLUSTER_DIR"
MARKER = ".potluck-cluster"
REDIS_ROLES = ("cache", "coord")
# Celery, started after the API processes and stopped before them.
BACKGROUND_ROLES = ("worker", "beat")
# The per-node conf files, inside each PostgreSQL data dir (so pg_basebackup copies the includes along).
PG_BASE_CONF = "potluck.base.conf"
PG_INSTANCE_CONF = "potluck.instance.conf"
# Servers get ports from here up to the kernel's ephemeral range (see pick_free_ports).
_LOW_PORT = 10_000
# Unix socket paths are limited to 107 bytes (sun_path); longer state dirs get TCP only.
_MAX_SOCKET_PATH = 100


class ClusterError(RuntimeError):
    """A cluster step failed; the message says which and carries the relevant log tails."""


# ---------------------------------------------------------------------------------------------------- layout


def find_repo_root() -> Path:
    """The checkout holding deploy/: this module's own (editable install), else the working directory's."""
    here = Path(__file__).resolve()
    for candidate in [*here.parents, Path.cwd().resolve(), *Path.cwd().resolve().parents]:
        if (candidate / "deploy" / "nginx" / "nginx.conf.template").is_file():
            return candidate
    raise ClusterError("cannot find the repository (a directory with deploy/nginx/nginx.conf.template)")


class Layout:
    """Where everything lives under the state dir. Pure path arithmetic."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.root = root
        self.repo = repo

    @classmethod
    def discover(cls) -> Layout:
        repo = find_repo_root()
        override = os.environ.get(CLUSTER_DIR_ENV)
        root = Path(override).expanduser().absolute() if override else repo / ".cluster"
        return cls(root, repo)

    @property
    def deploy(self) -> Path:
        return self.repo / "deploy"

    @property
    def cluster_json(self) -> Path:
        return self.root / "cluster.json"

    @property
    def secret_file(self) -> Path:
        return self.root / "secret.key"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def pg(self) -> Path:
        return self.root / "pg"

    def pg_data(self, name: str) -> Path:
        return self.pg / name

    def pg_log(self, name: str) -> Path:
        return self.pg / f"{name}.log"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    def redis_log(self, role: str) -> Path:
        return self.redis / f"{role}.log"

    def redis_pid(self, role: str) -> Path:
        return self.redis / f"{role}.pid"

    @property
    def api(self) -> Path:
        return self.root / "api"

    def api_log(self, index: int) -> Path:
        return self.api / f"api-{index}.log"

    def api_pid(self, index: int) -> Path:
        return self.api / f"api-{index}.pid"

    @property
    def worker(self) -> Path:
        return self.root / "worker"

    def background_log(self, role: str) -> Path:
        """`worker` or `beat`."""
        return self.worker / f"{role}.log"

    def background_pid(self, role: str) -> Path:
        return self.worker / f"{role}.pid"

    @property
    def nginx(self) -> Path:
        return self.root / "nginx"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def replica_names(self) -> list[str]:
        """Replica data dirs that exist, in order (r1, r2, ...)."""
        found = [p.name for p in self.pg.glob("r*") if re.fullmatch(r"r\d+", p.name) and (p / "PG_VERSION").exists()]
        return sorted(found, key=lambda n: int(n[1:]))


# ----------------------------------------------------------------------------------------------- pure helpers


def ephemeral_port_range() -> tuple[int, int] | None:
    """The kernel's range for the local ports of outgoing connections (Linux: 32768-60999 by default)."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def _bind_zero_ports(count: int, avoided: set[int]) -> list[int]:
    ports: list[int] = []
    sockets: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
            if port not in avoided:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def pick_free_ports(count: int, *, avoid: Iterable[int] = (), rng: random.Random | None = None) -> list[int]:
    """`count` distinct loopback ports that are free now, below the kernel's ephemeral range when it has room.

    Binding port 0 returns an ephemeral port, and the kernel also hands ephemeral ports to outgoing connections
    (a replica's walreceiver, psql, the API's pools): one of those can take the port between this pick and the
    server's own bind, and the server dies with "address already in use" (seen here: Redis after
    pg_basebackup). Below the range only servers that choose their port compete, and the bind check sees them.
    Falls back to binding port 0 where the range is unknown.
    """
    avoided = set(avoid)
    ports: list[int] = []
    span = ephemeral_port_range()
    if span is not None and span[0] - _LOW_PORT >= 1000:
        rng = rng or random.Random()
        for _ in range(200 * count):
            if len(ports) == count:
                break
            port = rng.randrange(_LOW_PORT, span[0])
            if port not in avoided and port not in ports and port_is_free(port):
                ports.append(port)
    return ports + _bind_zero_ports(count - len(ports), avoided | set(ports))


def _reusable(port: int) -> bool:
    span = ephemeral_port_range()
    return span is None or not span[0] <= port <= span[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on HOST:port now (SO_REUSEADDR, as servers set it: TIME_WAIT is no obstacle)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def assign_ports(names: Sequence[str], previous: Mapping[str, int], *, avoid: Iterable[int] = ()) -> dict[str, int]:
    """A port per name: the previous run's when it is still free (stable URLs across down/up), else a new one."""
    taken = set(avoid)
    result: dict[str, int] = {}
    for name in names:
        port = previous.get(name)
        if port and port not in taken and _reusable(port) and port_is_free(port):
            result[name] = port
            taken.add(port)
    missing = [n for n in names if n not in result]
    for name, port in zip(missing, pick_free_ports(len(missing), avoid=taken), strict=True):
        result[name] = port
    return result


def pg_url(port: int) -> str:
    """The SQLAlchemy URL the API uses."""
    return f"postgresql+asyncpg://{PG_USER}@{HOST}:{port}/{DB_NAME}"


def pg_dsn(port: int) -> str:
    """The libpq URL, for psql."""
    return f"postgresql://{PG_USER}@{HOST}:{port}/{DB_NAME}"


def redis_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def api_env(
    *,
    primary_port: int,
    replica_ports: Sequence[int],
    cache_port: int,
    coord_port: int,
    data_dir: Path,
    secret: str | None,
) -> dict[str, str]:
    """The POTLUCK_* settings of an API process (and of migrate/seed); `secret=None` leaves the key out."""
    env = {
        "POTLUCK_DATABASE__URL": pg_url(primary_port),
        "POTLUCK_DATABASE__REPLICA_URLS": json.dumps([pg_url(p) for p in replica_ports]),
        "POTLUCK_REDIS__URL": redis_url(cache_port),
        "POTLUCK_REDIS__COORD_URL": redis_url(coord_port),
        "POTLUCK_DATA_DIR": str(data_dir),
    }
    if secret is not None:
        env["POTLUCK_AUTH__SECRET_KEY"] = secret
    return env


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill `{{ name }}` placeholders (nginx's own `$variables` stay); every placeholder must have a value."""
    missing: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            missing.add(name)
            return match.group(0)
        return values[name]

    rendered = _PLACEHOLDER.sub(fill, template)
    if missing:
        raise ClusterError(f"template placeholders without a value: {', '.join(sorted(missing))}")
    return rendered


def render_nginx_conf(template: str, *, nginx_dir: Path, lb_port: int, api_ports: Sequence[int]) -> str:
    """nginx.conf for a load balancer on HOST:lb_port over the API processes on `api_ports`."""
    if not api_ports:
        raise ClusterError("nginx needs at least one API port")
    # fail_timeout is short on purpose: a process marked down is retried after 2 s, not nginx's default 10 s;
    # max_fails=3: one failed attempt (a timeout under load) does not take it out.
    servers = "\n".join(f"        server {HOST}:{port} max_fails=3 fail_timeout=2s;" for port in api_ports)
    return render_template(
        template, {"nginx_dir": str(nginx_dir), "listen": f"{HOST}:{lb_port}", "upstream_servers": servers}
    )


def pg_instance_conf(*, name: str, port: int, socket_dir: Path | None) -> str:
    """This node's own settings; included after potluck.base.conf (deploy/postgres/postgresql.conf), so they win."""
    socket_line = f"unix_socket_directories = '{socket_dir}'" if socket_dir else "unix_socket_directories = ''"
    return "\n".join(
        [
            "# Written by `potluck cluster up` at every start: this node's own settings. Edits here are lost;",
            "# change deploy/postgres/postgresql.conf (copied to potluck.base.conf) or cluster.py instead.",
            f"port = {port}",
            f"listen_addresses = '{HOST}'",
            socket_line,
            f"cluster_name = '{name}'",
            "",
            "# Every node of this cluster shares one machine (with Redis and the API). The base file sizes memory",
            "# for a dedicated host (shared_buffers = 25% of RAM, effective_cache_size = 75%); three nodes each",
            "# taking that would overcommit RAM and mostly cache the same pages three times. This is the same as",
            "# starting each postmaster with -c shared_buffers=128MB, kept in a file so `pg_ctl start` by hand",
            "# gets it too.",
            "shared_buffers = 128MB",
            "effective_cache_size = 1GB",
            "maintenance_work_mem = 64MB",
            "huge_pages = off",
            "# WAL sized for a laptop's disk: every node keeps min_wal_size, and the slots already hold what a",
            "# replica still needs, so no extra wal_keep_size margin.",
            "max_wal_size = 512MB",
            "min_wal_size = 32MB",
            "wal_keep_size = 0",
            "max_slot_wal_keep_size = 2GB",
            "",
        ]
    )


PG_CONF_INCLUDES = f"""
# --- potluck cluster: the deployment's shared settings, then this node's own lines (later lines win) ---
include '{PG_BASE_CONF}'
include '{PG_INSTANCE_CONF}'
"""


# --------------------------------------------------------------------------------------------- process helpers


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


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _is_ours(pid: int, *needles: bytes) -> bool:
    """Guard against pid reuse: the process's command line has every needle (trusted where /proc is missing)."""
    cmdline = _cmdline(pid)
    return cmdline is None or all(needle in cmdline for needle in needles)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _terminate(pid: int, *, timeout: float, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds. `group`: signal the process group it leads."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    if not _wait_exit(pid, timeout):
        send(signal.SIGKILL)
        _wait_exit(pid, 5)


def tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 32 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _failure(what: str, *, output: str = "", logs: Iterable[Path] = ()) -> ClusterError:
    parts = [what]
    if output.strip():
        parts.append("--- output ---\n" + "\n".join(output.strip().splitlines()[-40:]))
    for log in logs:
        if log.exists():
            parts.append(f"--- tail of {log} ---\n{tail(log)}")
    return ClusterError("\n".join(parts))


def _pg_user() -> pwd.struct_passwd | None:
    """The postgres account when we are root (PostgreSQL refuses to run as root), else None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        raise ClusterError(f"running as root, but there is no {PG_USER!r} user: install postgresql-15") from None


def _chown_pg(path: Path) -> None:
    account = _pg_user()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _run(
    args: Sequence[str | Path],
    *,
    what: str,
    as_pg: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    logs: Iterable[Path] = (),
    check: bool = True,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (never through a shell); raise ClusterError with its output on failure."""
    kwargs: dict[str, Any] = {}
    run_env = dict(env if env is not None else os.environ)
    if as_pg:
        # libpq's PG* variables (PGHOST, PGPORT, ...) from the caller's shell would redirect the tools.
        run_env = {k: v for k, v in run_env.items() if not k.startswith("PG")}
        account = _pg_user()
        if account is not None:
            kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
            run_env["HOME"] = account.pw_dir
            run_env["USER"] = run_env["LOGNAME"] = PG_USER
    try:
        result = subprocess.run(
            [str(a) for a in args],
            env=run_env,
            cwd="/",  # absolute paths only; the postgres user may not be able to enter the caller's cwd
            stdin=subprocess.DEVNULL,
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
        raise _failure(f"{what}: timed out after {timeout:.0f}s", output=text, logs=logs) from None
    except FileNotFoundError as exc:
        raise ClusterError(f"{what}: {exc.filename} not found") from None
    if check and result.returncode != 0:
        raise _failure(f"{what}: exit code {result.returncode}", output=result.stdout + result.stderr, logs=logs)
    return result


def _spawn(args: Sequence[str | Path], *, log: Path, pid_file: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a long-running server detached from us: own session, output appended to `log`, pid in `pid_file`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat()} starting: {' '.join(map(str, args))}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [str(a) for a in args],
            env=dict(env),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc


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


def _answers_200(url: str) -> Callable[[], bool]:
    return lambda: http_status(url) == 200


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    logs: Iterable[Path] = (),
) -> None:
    """Poll `check()` until true; fail early if `proc` exits, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise _failure(f"{what}: the process exited with code {proc.returncode}", logs=logs)
        if time.monotonic() > deadline:
            raise _failure(f"{what}: not ready after {timeout:.0f}s", logs=logs)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _potluck_command() -> list[str]:
    """How to run this project's CLI in a child: the console script next to our interpreter (the venv's)."""
    script = Path(sys.executable).parent / "potluck"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("potluck")
    if found:
        return [found]
    return [sys.executable, "-c", "from potluck.cli.main import app; app()"]


# ------------------------------------------------------------------------------------------------- PostgreSQL


def _psql(port: int, sql: str, *, db: str = "postgres", what: str = "psql", logs: Iterable[Path] = ()) -> str:
    args: list[str | Path] = [PG_BIN / "psql", "-h", HOST, "-p", str(port), "-U", PG_USER, "-d", db]
    args += ["-XAtq", "-v", "ON_ERROR_STOP=1"]
    return _run([*args, "-c", sql], what=what, as_pg=True, timeout=60, logs=logs).stdout.strip()


def _socket_dir(layout: Layout) -> Path | None:
    return layout.pg if len(str(layout.pg / ".s.PGSQL.65535")) <= _MAX_SOCKET_PATH else None


def _write_pg_confs(layout: Layout, data_dir: Path, name: str, port: int) -> None:
    """Refresh the shared settings from deploy/ and write this node's own lines (port, name, memory)."""
    base = (layout.deploy / "postgres" / "postgresql.conf").read_text()
    header = "# Copied by `potluck cluster up` from deploy/postgres/postgresql.conf at every start: edit that file.\n"
    files = {
        PG_BASE_CONF: header + base,
        PG_INSTANCE_CONF: pg_instance_conf(name=name, port=port, socket_dir=_socket_dir(layout)),
    }
    for filename, text in files.items():
        path = data_dir / filename
        path.write_text(text)
        _chown_pg(path)


def _pg_running(data_dir: Path) -> bool:
    if not (data_dir / "PG_VERSION").exists():
        return False
    pid_file = data_dir / "postmaster.pid"
    pid = _read_pid(pid_file)
    if pid is not None and not pid_alive(pid):
        # A crashed (kill -9) postmaster leaves its pid file. When no init reaps the orphan, it stays a zombie,
        # which both pg_ctl and the next postmaster's lock check take for a live server: clear it.
        pid_file.unlink(missing_ok=True)
        return False
    result = _run([PG_BIN / "pg_ctl", "-D", data_dir, "status"], what="pg_ctl status", as_pg=True, check=False)
    return result.returncode == 0


def _pg_init_primary(layout: Layout) -> None:
    target = layout.pg_data("primary")
    partial = layout.pg / "primary.partial"
    shutil.rmtree(partial, ignore_errors=True)
    # trust on loopback: a developer cluster bound to 127.0.0.1 only. --no-sync: nothing here is precious, and
    # syncing every file initdb writes costs seconds (checkpoints still flush the data pages later).
    _run(
        [PG_BIN / "initdb", "-D", partial, "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        what="initdb",
        as_pg=True,
    )
    with (partial / "postgresql.conf").open("a") as fh:
        fh.write(PG_CONF_INCLUDES)
    # Renamed only once complete: a half-built data dir is never mistaken for a usable one by the next `up`.
    partial.rename(target)


def _pg_start(layout: Layout, name: str, port: int) -> int:
    data_dir = layout.pg_data(name)
    _write_pg_confs(layout, data_dir, name, port)
    log = layout.pg_log(name)
    _run(
        [PG_BIN / "pg_ctl", "-D", data_dir, "-l", log, "-w", "-t", "90", "start"],
        what=f"start PostgreSQL {name} on port {port}",
        as_pg=True,
        timeout=120,
        logs=[log],
        new_session=True,
    )
    pid = _read_pid(data_dir / "postmaster.pid")
    if pid is None:
        raise _failure(f"PostgreSQL {name} started but wrote no postmaster.pid", logs=[log])
    return pid


def _pg_create_replica(layout: Layout, name: str, primary_port: int) -> None:
    partial = layout.pg / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    # A slot left by an earlier, interrupted attempt would make -C fail.
    _psql(
        primary_port,
        f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}'",
        what=f"drop a stale slot {name}",
    )
    # -R: standby.signal + primary_conninfo (with application_name, the name in pg_stat_replication);
    # -X stream: the WAL written meanwhile; -c fast: immediate checkpoint; -C -S: a slot keeps the WAL it needs.
    conninfo = f"host={HOST} port={primary_port} user={PG_USER} application_name={name}"
    basebackup: list[str | Path] = [PG_BIN / "pg_basebackup", "-d", conninfo, "-D", partial, "-R"]
    basebackup += ["-X", "stream", "-c", "fast"]
    _run(
        [*basebackup, "-C", "-S", name, "--no-sync"],
        what=f"pg_basebackup for replica {name}",
        as_pg=True,
        timeout=600,
        logs=[layout.pg_log("primary")],
    )
    partial.rename(layout.pg_data(name))


def _pg_follow(layout: Layout, name: str, port: int, primary_port: int) -> None:
    """Point a replica at the primary's current port (ports may change between runs); reloadable, no restart."""
    current = _psql(port, "SHOW primary_conninfo", what=f"read primary_conninfo of {name}")
    match = re.search(r"\bport=(\d+)", current)
    if match and int(match.group(1)) == primary_port:
        return
    conninfo = f"host={HOST} port={primary_port} user={PG_USER} application_name={name}"
    _psql(port, f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'", what=f"re-point {name}")
    _psql(port, "SELECT pg_reload_conf()", what=f"reload {name}")


def _pg_wait_streaming(layout: Layout, primary_port: int, names: Sequence[str], timeout: float = 60) -> None:
    if not names:
        return
    sql = "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'"

    def streaming() -> bool:
        return set(names) <= set(_psql(primary_port, sql, what="read pg_stat_replication").split())

    logs = [layout.pg_log("primary"), *(layout.pg_log(n) for n in names)]
    _wait_until(streaming, what=f"replicas {', '.join(names)} streaming", timeout=timeout, logs=logs)


def _pg_stop(layout: Layout, name: str) -> bool:
    data_dir = layout.pg_data(name)
    if not _pg_running(data_dir):
        return False
    log = layout.pg_log(name)
    fast: list[str | Path] = [PG_BIN / "pg_ctl", "-D", data_dir, "-m", "fast", "-w", "-t", "60", "stop"]
    result = _run(fast, what=f"stop PostgreSQL {name}", as_pg=True, timeout=90, check=False, logs=[log])
    if result.returncode != 0:
        immediate: list[str | Path] = [PG_BIN / "pg_ctl", "-D", data_dir, "-m", "immediate", "-w", "stop"]
        _run(immediate, what=f"stop PostgreSQL {name} (immediate)", as_pg=True, timeout=60, logs=[log])
    return True


# ------------------------------------------------------------------------------------------- Redis, API, nginx


def _redis_start(layout: Layout, role: str, port: int) -> int:
    conf = layout.deploy / "redis" / f"{role}.conf"
    data_dir = layout.redis / role
    data_dir.mkdir(parents=True, exist_ok=True)
    log = layout.redis_log(role)
    # The file holds the role's policy (eviction, persistence); the instance's own port and paths win over it.
    args: list[str | Path] = ["redis-server", conf, "--port", str(port), "--bind", HOST, "--dir", data_dir]
    args += ["--pidfile", layout.redis_pid(role), "--logfile", log, "--daemonize", "no"]
    proc = _spawn(args, log=log, pid_file=layout.redis_pid(role), env=os.environ)
    _wait_until(lambda: redis_ping(port), what=f"Redis {role} on port {port}", timeout=30, proc=proc, logs=[log])
    return proc.pid


def _stop_pidfile(pid_file: Path, needles: Sequence[bytes], *, timeout: float, group: bool = False) -> bool:
    pid = _read_pid(pid_file)
    stopped = False
    if pid is not None and pid_alive(pid) and _is_ours(pid, *needles):
        _terminate(pid, timeout=timeout, group=group)
        stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped


def _nginx_args(layout: Layout) -> list[str | Path]:
    # -p: prefix for relative paths; -e: the error log used before the config is read (else /var/log/nginx).
    return ["nginx", "-p", f"{layout.nginx}/", "-e", layout.nginx / "error.log", "-c", layout.nginx / "nginx.conf"]


def _nginx_start(layout: Layout, lb_port: int, api_ports: Sequence[int]) -> int:
    (layout.nginx / "tmp").mkdir(parents=True, exist_ok=True)
    template = (layout.deploy / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(template, nginx_dir=layout.nginx, lb_port=lb_port, api_ports=api_ports)
    (layout.nginx / "nginx.conf").write_text(conf)
    logs = [layout.nginx / "error.log"]
    _run([*_nginx_args(layout), "-t", "-q"], what="nginx -t", logs=logs)
    _run(_nginx_args(layout), what=f"start nginx on port {lb_port}", logs=logs, new_session=True)
    pid_file = layout.nginx / "nginx.pid"
    _wait_until(lambda: _read_pid(pid_file) is not None, what="nginx pid file", timeout=10, logs=logs)
    url = f"http://{HOST}:{lb_port}/healthz"
    _wait_until(lambda: http_status(url) == 200, what=f"nginx {url}", timeout=30, logs=logs)
    pid = _read_pid(pid_file)
    assert pid is not None
    return pid


def _nginx_stop(layout: Layout) -> bool:
    pid_file = layout.nginx / "nginx.pid"
    pid = _read_pid(pid_file)
    if pid is None or not pid_alive(pid) or not _is_ours(pid, b"nginx", bytes(layout.nginx)):
        pid_file.unlink(missing_ok=True)
        return False
    # quit = graceful: finish the requests in flight, then exit.
    result = _run([*_nginx_args(layout), "-s", "quit"], what="nginx -s quit", check=False)
    if result.returncode != 0 or not _wait_exit(pid, 15):
        _terminate(pid, timeout=5)
    pid_file.unlink(missing_ok=True)
    return True


# ------------------------------------------------------------------------------------------------ the commands


@contextlib.contextmanager
def _step(title: str) -> Iterator[None]:
    """A spinner while the step runs, then a check mark with its duration."""
    started = time.monotonic()
    try:
        with console.status(f"{title}…"):
            yield
    except BaseException:
        console.print(f"[red]✗[/red] {title} [dim]({time.monotonic() - started:.1f}s)[/dim]")
        raise
    console.print(f"[green]✓[/green] {title} [dim]({time.monotonic() - started:.1f}s)[/dim]")


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One `up`/`down` at a time per state dir."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another `potluck cluster` command is running on {layout.root}") from None
        yield


def _prepare_state_dir(layout: Layout) -> None:
    root = layout.root
    foreign = root.exists() and any(p.name != layout.lock_file.name for p in root.iterdir())
    if foreign and not (root / MARKER).exists():
        raise ClusterError(f"{root} is not empty and was not made by `potluck cluster`; pick another directory")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()
    # Others must traverse it (never list it): postgres to its data dirs, nginx workers to their temp dirs.
    os.chmod(root, root.stat().st_mode | 0o011)
    for path in (layout.redis, layout.api, layout.data, layout.nginx, layout.worker):
        path.mkdir(exist_ok=True)
    layout.pg.mkdir(mode=0o700, exist_ok=True)
    _chown_pg(layout.pg)


def _secret(layout: Layout) -> str:
    """The signing key every API process shares: made once, kept with the cluster."""
    if not layout.secret_file.exists():
        fd = os.open(layout.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return layout.secret_file.read_text().strip()


def load_cluster_json(layout: Layout) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(layout.cluster_json.read_text())
    except (OSError, ValueError):
        return None
    return data


def _previous_ports(info: Mapping[str, Any] | None) -> dict[str, int]:
    if not info:
        return {}
    ports: dict[str, int] = {}
    with contextlib.suppress(KeyError, TypeError):
        pg = info["postgres"]
        ports["primary"] = pg["primary"]["port"]
        for node in pg["replicas"]:
            ports[node["name"]] = node["port"]
        for role in REDIS_ROLES:
            ports[f"redis-{role}"] = info["redis"][role]["port"]
        for node in info["api"]:
            ports[node["name"]] = node["port"]
    return ports


def cluster_status(layout: Layout) -> dict[str, Any]:
    """cluster.json plus liveness: `alive` per pid, `healthy` per endpoint, `up` when everything is."""
    info = load_cluster_json(layout)
    if info is None:
        return {"up": False, "state_dir": str(layout.root), "reason": f"no {layout.cluster_json}"}
    checks: list[bool] = []

    def mark(node: dict[str, Any], healthy: bool) -> None:
        node["alive"] = pid_alive(node.get("pid"))
        node["healthy"] = node["alive"] and healthy
        checks.append(node["healthy"])

    pg = info.get("postgres", {})
    for node in [pg.get("primary", {}), *pg.get("replicas", [])]:
        probe: list[str | Path] = [PG_BIN / "pg_isready", "-h", HOST, "-p", str(node.get("port")), "-t", "2"]
        try:
            accepting = _run(probe, what="pg_isready", check=False).returncode == 0
        except ClusterError:  # no PostgreSQL binaries here
            accepting = False
        mark(node, accepting)
    for role in REDIS_ROLES:
        node = info.get("redis", {}).get(role, {})
        mark(node, redis_ping(node.get("port", 0)))
    for node in info.get("api", []):
        mark(node, http_status(f"{node.get('url')}/healthz") == 200)
    for role in BACKGROUND_ROLES:
        if role in info:
            mark(info[role], True)  # no endpoint: alive is healthy
    lb = info.get("lb", {})
    mark(lb, http_status(f"{lb.get('url')}/healthz") == 200)
    info["up"] = bool(checks) and all(checks)
    return info


def _stop_all(layout: Layout, *, quiet: bool = False) -> list[str]:
    """Stop whatever runs from this state dir, newest layer first. Returns what was stopped."""
    stopped: list[str] = []
    if _nginx_stop(layout):
        stopped.append("nginx")
    for role in reversed(BACKGROUND_ROLES):
        # SIGTERM: the worker finishes its tasks in flight (warm shutdown); the group takes its pool along.
        if _stop_pidfile(layout.background_pid(role), [b"potluck", role.encode()], timeout=20, group=True):
            stopped.append(role)
    for pid_file in sorted(layout.api.glob("api-*.pid")) if layout.api.exists() else []:
        # SIGTERM lets uvicorn finish requests in flight; the group takes any worker children along.
        if _stop_pidfile(pid_file, [b"potluck", b"serve"], timeout=10, group=True):
            stopped.append(pid_file.stem)
    for role in REDIS_ROLES:
        # SIGTERM makes Redis flush the AOF (coord) before exiting.
        if _stop_pidfile(layout.redis_pid(role), [b"redis-server"], timeout=15):
            stopped.append(f"redis-{role}")
    if layout.pg.exists():
        # Replicas first, so they do not spend the primary's shutdown reconnecting to it.
        for name in [*reversed(layout.replica_names()), "primary"]:
            if _pg_stop(layout, name):
                stopped.append(f"postgres-{name}")
    if not quiet:
        console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return stopped


def _summary(info: Mapping[str, Any]) -> Table:
    table = Table(title=f"potluck cluster: {info.get('lb', {}).get('url')}", title_justify="left")
    for column in ("component", "endpoint", "pid", "state"):
        table.add_column(column, overflow="fold")

    def row(name: str, node: Mapping[str, Any], endpoint: str) -> None:
        state = "[green]up[/green]" if node.get("healthy", True) else "[red]down[/red]"
        table.add_row(name, endpoint, str(node.get("pid")), state)

    row("nginx (lb)", info["lb"], info["lb"]["url"])
    for node in info["api"]:
        row(node["name"], node, node["url"])
    for role in BACKGROUND_ROLES:
        if role in info:
            row(f"celery {role}", info[role], info[role]["log"])
    pg = info["postgres"]
    for node in [pg["primary"], *pg["replicas"]]:
        row(f"postgres {node['name']}", node, node["dsn"])
    for role in REDIS_ROLES:
        row(f"redis {role}", info["redis"][role], info["redis"][role]["url"])
    return table


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _bring_up(
    layout: Layout,
    *,
    api_count: int,
    replica_count: int,
    lb_port: int,
    seed_args: Sequence[str] | None,
) -> dict[str, Any]:
    previous = load_cluster_json(layout)
    for tool in ("initdb", "pg_ctl", "pg_basebackup", "psql", "pg_isready"):
        if not (PG_BIN / tool).exists():
            raise ClusterError(f"{PG_BIN / tool} not found: install postgresql-15 (or set POTLUCK_PG_BIN)")
    for tool in ("redis-server", "nginx"):
        if shutil.which(tool) is None:
            raise ClusterError(f"{tool} not found on PATH: install it (apt-get install {tool.split('-')[0]})")

    with _step("stop leftovers of an earlier run"):
        _stop_all(layout, quiet=True)
    if not port_is_free(lb_port):
        raise ClusterError(f"port {lb_port} on {HOST} is in use: stop what holds it, or pass --lb-port")

    replica_names = [f"r{i}" for i in range(1, replica_count + 1)]
    api_names = [f"api-{i}" for i in range(1, api_count + 1)]
    names = ["primary", *replica_names, *(f"redis-{r}" for r in REDIS_ROLES), *api_names]
    ports = assign_ports(names, _previous_ports(previous), avoid=[lb_port])
    secret = _secret(layout)
    started = time.monotonic()

    pg_pids: dict[str, int] = {}
    cold = not (layout.pg_data("primary") / "PG_VERSION").exists()
    with _step(f"PostgreSQL primary ({'initdb' if cold else 'existing data'}) on port {ports['primary']}"):
        if cold:
            _pg_init_primary(layout)
        pg_pids["primary"] = _pg_start(layout, "primary", ports["primary"])
        exists = _psql(ports["primary"], f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
        if not exists:
            _psql(ports["primary"], f"CREATE DATABASE {DB_NAME}", what=f"create database {DB_NAME}")
    extra = [n for n in layout.replica_names() if n not in replica_names]
    if extra:
        console.print(
            f"[yellow]note[/yellow]: replica data dirs {', '.join(extra)} exist but --replicas {replica_count}: "
            "left stopped; their slots keep WAL on the primary (down --purge, or up with more replicas)"
        )
    for name in replica_names:
        new = not (layout.pg_data(name) / "PG_VERSION").exists()
        with _step(f"PostgreSQL replica {name} ({'pg_basebackup' if new else 'existing data'}) on port {ports[name]}"):
            if new:
                _pg_create_replica(layout, name, ports["primary"])
            pg_pids[name] = _pg_start(layout, name, ports[name])
            _pg_follow(layout, name, ports[name], ports["primary"])
    with _step("replication streaming"):
        _pg_wait_streaming(layout, ports["primary"], replica_names)

    redis_pids: dict[str, int] = {}
    for role in REDIS_ROLES:
        with _step(f"Redis {role} on port {ports[f'redis-{role}']}"):
            redis_pids[role] = _redis_start(layout, role, ports[f"redis-{role}"])

    settings_env = api_env(
        primary_port=ports["primary"],
        replica_ports=[ports[n] for n in replica_names],
        cache_port=ports["redis-cache"],
        coord_port=ports["redis-coord"],
        data_dir=layout.data,
        secret=secret,
    )
    env = {**os.environ, **settings_env}
    potluck = _potluck_command()
    # Plain tracebacks: a failure's last lines (all the error message keeps) then name the exception.
    tool_env = {**env, "_TYPER_STANDARD_TRACEBACK": "1"}
    with _step("migrate the database"):
        _run([*potluck, "migrate"], what="potluck migrate", env=tool_env, timeout=600)
    # The API processes start before the seed runs: their imports and the seeding overlap. Nothing reaches
    # them before nginx starts, after the seed.
    procs: list[tuple[dict[str, Any], subprocess.Popen[bytes]]] = []
    with _step(f"start {api_count} API process(es)"):
        for index, name in enumerate(api_names, start=1):
            port = ports[name]
            log = layout.api_log(index)
            args = [*potluck, "serve", "--host", HOST, "--port", str(port)]
            proc = _spawn(args, log=log, pid_file=layout.api_pid(index), env=env)
            url = f"http://{HOST}:{port}"
            node: dict[str, Any] = {"name": name, "url": url, "port": port, "pid": proc.pid, "log": str(log)}
            procs.append((node, proc))

    background: dict[str, dict[str, Any]] = {}
    with _step("start the Celery worker and beat"):
        for role in BACKGROUND_ROLES:
            log = layout.background_log(role)
            proc = _spawn([*potluck, role], log=log, pid_file=layout.background_pid(role), env=env)
            background[role] = {"pid": proc.pid, "log": str(log), "proc": proc}

    if seed_args is not None:
        with _step("seed demo data (if empty)"):
            seed_command = [*potluck, "seed", *seed_args, "--if-empty"]
            result = _run(seed_command, what="potluck seed", env=tool_env, timeout=3600, check=False)
            if result.returncode != 0:
                if "No such command" not in result.stderr:
                    raise _failure(f"potluck seed: exit code {result.returncode}", output=result.stdout + result.stderr)
                console.print("[yellow]note[/yellow]: this build has no `potluck seed` command; skipped")

    api_nodes: list[dict[str, Any]] = []
    with _step(f"{api_count} API process(es) ready"):
        for node, proc in procs:
            ready = f"{node['url']}/readyz"
            logs = [Path(node["log"])]
            _wait_until(_answers_200(ready), what=f"{node['name']} {ready}", timeout=90, proc=proc, logs=logs)
            api_nodes.append(node)

    with _step("Celery worker ready"):
        worker_log = Path(background["worker"]["log"])
        _wait_until(
            lambda: b" ready." in worker_log.read_bytes(),
            what="celery worker",
            timeout=90,
            proc=background["worker"]["proc"],
            logs=[worker_log, Path(background["beat"]["log"])],
        )
        for node in background.values():
            node.pop("proc")

    # The worker's own warm-up ran as it started, before the seed: warm again now that there is data.
    with _step("warm the cache"):
        result = _run([*potluck, "warm-cache"], what="potluck warm-cache", env=tool_env, timeout=300, check=False)
        if result.returncode != 0:
            console.print(
                f"[yellow]note[/yellow]: potluck warm-cache failed (exit {result.returncode}); "
                "the cache fills as it is read"
            )

    # Only now: nginx marks an upstream that refuses a connection as down for fail_timeout, so it must not see
    # the API processes before they listen.
    with _step(f"nginx load balancer on port {lb_port}"):
        nginx_pid = _nginx_start(layout, lb_port, [n["port"] for n in api_nodes])

    def pg_node(name: str) -> dict[str, Any]:
        port = ports[name]
        return {
            "name": name,
            "port": port,
            "url": pg_url(port),
            "dsn": pg_dsn(port),
            "pid": pg_pids[name],
            "data_dir": str(layout.pg_data(name)),
            "log": str(layout.pg_log(name)),
        }

    lb_url = f"http://{HOST}:{lb_port}"
    info: dict[str, Any] = {
        "state_dir": str(layout.root),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "startup_seconds": round(time.monotonic() - started, 2),
        "lb_url": lb_url,
        "lb": {"url": lb_url, "port": lb_port, "pid": nginx_pid, "conf": str(layout.nginx / "nginx.conf")},
        "nginx_pid": nginx_pid,
        **background,
        "api": api_nodes,
        "postgres": {"primary": pg_node("primary"), "replicas": [pg_node(n) for n in replica_names]},
        "redis": {
            role: {
                "port": ports[f"redis-{role}"],
                "url": redis_url(ports[f"redis-{role}"]),
                "pid": redis_pids[role],
                "conf": str(layout.deploy / "redis" / f"{role}.conf"),
                "log": str(layout.redis_log(role)),
            }
            for role in REDIS_ROLES
        },
        # What a process needs to join the cluster (a worker, a benchmark); the key is in secret_file.
        "env": api_env(
            primary_port=ports["primary"],
            replica_ports=[ports[n] for n in replica_names],
            cache_port=ports["redis-cache"],
            coord_port=ports["redis-coord"],
            data_dir=layout.data,
            secret=None,
        ),
        "secret_file": str(layout.secret_file),
    }
    _write_json(layout.cluster_json, info)
    return info


def _fail(exc: ClusterError) -> typer.Exit:
    console.print("[red]error:[/red]", end=" ")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@cluster_app.command()
def up(
    api: int = typer.Option(2, "--api", min=1, help="API processes behind nginx."),
    replicas: int = typer.Option(2, "--replicas", min=0, help="PostgreSQL streaming replicas."),
    lb_port: int = typer.Option(8080, "--lb-port", min=1, max=65535, help="Port of the nginx load balancer."),
    users: int = typer.Option(500, "--users", min=1, help="Demo users to seed."),
    recipes: int = typer.Option(5000, "--recipes", min=0, help="Demo recipes to seed."),
    seed: int = typer.Option(42, "--seed", help="Random seed of the demo data."),
    no_seed: bool = typer.Option(False, "--no-seed", help="Do not load demo data."),
) -> None:
    """Start everything (idempotent: a healthy cluster is left as it is). Existing data is reused."""
    try:
        layout = Layout.discover()
        status = cluster_status(layout)
        if status["up"]:
            console.print(_summary(status))
            counts = (len(status["api"]), len(status["postgres"]["replicas"]), status["lb"]["port"])
            if counts != (api, replicas, lb_port):
                console.print(
                    f"[yellow]note[/yellow]: already up with --api {counts[0]} --replicas {counts[1]} "
                    f"--lb-port {counts[2]}; run `potluck cluster down` first to change them"
                )
            return
        with _locked(layout):
            _prepare_state_dir(layout)
            seed_args = None if no_seed else ["--users", str(users), "--recipes", str(recipes), "--seed", str(seed)]
            began = time.monotonic()
            try:
                info = _bring_up(layout, api_count=api, replica_count=replicas, lb_port=lb_port, seed_args=seed_args)
            except BaseException:
                console.print(f"[red]cluster up failed[/red]; stopping what started. Logs stay in {layout.root}")
                try:
                    _stop_all(layout, quiet=True)
                except ClusterError as stop_error:
                    console.print(f"stopping failed too: {stop_error}", markup=False, soft_wrap=True)
                raise
        console.print(_summary(info))
        console.print(f"[green]up[/green] in {time.monotonic() - began:.1f}s; state in {layout.root}")
    except ClusterError as exc:
        raise _fail(exc) from None


@cluster_app.command()
def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete the state dir (databases, logs, secret)."),
) -> None:
    """Stop everything: nginx, Celery, the API processes, Redis, PostgreSQL. Data is kept unless --purge."""
    try:
        layout = Layout.discover()
        if not layout.root.exists():
            console.print(f"nothing to do: {layout.root} does not exist")
            return
        if not (layout.root / MARKER).exists():
            raise ClusterError(f"{layout.root} was not made by `potluck cluster`; not touching it")
        with _locked(layout), _step("stop the cluster"):
            _stop_all(layout)
        if purge:
            shutil.rmtree(layout.root)
            console.print(f"deleted {layout.root}")
        else:
            console.print(f"data kept in {layout.root} (`potluck cluster up` reuses it; --purge deletes it)")
    except ClusterError as exc:
        raise _fail(exc) from None


@cluster_app.command()
def status() -> None:
    """Print cluster.json with liveness (pids alive, endpoints healthy) as JSON; exit 1 unless all is up."""
    try:
        info = cluster_status(Layout.discover())
    except ClusterError as exc:
        raise _fail(exc) from None
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    if not info["up"]:
        raise typer.Exit(1)
