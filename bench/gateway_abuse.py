"""One abusive client against the gateway's rate limits: everyone else's p99 with the limits on vs off.

A real nginx renders deploy/nginx/nginx.conf.template (potluck_ops.nginx) in front of a stub upstream that spends
`--work-ms` of CPU per request (an API process's cost, without the rest of the stack). Each phase runs, at once:

* the abuser: wrk, 64 connections, every request from one client address (X-Forwarded-For, trusted from loopback);
* everyone else: `--clients` addresses, each at `--rate` requests/s (open loop: a late answer does not slow the
  next request), whose latencies are recorded.

Phase "limited" uses the defaults (200 r/s per address, burst 400); phase "unlimited" raises them beyond reach.
Prints the others' p50/p99 and errors, and the abuser's successes and 429s per phase; the ratio of the others'
p99 (unlimited / limited) is the figure. Everything shares the machine's cores.

    flock /tmp/potluck-measure.lock uv run python -m bench.gateway_abuse --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import multiprocessing
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from potluck_ops.nginx import GatewayLimits, standalone_gateway
from potluck_ops.ports import free_port

_DONE = re.compile(r"(\d+) requests in ([\d.]+)s")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class _Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    work_ms = 2.0

    def do_GET(self) -> None:
        until = time.thread_time() + self.work_ms / 1000
        while time.thread_time() < until:
            pass
        body = b'{"items":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # wrk closing its connections at the end: broken pipes, nothing to report


def _serve(port: int, work_ms: float) -> None:
    _Stub.work_ms = work_ms
    _Server(("127.0.0.1", port), _Stub).serve_forever()


def stub_upstream(work_ms: float) -> tuple[multiprocessing.Process, int]:
    """In its own process: its CPU (and GIL) is not the measuring client's."""
    port = free_port()
    proc = multiprocessing.Process(target=_serve, args=(port, work_ms), daemon=True)
    proc.start()
    return proc, port


def abuser(url: str, duration: int) -> tuple[int, int]:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{duration}s", "-H", "X-Forwarded-For: 198.51.100.66", f"{url}/api/v1/recipes"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done, failed = _DONE.search(out), _NON_2XX.search(out)
    total = int(done.group(1)) if done else 0
    refused = int(failed.group(1)) if failed else 0
    return total - refused, refused


async def others(url: str, clients: int, rate: float, duration: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0

    async def one(client: httpx.AsyncClient, address: str) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            response = await client.get("/api/v1/recipes", headers={"X-Forwarded-For": address})
            if response.status_code != 200:
                errors += 1
        except httpx.HTTPError:
            errors += 1
        latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=10, limits=httpx.Limits(max_connections=200)) as client:
        tasks: list[asyncio.Task[None]] = []
        end = time.monotonic() + duration
        tick = 1 / (rate * clients)
        n = 0
        while time.monotonic() < end:
            address = f"203.0.113.{n % clients + 1}"
            tasks.append(asyncio.create_task(one(client, address)))
            n += 1
            await asyncio.sleep(tick)
        await asyncio.gather(*tasks)
    return latencies, errors


def phase(name: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    result: dict[str, tuple[int, int]] = {}
    thread = threading.Thread(target=lambda: result.setdefault("abuser", abuser(url, args.duration)))
    thread.start()
    time.sleep(1)  # the abuser at full speed first
    latencies, errors = asyncio.run(others(url, args.clients, args.rate, args.duration - 2))
    thread.join()
    q = statistics.quantiles(latencies, n=100)
    ok, refused = result["abuser"]
    row = {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "errors": errors, "n": len(latencies)}
    print(
        f"{name:10} others: n={len(latencies)} p50={row['p50_ms']:.1f} ms p99={row['p99_ms']:.1f} ms "
        f"errors={errors}   abuser: {ok / args.duration:.0f} ok/s, {refused / args.duration:.0f} 429/s"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per other client")
    parser.add_argument("--work-ms", type=float, default=2.0, help="upstream CPU per request")
    args = parser.parse_args()
    upstream, upstream_port = stub_upstream(args.work_ms)
    rows = {}
    try:
        for name, limits in (
            ("limited", GatewayLimits()),
            ("unlimited", GatewayLimits(address_rate=1_000_000, address_burst=1_000_000, address_connections=10_000)),
        ):
            with tempfile.TemporaryDirectory(prefix=f"gateway-{name}-") as tmp:
                with standalone_gateway(Path(tmp), [upstream_port], limits) as url:
                    rows[name] = phase(name, url, args)
                time.sleep(0.5)
    finally:
        upstream.terminate()
        upstream.join(5)
    ratio = rows["unlimited"]["p99_ms"] / rows["limited"]["p99_ms"]
    print(f"others' p99, unlimited / limited: {ratio:.1f}x")


if __name__ == "__main__":
    main()
