"""`python -m bench.loadtest`: one of the design's load scenarios against the local cluster, and its report.

    make loadtest                                   # constant_load, 100 arrivals/s for 90 s (this 2-core box)
    make loadtest SCENARIO=spike_test               # the design's stages x 0.04 (4 -> 40 -> 200 -> 4/s) in 90 s
    make loadtest RATE=120 DURATION=60              # any rate and length
    make loadtest FULL=1                            # the design's constant_load: 1000/s for 30 min
    make loadtest SCENARIO=spike_test FULL=1        # the design's spike_test: 100 -> 1000 -> 5000 -> 100/s, 20 min
    uv run --group loadtest python -m bench.loadtest --scenario spike_test --scale 0.08 --stage-seconds 25,25,25

Defaults: a short run this machine (2 cores shared by the load generator and every server) sustains. Without
`--full`, constant_load runs at 100 arrivals/s (unless --rate or --scale is given) and spike_test at 0.04 x the
design's rates (unless --rate or --scale is given), each for 90 s (unless --duration or --stage-seconds is
given). With `--full` the design's figures apply to whatever is not given: constant_load 1000/s for 1800 s,
spike_test 100 -> 1000 -> 5000 -> 100/s over 300 + 600 + 300 s. (`python bench/locustfile.py` and
`locust -f bench/locustfile.py` default to the design's figures: the short defaults live here.)

1. `potluck cluster up` (idempotent: a healthy cluster is left as it is; an empty database gets the demo data),
   then `potluck cluster status` for the load balancer's URL, each API process's URL and every pid; then a wait
   (up to `--settle-timeout`, 300 s) until the worker has delivered the outbox backlog a fresh start or seed
   leaves, so that the run does not measure its drain.
2. Before and after the run: each API process's /metrics (cache hits and misses per family and tier, database
   statements per role), the CPU time of every component (psutil: API processes, nginx, PostgreSQL, Redis, the
   Celery worker and beat, Locust, the whole machine) and the Redis cache instance's memory.
3. `locust -f bench/locustfile.py --headless --host <lb> --csv <dir>/locust --csv-full-history --only-summary`
   with the scenario's options, under a progress bar; arguments this command does not know are passed to Locust
   (e.g. `--auth-share 0.3`). Locust's output goes to <dir>/locust.log.
4. <dir>/report.md (command, throughput, p50/p95/p99 overall and per endpoint, error rate, the expected answers
   counted apart from it (a signed-out write's 401, a concurrent edit's 412), cache hit rate per family, CPU per
   request, which design targets held), <dir>/latency.png and <dir>/summary.json.

The report directory defaults to bench/results/loadtest-<scenario>-<UTC timestamp>/ (git-ignored). The cluster is
left running; `--stop-after` stops it again when this command was the one that started it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import overload

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LOCUSTFILE = BENCH_DIR / "locustfile.py"
RESULTS = BENCH_DIR / "results"
# The project's venv: `potluck` and `locust` here are what `uv run potluck` / `uv run locust` run, without a re-sync.
BIN_DIR = Path(sys.executable).parent
CSV_NAME = "locust"
OTHER_CPU = "other (kernel, other work on the box)"

console = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class Targets:
    """shared/design/scalability-and-caching.md, "Load Testing & Capacity Planning" and its alert thresholds."""

    p50_ms: float = 100.0
    p95_ms: float = 500.0
    p99_ms: float = 1000.0
    error_rate: float = 0.01
    requests_per_second: float = 10_000.0
    concurrent_users: int = 100_000
    cache_hit_rate: float = 0.80


TARGETS = Targets()


# ------------------------------------------------------------------------------------------------- the cluster


def _potluck(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN_DIR / "potluck"), *args], cwd=ROOT, capture_output=capture, text=True, check=check)


def cluster_status() -> dict[str, Any]:
    """`potluck cluster status` as a dict (it prints JSON whether or not the cluster is up)."""
    result = _potluck("cluster", "status", check=False)
    try:
        info: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise SystemExit(f"`potluck cluster status` printed no JSON:\n{result.stdout}{result.stderr}") from None
    return info


def ensure_cluster() -> tuple[dict[str, Any], bool]:
    """The cluster's status after `potluck cluster up`, and whether it was already up before."""
    was_up = bool(cluster_status().get("up"))
    if not was_up:
        console.print("[bold]potluck cluster up[/bold] (the cluster was not running)")
        if _potluck("cluster", "up", check=False, capture=False).returncode != 0:
            raise SystemExit("`potluck cluster up` failed")
    info = cluster_status()
    if not info.get("up"):
        raise SystemExit(f"the cluster is not healthy after `potluck cluster up`:\n{json.dumps(info, indent=2)}")
    return info, was_up


def outbox_backlog(info: Mapping[str, Any]) -> int | None:
    """Events recorded and not yet delivered, read from the primary; None when it cannot be read."""
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from potluck.events.repository import OutboxRepository

    async def read() -> int:
        engine = create_async_engine(info["postgres"]["primary"]["url"])
        try:
            async with AsyncSession(engine) as session:
                return (await OutboxRepository(session).backlog()).pending
        finally:
            await engine.dispose()

    try:
        return asyncio.run(read())
    except Exception as exc:  # a bench helper: any failure only means "cannot tell"
        console.print(f"[yellow]warning[/yellow]: cannot read the outbox backlog: {exc}")
        return None


