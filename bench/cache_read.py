"""What the recipe cache buys: `GET /api/v1/recipes/{id}`, Zipf-distributed ids, warm vs uncached vs ceiling.

One run, one machine, three scenarios measured the same way (a warm-up, then a timed wrk run):

* warm:     two API processes (one per core) with the cache on: in-process first tier + Redis second tier;
* uncached: the same two processes with ``POTLUCK_CACHE__ENABLED=false``;
* ceiling:  ``bench/ceiling_app.py``, bare FastAPI returning the same bytes from a dict, two processes;
* asyncpg:  ``bench/asyncpg_app.py``, bare FastAPI + raw asyncpg, PostgreSQL builds the same document in one
            query per request (what an uncached read could cost at best), two processes.

Each API process gets its own wrk instance (``-t1``) and the results are added; latency percentiles come from
the instances' latency distributions, merged (bench/wrk/zipf_get.lua writes them). PostgreSQL, Redis, the
servers and wrk all share the machine's cores. The warm scenario's hit rate is read from the processes'
``/metrics`` before and after the timed run.

    uv run python -m bench.cache_read --recipes 10000 --duration 20
    uv run --with py-spy python -m bench.cache_read --profile 8     # also sample one warm API process
    uv run python -m bench.cache_read --signed-in                   # also signed-in warm reads (issue 18)

Prints a Rich table and a Markdown table (headed with the command line) and writes bench/results/cache-read.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from tests.harness import PgCluster, RedisServer

from potluck_ops.failures import tail
from potluck_ops.ports import free_port

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LUA_SCRIPT = BENCH_DIR / "wrk" / "zipf_get.lua"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "cache-read.json"
BIN_DIR = Path(sys.executable).parent  # the project's venv: `potluck` here is what `uv run potluck` runs
HOST = "127.0.0.1"
FAMILY = "recipe_detail"

GOAL_WARM_VS_UNCACHED = 10.0
GOAL_WARM_VS_CEILING = 0.70
GOAL_HIT_RATE = 0.97
GOAL_UNCACHED_API_CPU_US = 1_000.0
GOAL_UNCACHED_VS_ASYNCPG = 0.5  # uncached req/s at least half the raw asyncpg baseline's ("within 2x")
SCENARIOS = ("warm", "uncached", "asyncpg", "ceiling")

err = Console(stderr=True)
out = Console()


# --------------------------------------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


# API port -> the port of its internal listener, where /metrics is answered (potluck serve --metrics-port).
METRICS_PORTS: dict[int, int] = {}


def metrics_url(port: int) -> str:
    """/metrics of the API process on `port`."""
    return f"http://{HOST}:{METRICS_PORTS[port]}/metrics"


class Servers:
    """Child processes of this script, each in its own session; stopped by pid, never by name."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[Server] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], port: int) -> Server:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this script only; its finally stops them in order
            )
        server = Server(name, port, proc, log)
        self.running.append(server)
        return server

    def stop_all(self) -> None:
        servers, self.running = self.running, []
        for server in servers:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


def wait_ready(server: Server, *, timeout: float = 60, need_local_tier: bool = False) -> None:
    """Poll /readyz (and, for the warm scenario, until the first tier is switched on)."""
    deadline = time.monotonic() + timeout
    base = f"http://{HOST}:{server.port}"
    with httpx.Client(timeout=2) as client:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited (rc={server.proc.returncode}):\n{tail(server.log)}")
            try:
                if client.get(f"{base}/readyz").status_code == 200 and (
                    not need_local_tier
                    or _gauge(client.get(metrics_url(server.port)).text, "potluck_cache_local_enabled")
                ):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{tail(server.log)}")
            time.sleep(0.1)


def _gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


# --------------------------------------------------------------------------------------------- wrk


