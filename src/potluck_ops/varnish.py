"""Varnish: the edge HTTP cache of `potluck cluster`, one varnishd per edge node, its VCL rendered from
deploy/varnish/potluck.vcl.template (surrogate-key purges with xkey, leases, nothing personal stored)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from potluck_ops.failures import OpsError
from potluck_ops.nginx import GatewayLimits, render_template
from potluck_ops.ports import HOST
from potluck_ops.processes import is_ours, read_pid, start_logged, stop_pidfile, wait_until

# The response header that carries surrogate keys: the API's POTLUCK_EDGE__KEY_HEADER and the VCL's, the same.
KEY_HEADER = "Surrogate-Key"
TEMPLATE = Path("varnish") / "potluck.vcl.template"
# Large enough for a page's surrogate keys (up to 100 recipes and their authors, ~45 bytes each).
# http_gzip_support off: the API encodes (br or gzip) and the edge stores each variant as is (the VCL normalises
# Accept-Encoding); Varnish's own gzip would rewrite every fetch to gzip.
PARAMETERS = (
    "http_resp_hdr_len=32k",
    "http_resp_size=128k",
    "workspace_backend=256k",
    "thread_pool_min=50",
    "http_gzip_support=off",
)
STORAGE = "malloc,256m"


def check_varnish() -> None:
    if shutil.which("varnishd") is None and not Path("/usr/sbin/varnishd").exists():
        raise OpsError("varnishd not found: install it (apt-get install varnish varnish-modules)")


def render_vcl(
    template: str,
    *,
    node_name: str,
    api_ports: Sequence[int],
    key_header: str = KEY_HEADER,
    max_connections: int = 0,
) -> str:
    """The VCL of edge node `node_name` over the API processes on `api_ports` (round robin, reads retried).
    `max_connections` > 0: the fetches one node sends each process at once (GatewayLimits.api_connections); a fetch
    that finds every process at its bound is answered 503 + Retry-After (vcl_backend_error)."""
    if not api_ports:
        raise OpsError("an edge node needs at least one API port")
    # No health probe: under overload a probe's timeout marked every process sick at once and the edge answered
    # 502 to everything (a 100/s load test on a loaded box). Like nginx's passive checks, a process that refuses
    # the connection is skipped by the retry in vcl_backend_error instead.
    backends = "\n".join(
        f'backend api_{port} {{\n    .host = "{HOST}";\n    .port = "{port}";\n'
        "    .connect_timeout = 1s;\n    .first_byte_timeout = 30s;\n    .between_bytes_timeout = 30s;\n"
        + (f"    .max_connections = {max_connections};\n" if max_connections else "")
        + "}"
        for port in api_ports
    )
    adds = "\n".join(f"    api.add_backend(api_{port});" for port in api_ports)
    values: Mapping[str, str] = {
        "backends": backends,
        "director_adds": adds,
        "key_header": key_header,
        "node_name": node_name,
    }
    return render_template(template, values)


def varnish_args(workdir: Path, port: int, vcl: Path) -> list[str | Path]:
    # -F: stay in the foreground (the pid file is ours); -j none: no privilege separation (runs as the caller);
    # -T none: no management port (nothing here needs varnishadm); -n: shared memory log for varnishncsa.
    args: list[str | Path] = ["varnishd", "-F", "-j", "none", "-T", "none", "-n", workdir]
    args += ["-a", f"{HOST}:{port}", "-f", vcl, "-s", STORAGE]
    for parameter in PARAMETERS:
        args += ["-p", parameter]
    return args


def purge_url(port: int) -> str:
    return f"http://{HOST}:{port}/"


def answers_purge(port: int) -> bool:
    request = urllib.request.Request(purge_url(port), method="PURGE")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_varnish(
    deploy: Path, root: Path, name: str, port: int, api_ports: Sequence[int], env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Render `root/<name>.vcl`, start varnishd on HOST:port and wait until it answers a PURGE."""
    check_varnish()
    root.mkdir(parents=True, exist_ok=True)
    vcl = root / f"{name}.vcl"
    bound = GatewayLimits.from_env(env).api_connections
    template = (deploy / TEMPLATE).read_text()
    vcl.write_text(render_vcl(template, node_name=name, api_ports=api_ports, max_connections=bound))
    log = root / f"{name}.log"
    workdir = root / name
    workdir.mkdir(exist_ok=True)
    proc = start_logged(varnish_args(workdir, port, vcl), log=log, pid_file=root / f"{name}.pid", env=env)
    wait_until(lambda: answers_purge(port), what=f"varnish {name} on port {port}", timeout=30, proc=proc, logs=[log])
    return proc


# Every client read the node answered (purges left out), as `<handling> <method> <path>`: the worker counts recipe
# hits as views (the API never sees them) and every line into the hit ratio by route family (potluck.stats.edge_views).
ACCESS_QUERY = 'ReqMethod eq "GET" or ReqMethod eq "HEAD"'
ACCESS_FORMAT = "%{Varnish:handling}x %m %U"


def hit_log(root: Path, name: str) -> Path:
    return root / f"{name}.hits"


# A node's varnishncsa pid file is `<node>-ncsa.pid`, beside the node's own `<node>.pid`.
NCSA_SUFFIX = "-ncsa"


def hit_log_writer(root: Path, name: str) -> Path:
    """Node `name`'s varnishncsa pid file, which the worker signals to rotate its hit log (VIEW_LOG_WRITERS)."""
    return root / f"{name}{NCSA_SUFFIX}.pid"


def start_hit_log(root: Path, name: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """varnishncsa on node `name`'s shared memory log, writing every client read to hit_log(root, name), which the
    worker ships to the view counts and the edge request counters (potluck.stats.edge_views)."""
    # -D: a daemon, because only a daemon reopens its -w file on SIGHUP (in the foreground SIGHUP ends it); -P:
    # its own pid file (the started process exits once it has forked).
    pid_file = hit_log_writer(root, name)
    args: list[str | Path] = ["varnishncsa", "-n", root / name, "-w", hit_log(root, name), "-D", "-P", pid_file]
    args += ["-q", ACCESS_QUERY, "-F", ACCESS_FORMAT]
    return start_logged(args, log=root / f"{name}-ncsa.log", env=env)


def rotate_hit_log(root: Path, name: str) -> bool:
    """What logrotate does with Debian's varnishncsa: rename node `name`'s request log to `<log>.1` (replacing the
    previous generation) and SIGHUP its varnishncsa, which reopens the path. The worker's shipper finishes `.1`
    from where it was, then starts the new file (potluck.stats.edge_views.where_to_read): nothing counted twice
    or lost, as long as rotations are further apart than shipping runs (1 s). The worker's `stats.rotate_edge_logs`
    job does the same on a schedule, and only once `.1` is shipped; this is the by-hand version."""
    log = hit_log(root, name)
    pid = read_pid(hit_log_writer(root, name))
    if not log.exists() or pid is None or not is_ours(pid, b"varnishncsa", str(root / name).encode()):
        return False
    os.replace(log, log.with_name(log.name + ".1"))
    os.kill(pid, signal.SIGHUP)
    return True


def stop_varnish(root: Path, name: str) -> bool:
    stop_pidfile(hit_log_writer(root, name), [b"varnishncsa", str(root / name).encode()], timeout=10)
    return stop_pidfile(root / f"{name}.pid", [b"varnishd", str(root / name).encode()], timeout=10)