def settle(info: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """Wait (up to `timeout` s) for the worker to deliver the outbox backlog before the measured run.

    A cluster just started (or just seeded) has thousands of undelivered events; draining them takes the worker
    tens of seconds of both cores and the database, which would be measured as the API's latency.
    """
    started = time.monotonic()
    deadline = started + timeout
    first = backlog = outbox_backlog(info)
    if not backlog:
        return {"backlog": first, "seconds": 0.0, "left": backlog}
    with console.status(f"waiting for the worker to deliver the outbox backlog ({backlog:,} events)") as status:
        while backlog and time.monotonic() < deadline:
            time.sleep(2.0)
            backlog = outbox_backlog(info)
            status.update(f"waiting for the worker to deliver the outbox backlog ({backlog or 0:,} of {first:,} left)")
    waited = time.monotonic() - started
    if backlog:
        console.print(f"[yellow]warning[/yellow]: {backlog:,} outbox events still pending after {waited:.0f} s")
    else:
        console.print(f"outbox backlog delivered ({first:,} events) in {waited:.0f} s")
    return {"backlog": first, "seconds": waited, "left": backlog}


# ---------------------------------------------------------------------------------------------- measurements

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SAMPLES = ("potluck_cache_hits_total", "potluck_cache_misses_total", "potluck_cache_load_seconds_count")
SAMPLES += ("potluck_cache_lease_waits_total", "potluck_cache_errors_total", "potluck_cache_bypasses_total")
SAMPLES += ("potluck_db_queries_total", "potluck_http_requests_total")

MetricKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape(url: str) -> dict[MetricKey, float]:
    """The counters this report uses from one process's /metrics (`url`); {} when it does not answer."""
    try:
        with _DIRECT.open(url, timeout=10) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        console.print(f"[yellow]warning[/yellow]: {url}: {exc}")
        return {}
    values: dict[MetricKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SAMPLES:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def scrape_all(info: Mapping[str, Any]) -> dict[MetricKey, float]:
    """Summed over every API process."""
    total: dict[MetricKey, float] = defaultdict(float)
    for node in info["api"]:
        # /metrics is answered on each process's internal listener only (middleware.InternalListenerGate).
        for key, value in scrape(node.get("metrics_url") or f"{node['url']}/metrics").items():
            total[key] += value
    return dict(total)


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds of a process, its reaped children and its live descendants (0 when it is gone)."""
    if not pid:
        return 0.0
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        seconds = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                seconds += child_times.user + child_times.system
    except psutil.Error:
        return 0.0
    return seconds


def cpu_snapshot(info: Mapping[str, Any], locust_pid: int | None = None) -> dict[str, float]:
    pg = info["postgres"]
    machine = psutil.cpu_times()
    busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
    return {
        "api": sum(_tree_cpu(node["pid"]) for node in info["api"]),
        "nginx": _tree_cpu(info["lb"]["pid"]),
        "postgres primary": _tree_cpu(pg["primary"]["pid"]),
        "postgres replicas": sum(_tree_cpu(node["pid"]) for node in pg["replicas"]),
        "redis": sum(_tree_cpu(node["pid"]) for node in info["redis"].values()),
        "celery worker + beat": sum(_tree_cpu((info.get(name) or {}).get("pid")) for name in ("worker", "beat")),
        "edge (varnish)": sum(_tree_cpu(node.get("pid")) for node in _edge_nodes(info)),
        "locust": _tree_cpu(locust_pid),
        "whole machine (busy)": busy,
        "wall": time.monotonic(),
    }


def _edge_nodes(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((info.get("edge") or {}).get("nodes") or [])


EDGE_COUNTERS = ("client_req", "cache_hit", "cache_miss", "cache_hitpass", "cache_hitmiss", "s_pass", "s_synth")


def edge_snapshot(info: Mapping[str, Any]) -> dict[str, float]:
    """varnishstat's request counters summed over the edge nodes ({} without an edge). A node's shared memory log
    is its work dir, beside its log file (potluck_ops.varnish.start_varnish)."""
    total: dict[str, float] = defaultdict(float)
    for node in _edge_nodes(info):
        workdir = Path(node["log"]).with_suffix("")
        try:
            result = subprocess.run(["varnishstat", "-n", str(workdir), "-1", "-j"], capture_output=True, timeout=10)
            counters = json.loads(result.stdout).get("counters", {})
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            console.print(f"[yellow]warning[/yellow]: varnishstat {workdir}: {exc}")
            continue
        for name in EDGE_COUNTERS:
            total[name] += float((counters.get(f"MAIN.{name}") or {}).get("value", 0))
    return dict(total)


def edge_table(before: Mapping[str, float], after: Mapping[str, float], requests: int) -> dict[str, Any] | None:
    """What the edge did during the run: hits, misses and passes, the hit ratio of what it was asked (purges, which
    it answers with synth, left out) and the share of all of Locust's requests it answered from its cache."""
    if not after:
        return None
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in EDGE_COUNTERS}
    asked = delta["cache_hit"] + delta["cache_miss"] + delta["s_pass"]
    return {
        **delta,
        "hit_ratio": delta["cache_hit"] / asked if asked else None,
        "share_of_requests": delta["cache_hit"] / requests if requests else None,
    }


def redis_snapshot(url: str, *, sample_keys: bool) -> dict[str, Any]:
    """Memory of the Redis cache instance; with `sample_keys`, MEMORY USAGE of up to 300 keys per key prefix."""
    try:
        import redis  # the project's own dependency
    except ImportError:
        return {}
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        memory = client.info("memory")
        stats = client.info("stats")
        snapshot: dict[str, Any] = {
            "used_memory": memory["used_memory"],
            "used_memory_dataset": memory.get("used_memory_dataset"),
            "maxmemory": memory.get("maxmemory"),
            "keys": client.dbsize(),
            "evicted_keys": stats.get("evicted_keys"),
        }
        if sample_keys:
            sizes: dict[str, list[int]] = defaultdict(list)
            for key in client.scan_iter(count=1000):
                prefix = key.split(b":", 1)[0].decode(errors="replace")
                if len(sizes[prefix]) < 300 and (usage := client.memory_usage(key)) is not None:
                    sizes[prefix].append(int(usage))
                if sum(len(v) for v in sizes.values()) >= 1500:
                    break
            snapshot["bytes_per_key"] = {
                prefix: {"sampled": len(v), "mean": round(statistics.fmean(v)), "median": statistics.median(v)}
                for prefix, v in sorted(sizes.items())
                if v
            }
        return snapshot
    except redis.RedisError as exc:
        console.print(f"[yellow]warning[/yellow]: Redis {url}: {exc}")
        return {}
    finally:
        client.close()


def code_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    modified = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "HEAD"), "src_modified_files": len(modified)}


# --------------------------------------------------------------------------------------------------- locust


def scenario_args(args: argparse.Namespace) -> list[str]:
    """The options that pick and scale the scenario: for the plan printer and for Locust alike."""
    out = ["--scenario", args.scenario]
    for flag, value in (
        ("--rate", args.rate),
        ("--duration", args.duration),
        ("--scale", args.scale),
        ("--stage-seconds", args.stage_seconds),
        ("--base-rate", args.base_rate),
        ("--per-user-rate", args.per_user_rate),
        ("--only", args.only),
    ):
        if value is not None:
            out += [flag, str(value)]
    return out