@dataclass
class WrkInstance:
    port: int
    requests: int
    duration_s: float
    errors: dict[str, int]
    # What wrk printed: the "Requests/sec" line and the --latency distribution, in milliseconds.
    printed_rps: float
    printed_latency_ms: dict[str, float]


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    instances: list[WrkInstance]
    wrk_cpu_s: float


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _parse_printed(text: str) -> tuple[float, dict[str, float]]:
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    latency = {
        pct: float(value) * _UNIT_MS[unit]
        for pct, value, unit in re.findall(r"^\s+(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    }
    return (float(rps_match.group(1)) if rps_match else 0.0), latency


def _percentile(weights: Mapping[int, float], pct: float) -> float:
    """The smallest latency (µs -> ms) whose cumulative weight reaches ``pct`` of the total (wrk's own rule)."""
    total = sum(weights.values())
    rank = pct / 100 * total
    seen = 0.0
    for value in sorted(weights):
        seen += weights[value]
        if seen >= rank - 1e-9 * total:
            return value / 1000
    return max(weights, default=0) / 1000


def run_wrk(
    ports: Sequence[int],
    *,
    duration: int,
    connections: int,
    ids_file: Path,
    zipf_s: float,
    seed: int,
    work_dir: Path,
    label: str,
    authorization: str | None = None,
    accept_encoding: str = "",
) -> WrkResult:
    """One wrk instance per port, all at once (-t1 -cN each); the results are added up."""
    procs: list[tuple[int, Path, subprocess.Popen[str]]] = []
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        for i, port in enumerate(ports):
            result_file = work_dir / f"wrk-{label}-{i}.txt"
            result_file.unlink(missing_ok=True)
            env = {
                **os.environ,
                "ZIPF_IDS_FILE": str(ids_file),
                "ZIPF_S": repr(zipf_s),
                "ZIPF_SEED": str(seed * 100 + i),
                "WRK_RESULT_FILE": str(result_file),
                "WRK_AUTHORIZATION": authorization or "",
                "WRK_ACCEPT_ENCODING": accept_encoding,
            }
            argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
            argv += ["-s", str(LUA_SCRIPT), f"http://{HOST}:{port}"]
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            procs.append((port, result_file, proc))
        printed = [proc.communicate(timeout=duration + 60)[0] for _, _, proc in procs]
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)

    # Each instance wrote its quantile function on a grid; the grid step times its request count is the weight
    # of that latency, so the instances merge into one distribution (exact up to the grid's resolution).
    weights: defaultdict[int, float] = defaultdict(float)
    instances: list[WrkInstance] = []
    for (port, result_file, proc), text in zip(procs, printed, strict=True):
        if proc.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"wrk against port {port} failed (rc={proc.returncode}):\n{text}")
        lines = result_file.read_text().splitlines()
        summary = dict(item.split("=") for item in lines[0].split()[1:])
        previous = 0.0
        for line in lines[1:]:
            pct_text, value = line.split()
            pct = float(pct_text)
            weights[int(value)] += (pct - previous) / 100 * int(summary["requests"])
            previous = pct
        printed_rps, printed_latency = _parse_printed(text)
        instances.append(
            WrkInstance(
                port=port,
                requests=int(summary["requests"]),
                duration_s=int(summary["duration_us"]) / 1e6,
                errors={k: int(summary[k]) for k in ("connect", "read", "write", "status", "timeout")},
                printed_rps=printed_rps,
                printed_latency_ms=printed_latency,
            )
        )
    return WrkResult(
        requests=sum(i.requests for i in instances),
        rps=sum(i.requests / i.duration_s for i in instances),
        p50_ms=_percentile(weights, 50),
        p90_ms=_percentile(weights, 90),
        p99_ms=_percentile(weights, 99),
        p999_ms=_percentile(weights, 99.9),
        max_ms=max(weights, default=0) / 1000,
        errors=sum(sum(i.errors.values()) for i in instances),
        instances=instances,
        wrk_cpu_s=wrk_cpu,
    )


