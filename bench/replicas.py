"""Read throughput of an uncached, read-heavy endpoint with 0, 1 and 2 replicas, in one run; and what the
read-your-writes check costs.

    uv run python -m bench.replicas --recipes 5000 --duration 15

Starts a real PostgreSQL primary with two streaming replicas (tests.harness), seeds it, then for each replica
count runs two API processes (one per core) with the cache disabled, and drives `GET /api/v1/recipes`
(a keyset page with its authors, the list endpoint is not cached) with wrk, one wrk per API process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from tests.harness import PgCluster

from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from potluck_ops.ports import free_port

console = Console()
RESULTS = Path(__file__).parent / "results"


@dataclass
class Result:
    scenario: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def start_api(env: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (log_dir / f"api-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "potluck.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"API on {port} did not start; see {log_dir}")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(ports: list[int], path: str, duration: int, connections: int, headers: dict[str, str]) -> Result:
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    procs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                *header_args,
                f"http://127.0.0.1:{p}{path}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in ports
    ]
    outputs = [p.communicate()[0] for p in procs]
    for output in outputs:
        if "Requests/sec" not in output or not re.search(r"^\s+99%\s+[\d.]+[a-z]+\s*$", output, re.MULTILINE):
            raise RuntimeError(f"unexpected wrk output:\n{output}")
    rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outputs)  # type: ignore[union-attr]
    p50 = max(_ms(re.search(r"^\s+50%\s+(\S+)\s*$", o, re.MULTILINE).group(1)) for o in outputs)  # type: ignore[union-attr]
    p99 = max(_ms(re.search(r"^\s+99%\s+(\S+)\s*$", o, re.MULTILINE).group(1)) for o in outputs)  # type: ignore[union-attr]
    errors = sum(int(m.group(1)) for o in outputs if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", o)))
    return Result("", rps, p50, p99, errors)


async def migrate(url: str) -> None:
    engine = create_engine(url, DatabaseSettings())
    await upgrade(engine)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16, help="per API process")
    args = parser.parse_args()
    command = "uv run python -m bench.replicas " + shlex.join(sys.argv[1:])
    log_dir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    results: list[Result] = []
    with PgCluster(replicas=2) as pg:
        primary = pg.dsn("primary")
        replicas = [pg.dsn(i) for i in range(2)]
        asyncio.run(migrate(primary))
        env = {
            **os.environ,
            "POTLUCK_DATABASE__URL": primary,
            "POTLUCK_AUTH__SECRET_KEY": "bench-secret-key-long-enough-for-hs256",
            "POTLUCK_CACHE__ENABLED": "false",
            "POTLUCK_DATA_DIR": str(log_dir),
        }
        console.print(f"seeding {args.recipes} recipes")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "potluck.cli.main",
                "seed",
                "--users",
                str(max(100, args.recipes // 10)),
                "--recipes",
                str(args.recipes),
                "--seed",
                "11",
            ],
            env=env,
            check=True,
        )
        pg.psql("ANALYZE")
        pg.wait_replicas_caught_up()
        path = "/api/v1/recipes?limit=20"
        for n in (0, 1, 2):
            scenario_env = {**env, "POTLUCK_DATABASE__REPLICA_URLS": json.dumps(replicas[:n])}
            apis = [start_api(scenario_env, log_dir) for _ in range(2)]
            ports = [port for _, port in apis]
            try:
                run_wrk(ports, path, 3, args.connections, {})  # warm-up
                result = run_wrk(ports, path, args.duration, args.connections, {})
                result.scenario = f"{n} replica{'s' if n != 1 else ''}"
                results.append(result)
                console.print(result)
                if n == 2:
                    # Read-your-writes: a token the replicas have replayed (the check passes, a replica answers)
                    # and one from the future (no replica qualifies, the primary answers).
                    lsn = pg.psql("SELECT pg_current_wal_lsn()")
                    pg.wait_replicas_caught_up()
                    for label, token in (("2 replicas, token replayed", lsn), ("2 replicas, token ahead", "FF/0")):
                        r = run_wrk(ports, path, args.duration, args.connections, {"X-Potluck-Consistency": token})
                        r.scenario = label
                        results.append(r)
                        console.print(r)
            finally:
                for proc, _ in apis:
                    proc.terminate()
                    proc.wait(10)
    base = results[0].requests_per_second
    table = Table(title=command)
    for col in ("scenario", "req/s", "vs 0 replicas", "p50 ms", "p99 ms", "non-2xx"):
        table.add_column(col)
    lines = [
        f"`{command}`",
        "",
        "| scenario | req/s | vs 0 replicas | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = r.requests_per_second / base
        table.add_row(
            r.scenario,
            f"{r.requests_per_second:.0f}",
            f"{ratio:.2f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            str(r.errors),
        )
        cells = [r.scenario, f"{r.requests_per_second:.0f}", f"{ratio:.2f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}"]
        lines.append("| " + " | ".join([*cells, str(r.errors)]) + " |")
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replicas.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