def locust_invocation(host: str, prefix: Path, args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str]:
    """Locust headless against `host`, its CSV files at `prefix`, the scenario `args` pick, then `extra`."""
    command = [str(BIN_DIR / "locust"), "-f", str(LOCUSTFILE.relative_to(ROOT)), "--headless"]
    command += ["--host", host, "--csv", str(prefix), "--csv-full-history", "--only-summary"]
    return [*command, *scenario_args(args), *extra]


def load_plan(args: argparse.Namespace, extra: Sequence[str] = ()) -> dict[str, Any]:
    """What the locustfile's shape will run (it prints its plan as JSON when run as a script); `extra`: more of
    the locustfile's own options (e.g. --auth-share, which changes the plan's "mix")."""
    command = [sys.executable, str(LOCUSTFILE), *scenario_args(args), *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bad scenario options: {result.stderr.strip().splitlines()[-1]}")
    plan: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return plan


def _last_aggregated(history: Path) -> dict[str, str] | None:
    """The newest Aggregated row of Locust's stats history (it appends one per second)."""
    try:
        with history.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            tail = fh.read().decode(errors="replace").splitlines()
            fh.seek(0)
            header = next(csv.reader([fh.readline().decode()]))
    except (OSError, StopIteration):
        return None
    for line in reversed(tail):
        row = next(csv.reader([line]), [])
        if len(row) == len(header) and row[3] == "Aggregated":
            return dict(zip(header, row, strict=True))
    return None


@dataclass(slots=True)
class Sampler:
    """What is measured while Locust runs: the CPU counters when its first users start, /metrics every 10 s."""

    info: Mapping[str, Any]
    cpu_at_start: dict[str, float] | None = None
    locust_cpu_at_start: float = 0.0
    metrics: list[tuple[float, dict[MetricKey, float]]] = field(default_factory=list)

    def started(self, locust_pid: int) -> None:
        self.cpu_at_start = cpu_snapshot(self.info)
        self.locust_cpu_at_start = _tree_cpu(locust_pid)

    def tick(self, elapsed: float) -> None:
        if not self.metrics or elapsed - self.metrics[-1][0] >= 10.0:
            self.metrics.append((elapsed, scrape_all(self.info)))


def run_locust(command: Sequence[str], out_dir: Path, plan: Mapping[str, Any], sampler: Sampler) -> int:
    """Run Locust with a progress bar over the plan (from when its first users run); returns its exit code."""
    history = out_dir / f"{CSV_NAME}_stats_history.csv"
    total = float(plan["seconds"])
    log = (out_dir / "locust.log").open("w")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    began: float | None = None
    interrupted = False
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{plan['scenario']}: setting up", total=total, status="")
        deadline = time.monotonic() + total + 180
        while proc.poll() is None:
            try:
                time.sleep(1.0)
            except KeyboardInterrupt:
                interrupted = True
                console.print("interrupted: stopping Locust (it still writes its statistics)")
                proc.send_signal(signal.SIGINT)
                break
            row = _last_aggregated(history)
            users = int(row["User Count"]) if row else 0
            if began is None and users > 0:
                began = time.monotonic()
                sampler.started(proc.pid)
                progress.update(bar, description=f"{plan['scenario']}: running")
            if began is not None and row is not None:
                elapsed = time.monotonic() - began
                sampler.tick(elapsed)
                target = plan["target_rate_per_second"][min(int(elapsed), len(plan["target_rate_per_second"]) - 1)]
                status = (
                    f"target {target:,.0f}/s  users {users:,}  {float(row['Requests/s']):,.0f} req/s  "
                    f"p95 {row['95%']} ms  errors {int(row['Total Failure Count']):,}"
                )
                progress.update(bar, completed=min(elapsed, total), status=status)
            if time.monotonic() > deadline:
                console.print("[red]Locust overran its plan by 3 minutes: stopping it[/red]")
                proc.send_signal(signal.SIGINT)
                break
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        progress.update(bar, description=f"{plan['scenario']}: done", completed=total)
    log.close()
    return 130 if interrupted else code


# ------------------------------------------------------------------------------------------------- analysis


@dataclass(slots=True)
class Endpoint:
    method: str
    name: str
    requests: int
    failures: int
    p50: float
    p95: float
    p99: float
    p999: float
    max_ms: float
    avg_ms: float
    avg_bytes: float


@dataclass(slots=True)
class Series:
    t: list[float] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    errors_per_s: list[float] = field(default_factory=list)
    p50: list[float | None] = field(default_factory=list)
    p95: list[float | None] = field(default_factory=list)
    p99: list[float | None] = field(default_factory=list)
    target: list[float] = field(default_factory=list)


def _num(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def read_endpoints(path: Path) -> tuple[list[Endpoint], Endpoint]:
    rows: list[Endpoint] = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            rows.append(
                Endpoint(
                    method=row["Type"],
                    name=row["Name"],
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    p50=_num(row["50%"]) or 0.0,
                    p95=_num(row["95%"]) or 0.0,
                    p99=_num(row["99%"]) or 0.0,
                    p999=_num(row["99.9%"]) or 0.0,
                    max_ms=float(row["Max Response Time"]),
                    avg_ms=float(row["Average Response Time"]),
                    avg_bytes=float(row["Average Content Size"]),
                )
            )
    aggregated = next(r for r in rows if r.name == "Aggregated")
    return [r for r in rows if r.name != "Aggregated"], aggregated


def read_series(path: Path, plan: Mapping[str, Any]) -> Series:
    """Per-second series from the Aggregated history rows; t = 0 when the first users run."""
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["Name"] == "Aggregated"]
    started = next((i for i, r in enumerate(rows) if int(r["User Count"]) > 0), None)
    series = Series()
    if started is None:
        return series
    t0 = int(rows[started]["Timestamp"])
    targets = plan["target_rate_per_second"]
    previous = rows[max(0, started - 1)]
    for row in rows[started:]:
        t = int(row["Timestamp"]) - t0
        dt = max(1, int(row["Timestamp"]) - int(previous["Timestamp"]))
        series.t.append(t)
        series.users.append(int(row["User Count"]))
        series.rps.append((int(row["Total Request Count"]) - int(previous["Total Request Count"])) / dt)
        series.errors_per_s.append((int(row["Total Failure Count"]) - int(previous["Total Failure Count"])) / dt)
        series.p50.append(_num(row["50%"]))
        series.p95.append(_num(row["95%"]))
        series.p99.append(_num(row["99%"]))
        series.target.append(targets[t] if 0 <= t < len(targets) else 0.0)
        previous = row
    return series


def read_failures(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open() as fh:
        return sorted(csv.DictReader(fh), key=lambda r: -int(r["Occurrences"]))


def cache_table(before: Mapping[MetricKey, float], after: Mapping[MetricKey, float]) -> dict[str, dict[str, float]]:
    """Per family: hits and misses per tier, database loads, and the hit rate (l1 + l2 hits over l1 lookups)."""

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    counters = ("potluck_cache_hits_total", "potluck_cache_misses_total")
    families = sorted({dict(labels)["family"] for name, labels in after if name in counters})
    table: dict[str, dict[str, float]] = {}
    for family in families:
        l1h = delta("potluck_cache_hits_total", family=family, tier="l1")
        l1m = delta("potluck_cache_misses_total", family=family, tier="l1")
        l2h = delta("potluck_cache_hits_total", family=family, tier="l2")
        l2m = delta("potluck_cache_misses_total", family=family, tier="l2")
        loads = delta("potluck_cache_load_seconds_count", family=family)
        # Every lookup passes the first tier when it is on; without it (subscription down) lookups start at l2.
        lookups = l1h + l1m if l1h + l1m > 0 else l2h + l2m
        if lookups <= 0:
            continue
        table[family] = {
            "lookups": lookups,
            "l1_hits": l1h,
            "l1_misses": l1m,
            "l2_hits": l2h,
            "l2_misses": l2m,
            "db_loads": loads,
            "hit_rate": (l1h + l2h) / lookups,
            "l1_hit_rate": l1h / lookups,
        }
    return table


def second_half(samples: Sequence[tuple[float, dict[MetricKey, float]]], seconds: float) -> dict[str, Any]:
    """Hit rates from the sample nearest the plan's middle to the end: the cache after it has warmed up."""
    if len(samples) < 3:
        return {}
    middle = min(samples[:-1], key=lambda s: abs(s[0] - seconds / 2))
    return {"from_t": middle[0], "families": cache_table(middle[1], samples[-1][1])}


def cache_over_time(samples: Sequence[tuple[float, dict[MetricKey, float]]]) -> dict[str, list[list[float]]]:
    """Per family: [start, end, hit rate] of each interval between two /metrics samples."""
    out: dict[str, list[list[float]]] = defaultdict(list)
    for (start, a), (end, b) in itertools.pairwise(samples):
        for family, row in cache_table(a, b).items():
            out[family].append([start, end, row["hit_rate"]])
    return dict(out)


def db_queries(before: Mapping[MetricKey, float], after: Mapping[MetricKey, float]) -> dict[str, float]:
    by_role: dict[str, float] = defaultdict(float)
    for (name, labels), value in after.items():
        if name == "potluck_db_queries_total":
            by_role[dict(labels).get("role", "?")] += value - before.get((name, labels), 0.0)
    return dict(by_role)


def best_window(series: Series, targets: Targets) -> dict[str, Any] | None:
    """The highest target rate whose 10-s window kept p95 and p99 under their targets (the spike's knee)."""
    ok = [
        (series.target[i], series.rps[i], series.t[i])
        for i in range(len(series.t))
        if series.p95[i] is not None
        and series.p99[i] is not None
        and series.p95[i] < targets.p95_ms  # type: ignore[operator]
        and series.p99[i] < targets.p99_ms  # type: ignore[operator]
        and series.t[i] >= 10
    ]
    if not ok:
        return None
    target, rps, t = max(ok)
    return {"target_rate": target, "requests_per_second": rps, "t": t}


# ---------------------------------------------------------------------------------------------------- output


def plot(series: Series, plan: Mapping[str, Any], summary: Mapping[str, Any], path: Path) -> None:
    """Latency percentiles and throughput over time; errors and users; cache hit rate per 10 s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [3.2, 1, 1]}, constrained_layout=True
    )
    nan = float("nan")
    colors = {"p50": "#2b8cbe", "p95": "#e67e22", "p99": "#c0392b"}
    limits = {"p50": TARGETS.p50_ms, "p95": TARGETS.p95_ms, "p99": TARGETS.p99_ms}
    for name, values in (("p50", series.p50), ("p95", series.p95), ("p99", series.p99)):
        top.plot(series.t, [v if v else nan for v in values], color=colors[name], lw=2, label=name)
        top.axhline(limits[name], color=colors[name], ls=":", lw=1.3, label=f"{name} target {limits[name]:.0f} ms")
    top.set_yscale("log")
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    top.set_ylabel("latency, ms (log scale)\nLocust's sliding 10 s window")
    top.grid(True, which="both", alpha=0.25)

    rate_axis = top.twinx()
    rate_axis.fill_between(series.t, series.rps, color="#7f8c8d", alpha=0.2, step="mid", label="requests/s achieved")
    seconds = float(plan["seconds"])
    target = [r if t < seconds else nan for t, r in zip(series.t, series.target, strict=True)]
    rate_axis.plot(series.t, target, color="#2c3e50", ls="--", lw=1.6, label="target arrivals/s (plan)")
    rate_axis.set_ylabel("requests/s (1 s bins), target arrivals/s")
    rate_axis.set_ylim(0, max([*series.rps, *series.target, 1.0]) * 1.3)
    lines = top.get_legend_handles_labels()
    more = rate_axis.get_legend_handles_labels()
    top.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", ncol=4, fontsize=8.5, framealpha=0.92)
    agg = summary["aggregated"]
    top.set_title(
        f"{plan['scenario']}: {summary['headline']}\n"
        f"whole run: p50 {_ms(agg['p50'])} ms, p95 {_ms(agg['p95'])} ms, p99 {_ms(agg['p99'])} ms; "
        f"{summary['throughput']['achieved_rps']:,.0f} req/s mean; "
        f"{agg['failures']:,} failed requests ({summary['error_rate']:.2%})",
        fontsize=11,
    )

    middle.bar(series.t, series.errors_per_s, width=1.0, color="#c0392b", label="failed requests/s")
    middle.set_ylabel("failed\nrequests/s")
    middle.set_ylim(0, max([*series.errors_per_s, 1.0]) * 1.25)
    middle.grid(True, alpha=0.25)
    users_axis = middle.twinx()
    users_axis.plot(series.t, series.users, color="#8e44ad", lw=1.6, label="simulated users")
    users_axis.set_ylabel("simulated users")
    users_axis.set_ylim(0, max([*series.users, 1]) * 1.25)
    handles = middle.get_legend_handles_labels()
    more = users_axis.get_legend_handles_labels()
    middle.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", ncol=2, fontsize=8.5)

    palette = ("#16a085", "#2980b9", "#d35400", "#8e44ad", "#7f8c8d")
    for color, (family, points) in zip(palette, summary["cache_over_time"].items(), strict=False):
        if points:
            xs = [points[0][0], *(end for _, end, _ in points)]
            ys = [rate for _, _, rate in points]
            bottom.step(xs, [*ys, ys[-1]], where="post", color=color, lw=1.8, label=family)
    bottom.axhline(TARGETS.cache_hit_rate, color="#7f8c8d", ls=":", lw=1.2, label="80% (alert threshold)")
    bottom.set_ylim(0, 1.05)
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0))
    bottom.set_ylabel("cache hit rate\n(per 10 s, l1+l2)")
    bottom.set_xlabel("seconds since the first simulated user started")
    bottom.grid(True, alpha=0.25)
    bottom.legend(loc="lower right", ncol=3, fontsize=8.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _settled_text(settled: Mapping[str, Any]) -> str:
    if not settled.get("backlog"):
        return ""
    left = f", {settled['left']:,} still pending" if settled.get("left") else ""
    return (
        f"; the run waited {settled['seconds']:.0f} s for the worker to deliver an outbox backlog of "
        f"{settled['backlog']:,} events{left}"
    )


def _held(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**no**")


def write_report(summary: Mapping[str, Any], endpoints: Sequence[Endpoint], path: Path) -> None:
    agg = summary["aggregated"]
    thr = summary["throughput"]
    plan = summary["plan"]
    half = summary.get("cache_second_half", {})
    lines = [
        f"# Load test: {plan['scenario']}, {summary['headline']}",
        "",
        f"`{summary['command']}`",
        "",
        f"Locust: `{summary['locust_command']}`",
        "",
        f"Finished {summary['finished_at']} on {summary['machine']['cpus']} CPUs shared by the load generator, nginx, "
        f"{summary['cluster']['api_processes']} API processes, PostgreSQL (primary + "
        f"{summary['cluster']['replicas']} replicas) and Redis; commit {summary['code']['commit'][:10]} "
        f"({summary['code']['src_modified_files']} files under src/ modified). Cluster "
        f"{'already running' if summary['cluster']['was_up'] else 'started by this run'}"
        f"{_settled_text(summary['cluster'].get('settled') or {})}.",
        "",
        "## Design targets",
        "",
        "| target | measured | held |",
        "|---|---:|:---:|",
    ]
    for row in summary["targets"]:
        lines.append(f"| {row['target']} | {row['measured']} | {_held(row['held'])} |")
    lines += [
        "",
        "## Throughput",
        "",
        f"- Plan: {plan_text(plan)}; {plan['peak_users']:,} simulated users at the peak, each a Poisson arrival "
        f"process of {plan['per_user_rate']} iterations/s.",
        f"- Achieved: **{thr['achieved_rps']:,.1f} requests/s** mean over the plan's {plan['seconds']:.0f} s "
        f"({agg['requests']:,} requests; {thr['requests_per_iteration']:.2f} requests per iteration), "
        f"highest 1-s bin {thr['peak_rps']:,.0f} req/s.",
        f"- Open model: {thr['arrivals_scheduled']:,} arrivals scheduled, {thr['arrivals_late']:,} started more "
        f"than 100 ms late, {thr['arrivals_dropped']:,} dropped because their user was still busy "
        f"({thr['dropped_share']:.2%}).",
    ]
    expected = summary["arrivals"].get("expected_outcomes") or {}
    lines.append(
        "- Expected answers, counted as successes (not in the error rate): "
        + (", ".join(f"{outcome}: {n:,}" for outcome, n in expected.items()) if expected else "none")
        + "."
    )
    if summary.get("knee"):
        knee = summary["knee"]
        lines.append(
            f"- Highest target rate whose 10-s window kept p95 < {TARGETS.p95_ms:.0f} ms and p99 < "
            f"{TARGETS.p99_ms:.0f} ms: {knee['target_rate']:,.0f} arrivals/s at t = {knee['t']:.0f} s "
            f"({knee['requests_per_second']:,.0f} req/s in that second)."
        )
    endpoints_found = summary["arrivals"].get("endpoints") or {}
    if endpoints_found:
        lines.append(
            "- Optional endpoints (from the API's OpenAPI document): "
            + ", ".join(
                f"{feature} `{path}`" if path else f"{feature} absent (weight 0)"
                for feature, path in endpoints_found.items()
            )
            + "."
        )
    other = summary["cpu"]["components"].get(OTHER_CPU, {}).get("share", 0.0)
    if other > 0.15:
        lines.append(
            f"- Other work on this machine (not the cluster, not Locust) used {other:.0%} of its CPU during the run: "
            "the latencies are pessimistic for this rate."
        )
    if summary["locust_cpu_warnings"]:
        lines.append(f"- Locust warned about its own CPU {summary['locust_cpu_warnings']} time(s): see locust.log.")
    lines += [
        "",
        f"## Latency (ms), whole run: p50 {_ms(agg['p50'])}, p95 {_ms(agg['p95'])}, p99 {_ms(agg['p99'])}, "
        f"p99.9 {_ms(agg['p999'])}, max {_ms(agg['max_ms'])}",
        "",
        "Locust's percentiles are approximate (response times are bucketed to 2 significant digits).",
        "",
        "| method | endpoint | requests | share | req/s | failures | p50 | p95 | p99 | max | mean bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    seconds = max(float(plan["seconds"]), 1.0)
    for e in sorted(endpoints, key=lambda e: -e.requests):
        lines.append(
            f"| {e.method} | `{e.name}` | {e.requests:,} | {e.requests / max(agg['requests'], 1):.1%} | "
            f"{e.requests / seconds:,.1f} | {e.failures:,} | {_ms(e.p50)} | {_ms(e.p95)} | {_ms(e.p99)} | "
            f"{_ms(e.max_ms)} | {e.avg_bytes:,.0f} |"
        )
    lines += [
        "",
        "## Cache (deltas of /metrics over the run, all API processes)",
        "",
        "Hit rate = (l1 hits + l2 hits) / lookups, lookups = l1 hits + l1 misses (the first tier sees every lookup "
        "while it is on). DB loads: `potluck_cache_load_seconds_count`. The cache starts as the cluster left it (a "
        "fresh cluster: empty), so the last column, from the middle of the run on, is the warmed-up figure.",
        "",
        "| family | lookups | l1 hits | l2 hits | l2 misses | DB loads | hit rate | first tier alone | "
        f"hit rate from t = {half.get('from_t', 0):.0f} s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for family, c in summary["cache"].items():
        late = half.get("families", {}).get(family)
        late_rate = f"{late['hit_rate']:.1%}" if late else "n/a"
        lines.append(
            f"| {family} | {c['lookups']:,.0f} | {c['l1_hits']:,.0f} | {c['l2_hits']:,.0f} | {c['l2_misses']:,.0f} | "
            f"{c['db_loads']:,.0f} | {c['hit_rate']:.1%} | {c['l1_hit_rate']:.1%} | "
            f"{late_rate} |"
        )
    if not summary["cache"]:
        lines.append("| (no cache lookups recorded) | | | | | | | | |")
    db = summary["db_queries"]
    if db:
        per_request = {role: n / max(agg["requests"], 1) for role, n in db.items()}
        lines += [
            "",
            "SQL statements sent (`potluck_db_queries_total`): "
            + ", ".join(f"{role} {n:,.0f} ({per_request[role]:.2f} per request)" for role, n in sorted(db.items()))
            + ".",
        ]
    redis_after = summary["redis"].get("after", {})
    if redis_after:
        sizes = redis_after.get("bytes_per_key", {})
        lines += [
            "",
            f"Redis cache instance after the run: {redis_after['keys']:,} keys, used_memory "
            f"{redis_after['used_memory'] / 2**20:,.1f} MiB (maxmemory {redis_after.get('maxmemory', 0) / 2**20:,.0f} "
            f"MiB), evicted_keys {redis_after.get('evicted_keys')}; MEMORY USAGE per key: "
            + (
                ", ".join(f"{p}: {s['mean']:,} B mean over {s['sampled']}" for p, s in sizes.items())
                if sizes
                else "not sampled"
            )
            + ".",
        ]
    lines += [
        "",
        "## CPU during the run (psutil)",
        "",
        f"{summary['cpu']['wall_seconds']:.0f} s of wall time x {summary['machine']['cpus']} CPUs = "
        f"{summary['cpu']['capacity_seconds']:.0f} CPU-seconds available.",
        "",
        "| component | CPU seconds | share of the machine | µs per request |",
        "|---|---:|---:|---:|",
    ]
    for name, row in summary["cpu"]["components"].items():
        lines.append(f"| {name} | {row['seconds']:,.1f} | {row['share']:.1%} | {row['us_per_request']:,.0f} |")
    failures = summary["failures"]
    lines += ["", "## Failures", ""]
    if failures:
        lines += ["| method | endpoint | error | count |", "|---|---|---|---:|"]
        for f in failures[:20]:
            error = f["Error"].replace("|", "\\|")[:160]
            lines.append(f"| {f['Method']} | `{f['Name']}` | {error} | {int(f['Occurrences']):,} |")
    else:
        lines.append("None.")
    lines += [
        "",
        "## Over time",
        "",
        "![p50/p95/p99, requests/s, errors and users over time](latency.png)",
        "",
        "Files: `locust_stats.csv` (per endpoint), `locust_stats_history.csv` (every second, per endpoint), "
        "`locust_failures.csv`, `locust_arrivals.json` (the open model's counters and the effective mix), "
        "`locust.log`, `summary.json`.",
        "",
    ]
    path.write_text("\n".join(lines))


def plan_text(plan: Mapping[str, Any]) -> str:
    if plan["scenario"] == "constant_load":
        return f"{plan['start_rate']:,.0f} arrivals/s for {plan['seconds']:.0f} s"
    stages = " → ".join(f"{s['target_rate']:,.0f}/s over {s['seconds']:.0f} s" for s in plan["stages"])
    return f"start {plan['start_rate']:,.0f}/s → {stages} (linear ramps)"


def targets_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    agg = summary["aggregated"]
    thr = summary["throughput"]
    rows: list[dict[str, Any]] = [
        {"target": f"p50 < {TARGETS.p50_ms:.0f} ms", "measured": f"{_ms(agg['p50'])} ms", "held": agg["p50"] < 100},
        {"target": f"p95 < {TARGETS.p95_ms:.0f} ms", "measured": f"{_ms(agg['p95'])} ms", "held": agg["p95"] < 500},
        {"target": f"p99 < {TARGETS.p99_ms:.0f} ms", "measured": f"{_ms(agg['p99'])} ms", "held": agg["p99"] < 1000},
        {
            "target": f"error rate < {TARGETS.error_rate:.0%}",
            "measured": f"{summary['error_rate']:.3%}",
            "held": summary["error_rate"] < TARGETS.error_rate,
        },
        {
            "target": f"{TARGETS.requests_per_second:,.0f} req/s",
            "measured": f"{thr['achieved_rps']:,.0f} req/s (this box; see docs/capacity.md)",
            "held": thr["achieved_rps"] >= TARGETS.requests_per_second,
        },
        {
            "target": f"{TARGETS.concurrent_users:,} concurrent users",
            "measured": f"{summary['plan']['peak_users']:,} simulated users",
            "held": summary["plan"]["peak_users"] >= TARGETS.concurrent_users,
        },
        {
            "target": "offered load delivered (open model: < 1% arrivals dropped)",
            "measured": f"{thr['dropped_share']:.2%} dropped",
            "held": thr["dropped_share"] < 0.01,
        },
    ]
    for family, c in summary["cache"].items():
        rows.append(
            {
                "target": f"cache hit rate ≥ {TARGETS.cache_hit_rate:.0%} ({family})",
                "measured": f"{c['hit_rate']:.1%}",
                "held": c["hit_rate"] >= TARGETS.cache_hit_rate,
            }
        )
    return rows


def api_answers(
    before: Mapping[MetricKey, float], after: Mapping[MetricKey, float], api_cpu_seconds: float
) -> dict[str, Any]:
    """What the API processes themselves answered (potluck_http_requests_total): fewer than Locust's requests when
    an edge cache answers some; the API's CPU per request it answered, and the 503s it shed."""
    answered = shed = 0.0
    for (name, labels), value in after.items():
        if name != "potluck_http_requests_total":
            continue
        delta = value - before.get((name, labels), 0.0)
        answered += delta
        if dict(labels).get("status") == "503" and dict(labels).get("route") == "<unmatched>":
            shed += delta  # LoadShedMiddleware's (a route's own 503, e.g. no database, has its template)
    return {
        "requests": answered,
        "shed_503": shed,
        "api_cpu_us_per_answer": api_cpu_seconds / answered * 1e6 if answered else None,
    }


def cpu_table(before: Mapping[str, float], after: Mapping[str, float], requests: int) -> dict[str, Any]:
    cpus = psutil.cpu_count() or 1
    wall = after["wall"] - before["wall"]
    capacity = wall * cpus
    components: dict[str, dict[str, float]] = {}
    named = 0.0
    for name in before:
        if name == "wall":
            continue
        seconds = after[name] - before[name]
        if name != "whole machine (busy)":
            named += seconds
        components[name] = {
            "seconds": seconds,
            "share": seconds / capacity if capacity else 0.0,
            "us_per_request": seconds / max(requests, 1) * 1e6,
        }
    other = components["whole machine (busy)"]["seconds"] - named
    components[OTHER_CPU] = {
        "seconds": other,
        "share": other / capacity if capacity else 0.0,
        "us_per_request": other / max(requests, 1) * 1e6,
    }
    return {"wall_seconds": wall, "capacity_seconds": capacity, "components": components}


# ------------------------------------------------------------------------------------------------------ main

# What a run without --full does when the options leave it open: short, and within this 2-core box's reach.
# docs/benchmarks.md, "Load tests": 250/s held with the mix before search, trending and recommendations (2.4 ms of
# API CPU per request); with them a request costs ~4.5 ms, and in 25-s probes with a third of the box taken by
# other work 100/s held (p95 130 ms) and 150/s did not (p95 1.1 s). The spike's peak, 200/s, touches that knee.
SHORT_CONSTANT_RATE = 100.0
SHORT_SPIKE_SCALE = 0.04
SHORT_SECONDS = 90.0
SHORT_OVERLOAD_PEAK = 300.0


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the short run's rate, scale and duration where the options leave them open (not with --full)."""
    if args.full:
        return args
    if args.scenario == "overload":  # the peak: twice the knee of docs/benchmarks.md's mixed load on this box
        args.rate = args.rate if args.rate is not None or args.scale is not None else SHORT_OVERLOAD_PEAK
        return args
    if args.rate is None and args.scale is None:
        if args.scenario == "constant_load":
            args.rate = SHORT_CONSTANT_RATE
        else:
            args.scale = SHORT_SPIKE_SCALE
    if args.duration is None and not args.stage_seconds:
        args.duration = SHORT_SECONDS
    return args


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description="Run a design load scenario with Locust against the local cluster and write a report.",
        epilog="Arguments not listed here are passed to Locust (e.g. --auth-share 0.3, --zipf-s 1.0).",
    )
    parser.add_argument("--scenario", choices=("constant_load", "spike_test", "overload"), default="constant_load")
    parser.add_argument(
        "--full",
        action="store_true",
        help="the design's figures for whatever is not given (1000/s for 30 min; spike x1 over 20 min) instead of "
        f"the short run ({SHORT_CONSTANT_RATE:.0f}/s; spike x{SHORT_SPIKE_SCALE}; {SHORT_SECONDS:.0f} s)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help=f"constant_load: arrivals/s (default {SHORT_CONSTANT_RATE:.0f}, --full 1000); spike_test: the peak",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help=f"seconds (default {SHORT_SECONDS:.0f}, --full the design's); spike_test: the three ramps, 5:10:5",
    )
    parser.add_argument(
        "--scale", type=float, help=f"factor on the design's rates (spike_test default {SHORT_SPIKE_SCALE}, --full 1)"
    )
    parser.add_argument(
        "--stage-seconds", help="spike_test: each ramp's seconds, 'a,b,c'; overload: 'head,peak,tail' (20,60,30)"
    )
    parser.add_argument("--base-rate", type=float, help="overload: arrivals/s before and after the peak (rate/4)")
    parser.add_argument("--per-user-rate", type=float, help="iterations/s per simulated user (default 0.5)")
    parser.add_argument(
        "--only", help="only these tasks of the mix (comma-separated, e.g. recipe,Member.me: the locustfile's --only)"
    )
    parser.add_argument("--out", type=Path, help="report directory (default bench/results/loadtest-<scenario>-<UTC>)")
    parser.add_argument(
        "--host",
        help="where Locust sends its requests (default: the cluster's load balancer), e.g. a second gateway server",
    )
    parser.add_argument(
        "--stop-after", action="store_true", help="stop the cluster afterwards if this command started it"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=300.0,
        help="seconds to wait at most for the worker to deliver the outbox backlog before the run (0: do not wait)",
    )
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args, locust_extra = parse_args(argv)
    apply_defaults(args)
    command_line = "uv run --group loadtest python -m bench.loadtest " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:]
    )
    plan = load_plan(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir: Path = args.out or RESULTS / f"loadtest-{args.scenario}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"plan: {plan_text(plan)}; up to {plan['peak_users']:,} simulated users; report in {out_dir}")

    info, was_up = ensure_cluster()
    settled = settle(info, args.settle_timeout) if args.settle_timeout > 0 else {}
    lb = args.host or info["lb"]["url"]
    redis_url = info["redis"]["cache"]["url"]
    prefix = out_dir / CSV_NAME
    locust_command = locust_invocation(lb, prefix, args, locust_extra)

    metrics_before = scrape_all(info)
    edge_before = edge_snapshot(info)
    redis_before = redis_snapshot(redis_url, sample_keys=False)
    sampler = Sampler(info)
    # Locust is our child: once it has exited, its CPU time is in our children's rusage.
    usage_before = _children_cpu()
    code = run_locust(locust_command, out_dir, plan, sampler)
    cpu_after = cpu_snapshot(info)
    metrics_after = scrape_all(info)
    edge_after = edge_snapshot(info)
    # CPU from when the first users ran (Locust's setup, logins and id paging, is left out), to its exit.
    cpu_before = sampler.cpu_at_start or cpu_snapshot(info)
    cpu_before["locust"] = 0.0
    cpu_after["locust"] = _children_cpu() - usage_before - sampler.locust_cpu_at_start
    sampler.metrics.append((float(plan["seconds"]), metrics_after))
    redis_after = redis_snapshot(redis_url, sample_keys=True)

    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        console.print(f"[red]Locust wrote no statistics[/red] (exit code {code}); see {out_dir / 'locust.log'}")
        return code or 1
    endpoints, aggregated = read_endpoints(stats_file)
    series = read_series(Path(f"{prefix}_stats_history.csv"), plan)
    arrivals_file = Path(f"{prefix}_arrivals.json")
    arrivals = json.loads(arrivals_file.read_text()) if arrivals_file.exists() else {}
    log_text = (out_dir / "locust.log").read_text(errors="replace")

    requests = aggregated.requests
    scheduled = int(arrivals.get("scheduled", 0))
    dropped = int(arrivals.get("dropped", 0))
    achieved = requests / max(float(plan["seconds"]), 1.0)
    summary: dict[str, Any] = {
        "command": command_line,
        "locust_command": shlex.join(["locust", *locust_command[1:]]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exit_code": code,
        "machine": {"cpus": psutil.cpu_count(), "python": sys.version.split()[0]},
        "code": code_version(),
        "cluster": {
            "lb": lb,
            "api_processes": len(info["api"]),
            "replicas": len(info["postgres"]["replicas"]),
            "was_up": was_up,
            "settled": settled,
        },
        "plan": plan,
        "headline": plan_text(plan),
        "aggregated": asdict(aggregated),
        "error_rate": aggregated.failures / max(requests, 1),
        "throughput": {
            "achieved_rps": achieved,
            "peak_rps": max(series.rps, default=0.0),
            # Iterations that ran to their end (older locustfiles: the arrivals scheduled, a few too many).
            "requests_per_iteration": requests / max(int(arrivals.get("completed") or scheduled), 1),
            "arrivals_scheduled": scheduled,
            "arrivals_late": int(arrivals.get("late", 0)),
            "arrivals_dropped": dropped,
            "dropped_share": dropped / max(scheduled + dropped, 1),
        },
        "knee": best_window(series, TARGETS) if plan["scenario"] == "spike_test" else None,
        "endpoints": [asdict(e) for e in endpoints],
        "cache": cache_table(metrics_before, metrics_after),
        "cache_second_half": second_half(sampler.metrics, float(plan["seconds"])),
        "cache_over_time": cache_over_time(sampler.metrics),
        "db_queries": db_queries(metrics_before, metrics_after),
        "redis": {"before": redis_before, "after": redis_after},
        "cpu": cpu_table(cpu_before, cpu_after, requests),
        "api_answers": api_answers(metrics_before, metrics_after, cpu_after["api"] - cpu_before["api"]),
        "edge": edge_table(edge_before, edge_after, requests),
        "failures": read_failures(Path(f"{prefix}_failures.csv")),
        "locust_cpu_warnings": log_text.count("CPU usage"),
        "arrivals": arrivals,
    }
    summary["targets"] = targets_rows(summary)
    if plan["scenario"] == "overload" and Path(f"{prefix}_requests.csv").exists():
        summary["overload"] = overload.analyze(Path(f"{prefix}_requests.csv"), plan)
        (out_dir / "overload.json").write_text(json.dumps(summary["overload"], indent=2) + "\n")
        console.print(overload.markdown(summary["overload"]))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(series, plan, summary, out_dir / "latency.png")
    write_report(summary, endpoints, out_dir / "report.md")
    if "overload" in summary:
        with (out_dir / "report.md").open("a") as report:
            report.write("\n## Overload (bench/overload.py)\n\n" + overload.markdown(summary["overload"]) + "\n")
    print_summary(summary, out_dir)

    if args.stop_after and not was_up:
        console.print("[bold]potluck cluster down[/bold] (this run started it)")
        _potluck("cluster", "down", check=False, capture=False)
    return 0 if code == 0 else code


def _children_cpu() -> float:
    usage = psutil.Process().cpu_times()
    return usage.children_user + usage.children_system


def print_summary(summary: Mapping[str, Any], out_dir: Path) -> None:
    table = Table(title=f"{summary['plan']['scenario']}: {summary['headline']}", title_justify="left")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("held", justify="center")
    for row in summary["targets"]:
        held = "[green]yes[/green]" if row["held"] else "[red]no[/red]"
        table.add_row(row["target"], row["measured"], held)
    console.print(table)
    answers = summary["api_answers"]
    if answers["api_cpu_us_per_answer"] is not None:
        api_us = summary["cpu"]["components"]["api"]["us_per_request"]
        console.print(
            f"API: {answers['requests']:,.0f} answers, {api_us:,.0f} µs of API CPU per request, "
            f"{answers['api_cpu_us_per_answer']:,.0f} per answer"
        )
    if edge := summary.get("edge"):
        console.print(
            f"edge: {edge['cache_hit']:,.0f} hits, {edge['cache_miss']:,.0f} misses, {edge['s_pass']:,.0f} passes; "
            f"hit ratio {edge['hit_ratio'] or 0:.1%}, {edge['share_of_requests'] or 0:.1%} of all requests"
        )
    console.print(f"report: {out_dir / 'report.md'}\nplot:   {out_dir / 'latency.png'}")


if __name__ == "__main__":
    raise SystemExit(main())
