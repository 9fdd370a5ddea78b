"""nginx: the load balancer of `potluck cluster`, its config rendered from deploy/nginx/nginx.conf.template."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout, find_repo_root
from potluck_ops.ports import HOST, free_port
from potluck_ops.processes import http_status, is_ours, pid_alive, read_pid, run, terminate, wait_exit, wait_until

GATEWAY_ENV_PREFIX = "POTLUCK_GATEWAY__"
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
        raise OpsError(f"template placeholders without a value: {', '.join(sorted(missing))}")
    return rendered


# nginx's own bounds: a limit_conn number is 1..65535 ("connection limit must be less 65536"), limit_req rates and
# bursts at least 1 (`nginx -t` refuses 0). Checked here, so a bad value names its variable before anything starts.
MAX_CONNECTIONS = 65535


def env_name(field: str) -> str:
    return f"{GATEWAY_ENV_PREFIX}{field.upper()}"


class GatewayLimits(BaseModel):
    """The gateway's rate limits (nginx limit_req / limit_conn), from POTLUCK_GATEWAY__* or these defaults.

    Per address: what one client (an office behind one NAT at most) may send; per token: one signed-in user.
    Bursts absorb a page's parallel requests; beyond rate + burst a client gets 429 at once (nodelay)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address_rate: int = Field(default=200, ge=1)
    address_burst: int = Field(default=400, ge=1)
    token_rate: int = Field(default=50, ge=1)
    token_burst: int = Field(default=100, ge=1)
    address_connections: int = Field(default=200, ge=1, le=MAX_CONNECTIONS)
    # Admission at the gateway: the requests each API process is handed at once (nginx `max_conns` on each API
    # server, Varnish `.max_connections` on each edge backend). A request that finds every process at its bound is
    # answered 503 problem+json + Retry-After by the gateway at once, costing no API CPU, instead of queueing in
    # front of a saturated process (docs/capacity.md, "Overload"). 0: no bound (the API's max_in_flight only).
    api_connections: int = Field(default=0, ge=0, le=MAX_CONNECTIONS)
    # Addresses whose X-Forwarded-For is believed (the load balancers in front); loopback locally.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewayLimits:
        """The limits POTLUCK_GATEWAY__<FIELD> set in `env`; OpsError naming the variable for a value nginx would
        refuse (or that is no number)."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(env_name(name))
            if raw is None:
                continue
            if name == "trusted_proxies":
                values[name] = tuple(x.strip() for x in raw.split(",") if x.strip())
            else:
                values[name] = raw
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{env_name(str(error['loc'][0]))}={values.get(str(error['loc'][0]))!r}: {error['msg']}"
                for error in exc.errors()
            )
            raise OpsError(f"gateway limits: {problems}") from None

    def policy(self) -> str:
        """The IETF httpapi RateLimit-Policy value: quota q per window w seconds, one item per limit."""
        return f'"address";q={self.address_rate};w=1, "token";q={self.token_rate};w=1'

    def template_values(self) -> dict[str, str]:
        real_ip = "\n".join(f"    set_real_ip_from {address};" for address in self.trusted_proxies)
        if real_ip:
            real_ip += "\n    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;"
        return {
            "real_ip": real_ip,
            "address_rate": str(self.address_rate),
            "address_burst": str(self.address_burst),
            "token_rate": str(self.token_rate),
            "token_burst": str(self.token_burst),
            "address_connections": str(self.address_connections),
            "rate_limit_policy": self.policy().replace('"', '\\"'),
            "rate_limit_now": '\\"address\\";r=0;t=1',
        }


def _servers(ports: Sequence[int], max_conns: int = 0) -> str:
    # fail_timeout is short on purpose: a process marked down is retried after 2 s, not nginx's default 10 s;
    # max_fails=3: one failed attempt (a timeout under load) does not take it out. max_conns: GatewayLimits.
    bound = f" max_conns={max_conns}" if max_conns else ""
    return "\n".join(f"        server {HOST}:{port} max_fails=3 fail_timeout=2s{bound};" for port in ports)


def render_nginx_conf(
    template: str,
    *,
    nginx_dir: Path,
    lb_port: int,
    api_ports: Sequence[int],
    edge_ports: Sequence[int] = (),
    limits: GatewayLimits | None = None,
) -> str:
    """nginx.conf for a load balancer on HOST:lb_port over the edge nodes on `edge_ports` (anonymous reads) and
    the API processes on `api_ports` (the rest; everything when there is no edge)."""
    if not api_ports:
        raise OpsError("nginx needs at least one API port")
    limits = limits or GatewayLimits()
    values = {
        "nginx_dir": str(nginx_dir),
        "listen": f"{HOST}:{lb_port}",
        "upstream_servers": _servers(api_ports, limits.api_connections),
        "edge_servers": _servers(edge_ports) if edge_ports else _servers(api_ports, limits.api_connections),
        **limits.template_values(),
    }
    return render_template(template, values)


@contextmanager
def standalone_gateway(root: Path, api_ports: Sequence[int], limits: GatewayLimits) -> Iterator[str]:
    """nginx from the deploy template over `api_ports` alone, in `root`, no cluster around it: its URL while the
    block runs, stopped after. For the tests and benchmarks of the gateway's own rules (rate limits, admission)
    in front of a stub upstream."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # nginx's workers run as another user when the master is root
    port = free_port()
    template = (find_repo_root() / "deploy" / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(template, nginx_dir=root, lb_port=port, api_ports=api_ports, limits=limits)
    (root / "nginx.conf").write_text(conf)
    logs = [root / "error.log"]
    args = _nginx_args(root)
    run(args, what=f"start nginx on port {port}", logs=logs)
    url = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/healthz") == 200, what=f"nginx {url}", timeout=20, logs=logs)
        yield url
    finally:
        run([*args, "-s", "quit"], what="stop nginx", logs=logs, check=False)


def _nginx_args(nginx_dir: Path) -> list[str | Path]:
    # -p: prefix for relative paths; -e: the error log used before the config is read (else /var/log/nginx).
    return ["nginx", "-p", f"{nginx_dir}/", "-e", nginx_dir / "error.log", "-c", nginx_dir / "nginx.conf"]


def start_nginx(
    layout: Layout,
    lb_port: int,
    api_ports: Sequence[int],
    edge_ports: Sequence[int] = (),
    limits: GatewayLimits | None = None,
) -> int:
    """Render the config, check it, start nginx (it daemonizes) and wait for /healthz through it; its pid."""
    (layout.nginx / "tmp").mkdir(parents=True, exist_ok=True)
    (layout.nginx / "conf.d").mkdir(exist_ok=True)  # more servers (tls-server.conf.template), included
    template = (layout.deploy / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(
        template, nginx_dir=layout.nginx, lb_port=lb_port, api_ports=api_ports, edge_ports=edge_ports, limits=limits
    )
    (layout.nginx / "nginx.conf").write_text(conf)
    logs = [layout.nginx / "error.log"]
    run([*_nginx_args(layout.nginx), "-t", "-q"], what="nginx -t", logs=logs)
    run(_nginx_args(layout.nginx), what=f"start nginx on port {lb_port}", logs=logs, new_session=True)
    pid_file = layout.nginx / "nginx.pid"
    wait_until(lambda: read_pid(pid_file) is not None, what="nginx pid file", timeout=10, logs=logs)
    url = f"http://{HOST}:{lb_port}/healthz"
    wait_until(lambda: http_status(url) == 200, what=f"nginx {url}", timeout=30, logs=logs)
    pid = read_pid(pid_file)
    assert pid is not None
    return pid


def stop_nginx(layout: Layout) -> bool:
    """Graceful quit (the requests in flight finish), SIGTERM when that hangs; whether it was running."""
    pid_file = layout.nginx / "nginx.pid"
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid) or not is_ours(pid, b"nginx", bytes(layout.nginx)):
        pid_file.unlink(missing_ok=True)
        return False
    result = run([*_nginx_args(layout.nginx), "-s", "quit"], what="nginx -s quit", check=False)
    if result.returncode != 0 or not wait_exit(pid, 15):
        terminate(pid, timeout=5)
    pid_file.unlink(missing_ok=True)
    return True
