"""nginx: the load balancer of `potluck cluster`, its config rendered from deploy/nginx/nginx.conf.template."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout
from potluck_ops.ports import HOST
from potluck_ops.processes import http_status, is_ours, pid_alive, read_pid, run, terminate, wait_exit, wait_until

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


def render_nginx_conf(template: str, *, nginx_dir: Path, lb_port: int, api_ports: Sequence[int]) -> str:
    """nginx.conf for a load balancer on HOST:lb_port over the API processes on `api_ports`."""
    if not api_ports:
        raise OpsError("nginx needs at least one API port")
    # fail_timeout is short on purpose: a process marked down is retried after 2 s, not nginx's default 10 s;
    # max_fails=3: one failed attempt (a timeout under load) does not take it out.
    servers = "\n".join(f"        server {HOST}:{port} max_fails=3 fail_timeout=2s;" for port in api_ports)
    return render_template(
        template, {"nginx_dir": str(nginx_dir), "listen": f"{HOST}:{lb_port}", "upstream_servers": servers}
    )


def _nginx_args(layout: Layout) -> list[str | Path]:
    # -p: prefix for relative paths; -e: the error log used before the config is read (else /var/log/nginx).
    return ["nginx", "-p", f"{layout.nginx}/", "-e", layout.nginx / "error.log", "-c", layout.nginx / "nginx.conf"]


def start_nginx(layout: Layout, lb_port: int, api_ports: Sequence[int]) -> int:
    """Render the config, check it, start nginx (it daemonizes) and wait for /healthz through it; its pid."""
    (layout.nginx / "tmp").mkdir(parents=True, exist_ok=True)
    (layout.nginx / "conf.d").mkdir(exist_ok=True)  # more servers (tls-server.conf.template), included
    template = (layout.deploy / "nginx" / "nginx.conf.template").read_text()
    conf = render_nginx_conf(template, nginx_dir=layout.nginx, lb_port=lb_port, api_ports=api_ports)
    (layout.nginx / "nginx.conf").write_text(conf)
    logs = [layout.nginx / "error.log"]
    run([*_nginx_args(layout), "-t", "-q"], what="nginx -t", logs=logs)
    run(_nginx_args(layout), what=f"start nginx on port {lb_port}", logs=logs, new_session=True)
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
    result = run([*_nginx_args(layout), "-s", "quit"], what="nginx -s quit", check=False)
    if result.returncode != 0 or not wait_exit(pid, 15):
        terminate(pid, timeout=5)
    pid_file.unlink(missing_ok=True)
    return True