# --------------------------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, *, with_children: bool = False) -> float:
    """CPU seconds of a process (utime + stime; plus its reaped children's when asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17.
    used = int(fields[11]) + int(fields[12])
    if with_children:
        used += int(fields[13]) + int(fields[14])
    return used / _TICK


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot; time stolen by the hypervisor counts as busy elsewhere."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal  # guest time is already inside user
    return busy, busy + idle + iowait


def background_load(seconds: float = 2.0) -> tuple[float, list[str]]:
    """Share of all cores busy over ``seconds`` before the run, and the processes that used the most of it."""

    def per_process() -> dict[int, float]:
        used = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                used[int(stat.parent.name)] = _proc_cpu(int(stat.parent.name))
        return used

    busy0, total0 = _machine_busy()
    procs0 = per_process()
    time.sleep(seconds)
    busy1, total1 = _machine_busy()
    procs1 = per_process()
    share = (busy1 - busy0) / max(1.0, total1 - total0)
    top = sorted(((procs1[pid] - procs0.get(pid, 0.0), pid) for pid in procs1), reverse=True)[:3]
    names = []
    for used, pid in top:
        if used / seconds < 0.05:
            continue
        with contextlib.suppress(OSError):
            cmd = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split())
            names.append(f"{used / seconds:.0%} pid {pid}: {cmd[:80]}")
    return share, names


def wait_for_quiet(max_wait: float, threshold: float = 0.10) -> dict[str, Any]:
    """Wait (up to ``max_wait`` s) until the machine is nearly idle: the load generator shares its cores."""
    deadline = time.monotonic() + max_wait
    while True:
        share, names = background_load()
        if share <= threshold or time.monotonic() >= deadline:
            break
        err.print(f"[yellow]machine {share:.0%} busy before the run; waiting[/yellow] " + "; ".join(names))
        time.sleep(5)
    if share > threshold:
        err.print(f"[red]machine still {share:.0%} busy: the numbers below share the cores with it[/red]")
    return {"busy_share_before_run": round(share, 3), "busiest_processes": names}


@dataclass
class CpuSnapshot:
    api: float
    redis: float
    postgres: float
    busy: float
    total: float


def cpu_snapshot(api_pids: Sequence[int], redis_pid: int | None, postmaster_pid: int) -> CpuSnapshot:
    busy, total = _machine_busy()
    postgres = _proc_cpu(postmaster_pid, with_children=True) + sum(_proc_cpu(p) for p in _children(postmaster_pid))
    return CpuSnapshot(
        api=sum(_proc_cpu(p) for p in api_pids),
        redis=_proc_cpu(redis_pid) if redis_pid else 0.0,
        postgres=postgres,
        busy=busy,
        total=total,
    )


# --------------------------------------------------------------------------------------------- cache metrics


def cache_counters(ports: Sequence[int]) -> dict[str, float]:
    """recipe_detail hits/misses per tier, summed over the API processes."""
    totals: dict[str, float] = defaultdict(float)
    with httpx.Client(timeout=5) as client:
        for port in ports:
            text = client.get(metrics_url(port)).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.labels.get("family") != FAMILY:
                        continue
                    if sample.name in ("potluck_cache_hits_total", "potluck_cache_misses_total"):
                        kind = "hits" if "hits" in sample.name else "misses"
                        totals[f"{kind}_{sample.labels['tier']}"] += sample.value
                    elif sample.name in ("potluck_cache_fills_total", "potluck_cache_lease_waits_total"):
                        totals[f"{sample.name.removeprefix('potluck_cache_')}_{sample.labels['outcome']}"] += (
                            sample.value
                        )
                    elif sample.name in ("potluck_cache_errors_total", "potluck_cache_bypasses_total"):
                        totals[sample.name.removeprefix("potluck_cache_")] += sample.value
                    elif sample.name == "potluck_cache_early_refreshes_total":
                        totals["early_refreshes_total"] += sample.value
    return dict(totals)


def hit_rate(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Requests answered from any tier / requests; every request asks the first tier first."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}
    l1_hits, l1_misses = delta.get("hits_l1", 0.0), delta.get("misses_l1", 0.0)
    l2_hits, l2_misses = delta.get("hits_l2", 0.0), delta.get("misses_l2", 0.0)
    requests = l1_hits + l1_misses
    return {
        "requests": requests,
        "l1_hits": l1_hits,
        "l1_misses": l1_misses,
        "l2_hits": l2_hits,
        "l2_misses": l2_misses,
        "hit_rate": (l1_hits + l2_hits) / requests if requests else 0.0,
        "l1_hit_rate": l1_hits / requests if requests else 0.0,
        # Second-tier misses: the reads that went on to the lease and the database.
        "database_loads": l2_misses,
        # First-tier misses that waited for another request of the same process for the same key (single flight).
        "shared_in_process": max(0.0, l1_misses - l2_hits - l2_misses),
        **{k: v for k, v in sorted(delta.items()) if k not in ("hits_l1", "misses_l1", "hits_l2", "misses_l2")},
    }


# --------------------------------------------------------------------------------------------- scenarios


@dataclass
class ScenarioResult:
    name: str
    description: str
    wrk: WrkResult
    cpu_seconds: dict[str, float]
    cpu_us_per_request: dict[str, float]
    machine_busy: float
    cache: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bench:
    args: argparse.Namespace
    work_dir: Path
    servers: Servers
    pg: PgCluster
    redis: RedisServer
    ids_file: Path
    docs_file: Path
    ids: list[str]
    # Signed-in scenarios: the Authorization header wrk sends, and the API processes' extra environment.
    authorization: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def api_env(self, *, cache_enabled: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POTLUCK_")}
        env.update(
            POTLUCK_DATABASE__URL=self.pg.dsn("primary"),
            POTLUCK_REDIS__URL=self.redis.url,
            POTLUCK_AUTH__SECRET_KEY="bench",
            POTLUCK_CACHE__ENABLED="true" if cache_enabled else "false",
            POTLUCK_DATA_DIR=str(self.work_dir / "data"),
        )
        env.update(self.extra_env)
        return env

    def start_api(self, *, cache_enabled: bool) -> list[Server]:
        tag = "warm" if cache_enabled else "uncached"
        started = []
        for i in range(self.args.processes):
            port = free_port()
            METRICS_PORTS[port] = free_port()
            argv = [str(BIN_DIR / "potluck"), "serve", "--host", HOST, "--port", str(port)]
            argv += ["--metrics-port", str(METRICS_PORTS[port])]
            started.append(self.servers.start(f"api-{tag}-{i}", argv, self.api_env(cache_enabled=cache_enabled), port))
        for server in started:
            wait_ready(server, need_local_tier=cache_enabled)
        return started

    def _start_bare(self, name: str, module: str, extra_env: Mapping[str, str]) -> list[Server]:
        """`self.args.processes` uvicorn processes of a bare app in bench/ (the ceiling, the asyncpg baseline)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("POTLUCK_")} | dict(extra_env)
        started = []
        for i in range(self.args.processes):
            port = free_port()
            # The same uvicorn options `potluck serve` passes.
            argv = [sys.executable, "-m", "uvicorn", f"{module}:app", "--host", HOST, "--port", str(port)]
            argv += ["--no-access-log", "--no-server-header", "--proxy-headers"]
            started.append(self.servers.start(f"{name}-{i}", argv, env, port))
        for server in started:
            wait_ready(server)
        return started

    def start_ceiling(self) -> list[Server]:
        return self._start_bare("ceiling", "bench.ceiling_app", {"POTLUCK_CEILING_DOCS": str(self.docs_file)})

    def start_asyncpg(self) -> list[Server]:
        dsn = self.pg.dsn("primary").replace("postgresql+asyncpg://", "postgresql://")
        return self._start_bare("asyncpg", "bench.asyncpg_app", {"POTLUCK_ASYNCPG_DSN": dsn})

    def wrk(self, ports: Sequence[int], duration: int, seed: int, label: str) -> WrkResult:
        return run_wrk(
            ports,
            duration=duration,
            connections=self.args.connections,
            ids_file=self.ids_file,
            zipf_s=self.args.zipf_s,
            seed=seed,
            work_dir=self.work_dir,
            label=label,
            authorization=self.authorization,
            accept_encoding=self.args.accept_encoding,
        )

    def scenario(
        self,
        name: str,
        description: str,
        start: Callable[[], list[Server]],
        *,
        cache_metrics: bool = False,
        prepare: Callable[[list[Server]], dict[str, Any]] | None = None,
        after: Callable[[list[Server], ScenarioResult], None] | None = None,
    ) -> ScenarioResult:
        err.rule(f"[bold]{name}[/bold]: {description}")
        background = wait_for_quiet(self.args.wait_idle)
        servers = start()
        try:
            ports = [s.port for s in servers]
            pids = [s.proc.pid for s in servers]
            prepared = prepare(servers) if prepare is not None else {}
            err.print(f"  warm-up {self.args.warmup:g} s (untimed) on ports {ports}")
            warm = self.wrk(ports, self.args.warmup, seed=1, label=f"{name}-warmup")
            if warm.errors:
                err.print(f"  [yellow]warm-up saw {warm.errors} errors[/yellow]")
            before = cache_counters(ports) if cache_metrics else None
            cpu_before = cpu_snapshot(pids, self.redis.pid, self.postmaster_pid())
            err.print(f"  timed run {self.args.duration:g} s, {self.args.connections} connections per process")
            timed = self.wrk(ports, self.args.duration, seed=2, label=name)
            cpu_after = cpu_snapshot(pids, self.redis.pid, self.postmaster_pid())
            cache = hit_rate(before, cache_counters(ports)) if before is not None else None
            cpu = {
                "api": cpu_after.api - cpu_before.api,
                "redis": cpu_after.redis - cpu_before.redis,
                "postgres": cpu_after.postgres - cpu_before.postgres,
                "wrk": timed.wrk_cpu_s,
            }
            # Whatever else kept the cores busy: kernel time not charged to a process, and other processes.
            cpu["other"] = max(0.0, (cpu_after.busy - cpu_before.busy) / _TICK - sum(cpu.values()))
            result = ScenarioResult(
                name=name,
                description=description,
                wrk=timed,
                cpu_seconds={k: round(v, 3) for k, v in cpu.items()},
                cpu_us_per_request={k: round(v / max(1, timed.requests) * 1e6, 1) for k, v in cpu.items()},
                machine_busy=round(
                    (cpu_after.busy - cpu_before.busy) / max(1.0, cpu_after.total - cpu_before.total), 3
                ),
                cache=cache,
                extra={"background": background, **prepared},
            )
            err.print(
                f"  {timed.rps:,.0f} req/s, p50 {timed.p50_ms:.2f} ms, p99 {timed.p99_ms:.2f} ms, "
                f"errors {timed.errors}, API CPU {result.cpu_us_per_request['api']:.0f} µs/request"
                + (f", hit rate {cache['hit_rate']:.4f}" if cache else "")
            )
            if cpu["other"] > 0.2 * self.args.duration * (os.cpu_count() or 1):
                err.print(
                    f"  [yellow]{cpu['other']:.1f} CPU-seconds went elsewhere: is something else running?[/yellow]"
                )
            if after is not None:
                after(servers, result)
            return result
        finally:
            self.servers.stop_all()

    def postmaster_pid(self) -> int:
        return int(self.pg.data_dir("primary").joinpath("postmaster.pid").read_text().split("\n", 1)[0])


# --------------------------------------------------------------------------------------------- setup steps


def run_cli(argv: Sequence[str], env: Mapping[str, str]) -> None:
    proc = subprocess.run(list(argv), env=dict(env), cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed (rc={proc.returncode})")


def export_ids(pg: PgCluster, path: Path) -> list[str]:
    """Public recipe ids, most viewed first: the Zipf ranks follow the seeded popularity, in the order the warm job
    ranks it (warming/repository.py: views, then favorites, then id)."""
    sql = "SELECT id FROM recipe WHERE is_public ORDER BY view_count DESC, favorite_count DESC, id"
    ids = pg.psql(sql).split()
    path.write_text("\n".join(ids) + "\n")
    return ids


async def _fetch_documents(ports: Sequence[int], ids: Sequence[str], concurrency: int = 16) -> dict[str, bytes]:
    docs: dict[str, bytes] = {}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=10) as client:

        async def fetch(i: int, recipe_id: str) -> None:
            async with gate:
                response = await client.get(f"http://{HOST}:{ports[i % len(ports)]}/api/v1/recipes/{recipe_id}")
            response.raise_for_status()
            docs[recipe_id] = response.content

        await asyncio.gather(*(fetch(i, rid) for i, rid in enumerate(ids)))
    return docs


def export_documents(ports: Sequence[int], ids: Sequence[str], path: Path) -> dict[str, float]:
    """The exact bytes the API serves for every id, for the ceiling app (``<id>\\t<json>`` lines)."""
    docs = asyncio.run(_fetch_documents(ports, ids))
    with path.open("wb") as fh:
        for recipe_id in ids:
            fh.write(recipe_id.encode() + b"\t" + docs[recipe_id] + b"\n")
    sizes = sorted(len(d) for d in docs.values())
    return {"documents": len(sizes), "mean_bytes": sum(sizes) / len(sizes), "median_bytes": sizes[len(sizes) // 2]}


def same_bytes(ports: Sequence[int], docs_file: Path, ids: Sequence[str]) -> bool:
    """Spot-check that the warm API serves exactly the bytes the ceiling serves."""
    from bench.ceiling_app import load_documents

    docs = load_documents(docs_file)
    with httpx.Client(timeout=5) as client:
        for i, recipe_id in enumerate(ids):
            if (
                client.get(f"http://{HOST}:{ports[i % len(ports)]}/api/v1/recipes/{recipe_id}").content
                != docs[recipe_id]
            ):
                return False
    return True


# --------------------------------------------------------------------------------------------- profiling

_CATEGORIES = (
    ("potluck/", "potluck"),
    ("fastapi/", "fastapi"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn"),
    ("redis/", "redis-py"),
    ("sqlalchemy/", "sqlalchemy"),
    ("asyncpg/", "asyncpg"),
    ("pydantic", "pydantic"),
    ("prometheus_client/", "prometheus_client"),
    ("anyio/", "anyio"),
    ("asyncio/", "asyncio"),
    ("orjson", "orjson"),
)


def _category(frame: str) -> str:
    for needle, name in _CATEGORIES:
        if needle in frame:
            return name
    return "other"


# Stack markers: share of samples whose stack contains the needle anywhere (a request's cost by concern).
_MARKERS = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("redis/", "redis-py"),
    ("potluck/cache/", "potluck cache"),
    ("run_sync_in_worker_thread", "thread-pool hop (sync dependency)"),
    ("run_in_threadpool", "thread-pool hop (sync dependency)"),
    ("WorkerThread.run", "thread-pool hop (sync dependency)"),
    ("solve_dependencies", "FastAPI dependency solving"),
    ("pydantic", "pydantic"),
    ("prometheus_client/", "prometheus_client"),
    ("uvicorn/protocols/", "uvicorn HTTP protocol"),
    ("Middleware.__call__", "middleware stack"),
)


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks (py-spy --format raw) -> shares of samples by package of the leaf frame, by marker, top frames.

    SQLAlchemy's async bridge runs ORM code in greenlets, whose stacks start at ``Session.execute``: only the
    leaf and marker views count them; the inclusive view sees request frames only.
    """
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf[frames[-1]] += count
        by_category[_category(frames[-1])] += count
        for name in {name for needle, name in _MARKERS if needle in stack}:
            markers[name] += count
        for frame in set(frames):
            if "potluck/" in frame or "fastapi/" in frame or "redis/" in frame:
                inclusive[frame] += count

    def share(counter: Counter[str], limit: int | None = top) -> list[tuple[str, float]]:
        return [(k, round(v / total, 4)) for k, v in counter.most_common(limit)] if total else []

    return {
        "samples": total,
        "leaf_by_package": share(by_category, None),
        "stack_contains": share(markers, None),
        "top_leaf_frames": share(leaf),
        "top_inclusive_frames": share(inclusive),
    }


def profile_one(bench: Bench, servers: list[Server], seconds: int, *, tag: str = "warm") -> dict[str, Any] | None:
    """Sample one API process with py-spy under the same load (an extra, untimed run)."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        err.print("  [yellow]--profile: py-spy not found; run with `uv run --with py-spy ...`[/yellow]")
        return None
    raw = bench.work_dir / f"profile-{tag}.txt"
    err.print(f"  profiling {servers[0].name} (pid {servers[0].proc.pid}) for {seconds:g} s under load (untimed)")
    argv = [py_spy, "record", "--pid", str(servers[0].proc.pid), "--duration", str(seconds), "--rate", "250"]
    # Only the thread holding the GIL is sampled (CPU, not waiting); nonblocking keeps the overhead low.
    argv += ["--gil", "--nonblocking"]
    argv += ["--format", "raw", "--output", str(raw)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        bench.wrk([s.port for s in servers], seconds + 2, seed=3, label="profile")
        _, spy_err = spy.communicate(timeout=60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if spy.returncode != 0 or not raw.exists():
        err.print(f"  [yellow]py-spy failed (rc={spy.returncode}): {spy_err.strip()[-500:]}[/yellow]")
        return None
    if bench.args.profile_out is not None:
        out: Path = bench.args.profile_out
        shutil.copyfile(raw, out if tag == "warm" else out.with_name(f"{out.stem}-{tag}{out.suffix}"))
    return summarize_profile(raw)


# --------------------------------------------------------------------------------------------- report


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def code_version() -> dict[str, Any]:
    """The commit and whether src/ had uncommitted changes: the numbers belong to the code that ran."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    from importlib.metadata import version

    return {
        "commit": git("rev-parse", "HEAD"),
        "src_modified_files": len(git("status", "--porcelain", "--", "src").splitlines()),
        "versions": {name: version(name) for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "redis")},
    }


def report(bench: Bench, results: dict[str, ScenarioResult], command: str, setup: dict[str, Any]) -> dict[str, Any]:
    warm, uncached, ceiling, raw = results["warm"], results["uncached"], results["ceiling"], results["asyncpg"]
    cache = warm.cache or {}
    goals = {
        "warm_vs_uncached": {
            "goal": f">= {GOAL_WARM_VS_UNCACHED:g}x",
            "value": round(_ratio(warm.wrk.rps, uncached.wrk.rps), 2),
            "held": _ratio(warm.wrk.rps, uncached.wrk.rps) >= GOAL_WARM_VS_UNCACHED,
        },
        "warm_vs_ceiling": {
            "goal": f">= {GOAL_WARM_VS_CEILING:.0%}",
            "value": round(_ratio(warm.wrk.rps, ceiling.wrk.rps), 3),
            "held": _ratio(warm.wrk.rps, ceiling.wrk.rps) >= GOAL_WARM_VS_CEILING,
        },
        "uncached_api_cpu_us": {
            "goal": f"<= {GOAL_UNCACHED_API_CPU_US:,.0f}",
            "value": uncached.cpu_us_per_request["api"],
            "held": uncached.cpu_us_per_request["api"] <= GOAL_UNCACHED_API_CPU_US,
        },
        "uncached_vs_asyncpg": {
            "goal": f">= {GOAL_UNCACHED_VS_ASYNCPG:g} (within 2x)",
            "value": round(_ratio(uncached.wrk.rps, raw.wrk.rps), 3),
            "held": _ratio(uncached.wrk.rps, raw.wrk.rps) >= GOAL_UNCACHED_VS_ASYNCPG,
        },
        "hit_rate": {
            "goal": f">= {GOAL_HIT_RATE:.0%}",
            "value": round(cache.get("hit_rate", 0.0), 4),
            "held": cache.get("hit_rate", 0.0) >= GOAL_HIT_RATE,
        },
    }

    table = Table(title=f"GET /api/v1/recipes/{{id}}, Zipf s={bench.args.zipf_s:g} over {len(bench.ids):,} ids")
    headers = ["scenario", "req/s", "p50 ms", "p99 ms", "vs uncached", "vs ceiling", "vs asyncpg", "API CPU µs/req"]
    headers += ["PG CPU µs/req", "other CPU s"]
    headers.append("errors")
    for column in headers:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    rows = []
    for key in SCENARIOS:
        r = results[key]
        row = [
            key,
            f"{r.wrk.rps:,.0f}",
            f"{r.wrk.p50_ms:.2f}",
            f"{r.wrk.p99_ms:.2f}",
            f"{_ratio(r.wrk.rps, uncached.wrk.rps):.2f}x",
            f"{_ratio(r.wrk.rps, ceiling.wrk.rps):.2f}",
            f"{_ratio(r.wrk.rps, raw.wrk.rps):.2f}",
            f"{r.cpu_us_per_request['api']:.0f}",
            f"{r.cpu_us_per_request['postgres']:.0f}",
            f"{r.cpu_seconds['other']:.1f}",
            str(r.wrk.errors),
        ]
        rows.append(row)
        table.add_row(*row)
    out.print(table)
    hits_line = (
        f"recipe_detail hit rate (warm, timed run): {cache.get('hit_rate', 0):.4f} = (l1 {cache.get('l1_hits', 0):,.0f}"
        f" + l2 {cache.get('l2_hits', 0):,.0f}) / {cache.get('requests', 0):,.0f} requests; first tier alone "
        f"{cache.get('l1_hit_rate', 0):.1%}; {cache.get('database_loads', 0):,.0f} database loads, "
        f"{cache.get('shared_in_process', 0):,.0f} served by another in-process read of the same key"
    )
    out.print(hits_line)
    for name, goal in goals.items():
        mark = "[green]held[/green]" if goal["held"] else "[red]missed[/red]"
        out.print(f"goal {name} {goal['goal']}: {goal['value']} {mark}")

    markdown = [f"`{command}`", "", "| " + " | ".join(headers) + " |", "|" + "---|" + "---:|" * (len(headers) - 1)]
    markdown += ["| " + " | ".join(row) + " |" for row in rows]
    args = bench.args
    markdown += [
        "",
        "; ".join(f"{key}: {results[key].description}" for key in SCENARIOS) + ". "
        f"Zipf s={args.zipf_s:g} over {len(bench.ids):,} public recipe ids; {args.processes} server processes, "
        f"one `wrk -t1 -c{args.connections}` each; {args.warmup} s warm-up"
        + (" (warm: after one request per id)" if args.sweep else "")
        + f", then {args.duration} s timed. API CPU: the server processes' CPU time per request; other CPU: "
        "CPU-seconds of the timed run used by neither the servers, Redis, PostgreSQL nor wrk (kernel, other load).",
        "",
        hits_line + ".",
        "",
        "Goals: "
        + "; ".join(
            f"{name} {g['value']} ({g['goal']}: {'held' if g['held'] else 'missed'})" for name, g in goals.items()
        ),
    ]
    print()
    print("\n".join(markdown))

    return {
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "code": code_version(),
        "parameters": {
            "recipes": bench.args.recipes,
            "users": bench.args.users,
            "seed": bench.args.seed,
            "public_ids": len(bench.ids),
            "zipf_s": bench.args.zipf_s,
            "processes": bench.args.processes,
            "connections_per_process": bench.args.connections,
            "warmup_s": bench.args.warmup,
            "duration_s": bench.args.duration,
            "sweep_before_warm": bench.args.sweep,
            "method": "one wrk -t1 instance per server process, run concurrently, results added",
        },
        "setup": setup,
        "scenarios": {k: asdict(v) for k, v in results.items()},
        "goals": goals,
        "markdown": "\n".join(markdown),
    }


# --------------------------------------------------------------------------------------------- main


def command_line() -> str:
    """The command as typed: the parent `uv run ...` when there is one, else this interpreter's arguments."""
    with contextlib.suppress(OSError):
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        words = [w.decode(errors="replace") for w in parent]
        if words and Path(words[0]).name == "uv" and "bench.cache_read" in words:
            return shlex.join(["uv", *words[1:]])
    return shlex.join(["python", "-m", "bench.cache_read", *sys.argv[1:]])


def add_run_arguments(parser: argparse.ArgumentParser, *, popular: str) -> None:
    """The options every wrk bench on a seeded PostgreSQL + Redis shares (cache_read, list_read): the data, the
    timed runs, the server processes, and the Zipf exponent of how popular each `popular` (id, page) is."""
    parser.add_argument("--recipes", type=int, default=10_000, help="recipes to seed")
    parser.add_argument("--users", type=int, default=1_000, help="users to seed")
    parser.add_argument("--seed", type=int, default=7, help="seed of the demo data")
    parser.add_argument(
        "--accept-encoding",
        default="",
        help="the Accept-Encoding header every request sends (default: none, as wrk; a browser sends 'gzip, br')",
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds of each timed run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of the untimed run before each timed one")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections per server process")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="server processes (one per core)")
    parser.add_argument("--zipf-s", type=float, default=1.0, help=f"Zipf exponent of the {popular} popularity")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_read", description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, popular="id")
    parser.add_argument(
        "--sweep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before the warm scenario's warm-up, request every id once so the second tier holds them all",
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="seconds of py-spy on one warm and one uncached process (0: off)"
    )
    parser.add_argument(
        "--profile-out", type=Path, default=None, help="also keep py-spy's collapsed stacks in this file"
    )
    parser.add_argument(
        "--signed-in",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run the warm scenario signed in (a bearer token on every read), with the session check's "
        "answer remembered (default) and asked every request",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument(
        "--wait-idle", type=int, default=300, help="wait up to this many seconds for other load to stop first"
    )
    return parser.parse_args(argv)


async def _sign_in(port: int) -> str:
    """A fresh account on the running API and a bearer token of one session."""
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=30) as client:
        name = f"bench{os.getpid()}{time.monotonic_ns() % 1_000_000}"
        password = "bench reader password"
        body = {"email": f"{name}@example.com", "username": name, "password": password}
        (await client.post("/api/v1/auth/register", json=body)).raise_for_status()
        resp = await client.post("/api/v1/auth/token", data={"username": name, "password": password})
        resp.raise_for_status()
        return f"Bearer {resp.json()['access_token']}"


def signed_in_scenarios(
    bench: Bench, warm: ScenarioResult, sweep: Callable[[list[Server]], dict[str, Any]]
) -> dict[str, Any]:
    """Warm reads with a bearer token (the ordinary route: token check, session-revocation check), as ratios to
    the anonymous warm run of the same process: the session check's cost on the read path (issue 18)."""
    variants = {
        "signed-in": ("bearer token; revocation answer remembered 1 s per process (default)", {}),
        "signed-in-recheck-0": (
            "bearer token; revocation set asked (Redis EXISTS) on every request",
            {"POTLUCK_AUTH__REVOCATION_RECHECK_SECONDS": "0"},
        ),
    }
    found: dict[str, Any] = {}
    lines = [
        "| scenario | req/s | p50 ms | p99 ms | vs anonymous warm | API CPU µs/req | vs anonymous API CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| warm (anonymous) | {warm.wrk.rps:,.0f} | {warm.wrk.p50_ms:.2f} | {warm.wrk.p99_ms:.2f} | 1.00 "
        f"| {warm.cpu_us_per_request['api']:.0f} | 1.00 |",
    ]
    for name, (description, env) in variants.items():
        bench.extra_env = dict(env)

        def prepare(running: list[Server]) -> dict[str, Any]:
            prepared = sweep(running)
            bench.authorization = asyncio.run(_sign_in(running[0].port))
            return prepared

        try:
            result = bench.scenario(
                name, description, lambda: bench.start_api(cache_enabled=True), cache_metrics=True, prepare=prepare
            )
        finally:
            bench.authorization, bench.extra_env = None, {}
        rps_ratio = _ratio(result.wrk.rps, warm.wrk.rps)
        cpu_ratio = _ratio(result.cpu_us_per_request["api"], warm.cpu_us_per_request["api"])
        found[name] = {**asdict(result), "rps_vs_anonymous": round(rps_ratio, 3), "api_cpu_vs_anonymous": cpu_ratio}
        lines.append(
            f"| {name} | {result.wrk.rps:,.0f} | {result.wrk.p50_ms:.2f} | {result.wrk.p99_ms:.2f} "
            f"| {rps_ratio:.2f} | {result.cpu_us_per_request['api']:.0f} | {cpu_ratio:.2f} |"
        )
    print()
    print("\n".join(lines))
    found["markdown"] = "\n".join(lines)
    return found


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell that starts a job in the background makes it ignore SIGINT, and Python keeps that.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def seeded_bench(stack: contextlib.ExitStack, args: argparse.Namespace, *, prefix: str) -> Bench:
    """A temporary work directory, PostgreSQL (primary only) and Redis on `stack`, migrated and seeded with
    args.users / args.recipes / args.seed; the Bench over them, its public ids exported most viewed first."""
    work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    (work_dir / "data").mkdir()
    servers = Servers(work_dir)
    stack.callback(servers.stop_all)  # runs before the databases stop (ExitStack unwinds in reverse)
    err.print("starting PostgreSQL and Redis")
    pg = stack.enter_context(PgCluster(replicas=0))
    redis = stack.enter_context(RedisServer())
    env = {k: v for k, v in os.environ.items() if not k.startswith("POTLUCK_")}
    env |= {"POTLUCK_DATABASE__URL": pg.dsn("primary"), "POTLUCK_DATA_DIR": str(work_dir / "data")}
    run_cli([str(BIN_DIR / "potluck"), "migrate"], env)
    seed_argv = [str(BIN_DIR / "potluck"), "seed", "--users", str(args.users), "--recipes", str(args.recipes)]
    run_cli([*seed_argv, "--seed", str(args.seed)], env)
    bench = Bench(
        args=args,
        work_dir=work_dir,
        servers=servers,
        pg=pg,
        redis=redis,
        ids_file=work_dir / "ids.txt",
        docs_file=work_dir / "docs.tsv",
        ids=[],
    )
    bench.ids = export_ids(pg, bench.ids_file)
    return bench


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = command_line()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            err.print(f"[red]{tool} not found (apt-get install {tool})[/red]")
            return 2
    with contextlib.ExitStack() as stack:
        stack.enter_context(signals_as_interrupt())
        started = time.monotonic()
        bench = seeded_bench(stack, args, prefix="potluck-bench-")
        setup: dict[str, Any] = {"public_ids": len(bench.ids), "setup_seconds": 0.0}
        err.print(f"{len(bench.ids):,} public recipe ids exported (by view_count desc)")

        def after_uncached(running: list[Server], result: ScenarioResult) -> None:
            setup["documents"] = export_documents([s.port for s in running], bench.ids, bench.docs_file)
            err.print(f"  exported the served bytes of {setup['documents']['documents']:,} recipes for the ceiling")
            if args.profile > 0:
                result.extra["profile"] = profile_one(bench, running, args.profile, tag="uncached")

        def sweep(running: list[Server]) -> dict[str, Any]:
            if not args.sweep:
                return {"sweep": None}
            # Warm means what hours of traffic leave behind: the second tier holds every recipe (the TTL is an
            # hour), the first tier holds what the last seconds asked for. A few seconds of Zipf traffic alone
            # would leave most of the tail cold and measure the fill rate instead.
            began = time.monotonic()
            asyncio.run(_fetch_documents([s.port for s in running], bench.ids))
            seconds = time.monotonic() - began
            err.print(f"  swept all {len(bench.ids):,} ids once in {seconds:.1f} s (fills the second tier)")
            return {"sweep": {"ids": len(bench.ids), "seconds": round(seconds, 1)}}

        def after_warm(running: list[Server], result: ScenarioResult) -> None:
            result.extra["same_bytes_as_ceiling"] = same_bytes(
                [s.port for s in running], bench.docs_file, bench.ids[:50]
            )
            if args.profile > 0:
                result.extra["profile"] = profile_one(bench, running, args.profile)

        setup["setup_seconds"] = round(time.monotonic() - started, 1)
        results: dict[str, ScenarioResult] = {}
        # The uncached run goes first: it also exports the served documents the ceiling needs.
        results["uncached"] = bench.scenario(
            "uncached",
            "POTLUCK_CACHE__ENABLED=false",
            lambda: bench.start_api(cache_enabled=False),
            after=after_uncached,
        )
        results["warm"] = bench.scenario(
            "warm",
            "in-process first tier + Redis",
            lambda: bench.start_api(cache_enabled=True),
            cache_metrics=True,
            prepare=sweep,
            after=after_warm,
        )
        results["ceiling"] = bench.scenario(
            "ceiling", "bench/ceiling_app.py, bare FastAPI, same bytes from a dict", bench.start_ceiling
        )

        results["asyncpg"] = bench.scenario(
            "asyncpg",
            "bench/asyncpg_app.py, bare FastAPI + raw asyncpg, one query builds the document",
            bench.start_asyncpg,
        )
        data = report(bench, {k: results[k] for k in SCENARIOS}, command, setup)
        if args.signed_in:
            data["signed_in"] = signed_in_scenarios(bench, results["warm"], sweep)
        for tag in ("warm", "uncached"):
            profile = results[tag].extra.get("profile")
            if not profile:
                continue
            err.rule(f"profile of one {tag} API process (share of busy samples)")
            sections = (
                ("leaf frame by package", "leaf_by_package"),
                ("stack contains", "stack_contains"),
                ("top leaf frames", "top_leaf_frames"),
            )
            for title, key in sections:
                err.print(f"[bold]{title}[/bold]")
                for name, share in profile[key]:
                    err.print(f"  {share:6.1%}  {name}")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(data, indent=2) + "\n")
        err.print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; every process this run started was stopped[/red]")
        sys.exit(130)
