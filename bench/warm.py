"""Cache warming after a cold Redis restart: the recipe_detail hit rate second by second, cold vs warmed.

The design's `warm_cache` job (src/potluck/warming/service.py) fills the shared cache with the most popular
recipes and the top trending searches through the readers' own guarded fills. This measures what it buys when
Redis comes back empty:

* PostgreSQL (primary only) + one Redis + two API processes, seeded with `potluck seed` (Zipf-popular view
  counts); the load's ids are ordered the way the warm job ranks popularity, so Zipf rank 1 is its first recipe;
* before each run Redis is killed and restarted empty on the same port, and the run waits until every API process
  uses its cache again (subscription back, first tier flushed and on); then (--reconnect-first, the default) bursts
  of reads of missing ids use up the processes' pooled Redis connections, which died with the old server and fail
  once each on first use, tripping the breakers (see reconnect_pools);
* cold: the load starts at once; warm (one run per --warm-recipes value): `potluck warm-cache` first, timed;
* the load: one `wrk -t1` per API process, `GET /api/v1/recipes/{id}` with Zipf ids (bench/wrk/zipf_get.lua),
  for --duration seconds, while both processes' /metrics are scraped every second. Hit rate of a window: reads
  served by the first tier or Redis / reads, as deploy/prometheus/alerts.yml computes it; also reported as
  tests/integration/test_warming.py counts it, hits / (hits + Redis misses).

    uv run python -m bench.warm --recipes 10000 --duration 60
    uv run --group loadtest python -m bench.warm --recipes 10000 --duration 60       # also draws the plot
    uv run --group loadtest python -m bench.warm --plot-from bench/results/warm.json # only the plot, again

Prints a Rich table and a Markdown table (headed with the command line), writes bench/results/warm.json and,
when matplotlib is installed (the loadtest group), docs/img/warm-hit-rate.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench.cache_read import (
    BIN_DIR,
    FAMILY,
    HOST,
    ROOT,
    Bench,
    Server,
    WrkResult,
    cache_counters,
    code_version,
    cpu_snapshot,
    hit_rate,
    metrics_url,
    seeded_bench,
    signals_as_interrupt,
    wait_for_quiet,
    wait_ready,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "warm.json"
DEFAULT_PLOT = ROOT / "docs" / "img" / "warm-hit-rate.png"
TARGET = 0.90
# The first tier's hard TTL (cache.local_ttl_seconds): once it has passed since the last request, the first tier
# holds nothing from an earlier run even if a process had not noticed the restart.
LOCAL_TTL_S = 5.0
MARKS_S = (1, 5, 10)
# The same comparison by requests served: a faster run reaches a given second with more of the cache filled.
MARKS_REQUESTS = (5_000, 20_000, 50_000)

err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 200)


# --------------------------------------------------------------------------------------------- setup


def _gauges(client: httpx.Client, port: int) -> dict[str, float]:
    wanted = ("potluck_cache_local_enabled", "potluck_cache_breaker_open")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get(metrics_url(port)).text):
        for sample in family.samples:
            if sample.name in wanted:
                values[sample.name] = float(sample.value)
    return values


def store_errors(ports: Sequence[int]) -> dict[str, float]:
    """recipe_detail store errors and timeouts by operation (get, lease, fill, ...), summed over the processes."""
    totals: dict[str, float] = {}
    with httpx.Client(timeout=5) as client:
        for port in ports:
            for family in text_string_to_metric_families(client.get(metrics_url(port)).text):
                for sample in family.samples:
                    if sample.name == "potluck_cache_errors_total" and sample.labels.get("family") == FAMILY:
                        operation = sample.labels["operation"]
                        totals[operation] = totals.get(operation, 0.0) + sample.value
    return totals


def wait_cache_usable(servers: Sequence[Server], timeout: float = 30) -> dict[str, Any]:
    """Until every process answers /readyz with Redis ok and uses its first tier again; what the gauges said.

    Not the breaker gauge: it can stay at 1 after the breaker has closed (a GET that began before the breaker
    opened and succeeds after closes it without touching the gauge, cache.py `_second_tier`). A breaker that is
    really open is probed every 50 ms once a second has passed since it opened and closes when Redis answers.
    """
    began = time.monotonic()
    for server in servers:
        wait_ready(server, timeout=timeout, need_local_tier=True)
    deadline = began + timeout
    seen: dict[str, Any] = {}
    with httpx.Client(timeout=2) as client:
        for server in servers:
            ready: Any = None
            gauges: dict[str, float] = {}
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    ready = client.get(f"http://{HOST}:{server.port}/readyz").json()
                    gauges = _gauges(client, server.port)
                    if ready.get("redis") == "ok" and gauges.get("potluck_cache_local_enabled") == 1:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{server.name}: the cache is not usable {timeout:.0f} s after the restart "
                        f"(/readyz {ready}, {gauges})"
                    )
                time.sleep(0.1)
            seen[server.name] = gauges
    return {"usable_wait_s": round(time.monotonic() - began, 2), "gauges": seen}


def redis_keys(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.dbsize())


def cold_restart(bench: Bench, servers: Sequence[Server], last_load_ended: float) -> dict[str, Any]:
    """Kill Redis (dataset lost), start it empty on the same port, wait until the API processes use it again."""
    # A killed Redis closes the subscription's socket, so each process flushes its first tier at once (or at the
    # latest at its 1.1 s silence deadline); waiting out the first tier's TTL as well makes that certain.
    time.sleep(max(0.0, last_load_ended + LOCAL_TTL_S + 0.5 - time.monotonic()))
    began = time.monotonic()
    bench.redis.restart()
    # The bus notices the lost subscription and resubscribes (backoff up to 1 s); a breaker opened by the last
    # run's timeouts is probed again (after 1 s) and closes.
    time.sleep(2.0)
    usable = wait_cache_usable(servers)
    return {"restart_to_usable_s": round(time.monotonic() - began, 2), **usable}


async def _burst(ports: Sequence[int], per_port: int) -> None:
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(port: int) -> None:
            # A random id: no recipe has it, so the load's keys stay cold (only a negative entry is stored).
            await client.get(f"http://{HOST}:{port}/api/v1/recipes/{uuid.uuid4()}")

        await asyncio.gather(*(one(port) for port in ports for _ in range(per_port)))


def reconnect_pools(ports: Sequence[int], per_port: int, rounds: int = 10) -> dict[str, Any]:
    """Bursts of reads of missing ids until one runs clean: every pooled Redis connection dies with the server.

    The store's client does not retry (by design: fail fast), and redis-py hands out a pooled connection whose
    server has gone without noticing, so the first command on each one fails ("Connection closed by server");
    three failures open a process's breaker for a second. These bursts use the stale connections up (a failed
    connection reconnects on its next use) before the load starts, so the load measures the warm entries rather
    than the reconnection.
    """
    history = []
    for _ in range(rounds):
        before = cache_counters(ports)
        asyncio.run(_burst(ports, per_port))
        after = cache_counters(ports)
        failed = sum(after.get(k, 0.0) - before.get(k, 0.0) for k in ("errors_total", "bypasses_total"))
        history.append(failed)
        if not failed:
            break
        time.sleep(1.5)  # the breaker's probe (1 s after it opened) closes it again
    else:
        raise RuntimeError(f"store errors after {rounds} bursts of requests: {history}")
    return {"bursts": len(history), "failed_reads_per_burst": history}


# --------------------------------------------------------------------------------------------- warm job


_WARM_ROWS = {
    "recipes": "recipe documents present",
    "recipes_gone": "recipes gone",
    "searches": "searches warmed",
    "searches_skipped": "searches skipped",
    "trending_lists": "trending lists recomputed",
    "seconds": "seconds",
}


def run_warm_cache(bench: Bench, args: argparse.Namespace, recipes: int) -> dict[str, Any]:
    """`potluck warm-cache --recipes N` as an operator runs it: a fresh process; its wall time and its report."""
    argv = [str(BIN_DIR / "potluck"), "warm-cache", "--recipes", str(recipes)]
    argv += ["--searches", str(args.searches), "--trending-items", str(args.trending_items)]
    env = {**bench.api_env(cache_enabled=True), "COLUMNS": "200"}
    began = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report: dict[str, Any] = {"argv": shlex.join(["potluck", *argv[1:]]), "wall_s": round(wall, 2)}
    for key, label in _WARM_ROWS.items():
        match = re.search(rf"^\W*{re.escape(label)}[^│|\n]*[│|]\s*([\d.]+)", proc.stdout, re.MULTILINE)
        report[f"job_{key}"] = float(match.group(1)) if match else None
    return report


# --------------------------------------------------------------------------------------------- the load


@dataclass
class Sample:
    t: float  # seconds since wrk was started
    counters: dict[str, float]


@dataclass
class Window:
    start: float
    end: float
    # Every request asks the first tier first, so its lookups count the requests.
    requests: float
    hits_l1: float
    hits_l2: float
    misses_l2: float  # the reads that went on to the lease and the database
    bypassed: float  # breaker open, or a store error or timeout: straight to the database
    # Served from a cache tier / requests: the project's hit rate (deploy/prometheus/alerts.yml, bench/loadtest.py).
    hit_rate: float | None
    # Hits / (hits + Redis misses), as tests/integration/test_warming.py counts: it leaves out the reads that
    # waited for another read's load in the same process, and those that bypassed the cache.
    hit_rate_of_lookups: float | None


def _delta(a: Mapping[str, float], b: Mapping[str, float], key: str) -> float:
    return b.get(key, 0.0) - a.get(key, 0.0)


def _window(a: Sample, b: Sample) -> Window:
    def d(key: str) -> float:
        return _delta(a.counters, b.counters, key)

    requests = d("hits_l1") + d("misses_l1")
    hits = d("hits_l1") + d("hits_l2")
    return Window(
        start=round(a.t, 3),
        end=round(b.t, 3),
        requests=requests,
        hits_l1=d("hits_l1"),
        hits_l2=d("hits_l2"),
        misses_l2=d("misses_l2"),
        bypassed=d("bypasses_total") + d("errors_total"),
        hit_rate=min(1.0, hits / requests) if requests else None,
        hit_rate_of_lookups=hits / (hits + d("misses_l2")) if hits + d("misses_l2") else None,
    )


def load_with_scrapes(bench: Bench, ports: Sequence[int], duration: int, label: str) -> tuple[WrkResult, list[Sample]]:
    """wrk for ``duration`` s in a thread; the processes' counters before it starts and every second meanwhile."""
    samples = [Sample(0.0, cache_counters(ports))]
    with ThreadPoolExecutor(1) as pool:
        t0 = time.monotonic()
        future = pool.submit(bench.wrk, ports, duration, 2, label)
        while True:
            tick = int(time.monotonic() - t0) + 1
            done, _ = wait_futures([future], timeout=max(0.0, t0 + tick - time.monotonic()))
            if done or tick > duration:
                break
            samples.append(Sample(time.monotonic() - t0, cache_counters(ports)))
        result = future.result()
    samples.append(Sample(time.monotonic() - t0, cache_counters(ports)))  # wrk's exit: a window of ~no requests
    return result, samples


def summarize(samples: Sequence[Sample], target: float, duration: int) -> dict[str, Any]:
    """Cumulative hit rates over the first seconds and the whole load, and when the 1 s windows settle."""
    windows = [_window(a, b) for a, b in itertools.pairwise(samples)]

    def upto(mark: float) -> Window:
        # The sample taken at (about) `mark` seconds: the load's first `mark` seconds, cumulated.
        return _window(samples[0], next((s for s in samples[1:] if s.t >= mark - 0.05), samples[-1]))

    # The scrape after wrk exits closes a window of (almost) no requests: it says nothing about settling.
    timed = [w for w in windows if w.start < duration - 0.5 and w.hit_rate is not None]
    below = [w for w in timed if w.hit_rate is not None and w.hit_rate < target]
    # The end of the last window below the target: from there on every 1 s window stays at or above it (None:
    # the run ended below it).
    stays_after: float | None = below[-1].end if below else 0.0
    if below and below[-1] is timed[-1]:
        stays_after = None
    whole = _window(samples[0], samples[-1])
    by_requests: dict[str, dict[str, float | None]] = {}
    for mark in MARKS_REQUESTS:
        # The first sample by which `mark` requests were served (the 1 s grain makes it a little more).
        reached = next(
            (s for s in samples[1:] if _window(samples[0], s).requests >= mark and s.t < duration + 0.5), None
        )
        if reached is not None:
            w = _window(samples[0], reached)
            by_requests[str(mark)] = {"hit_rate": w.hit_rate, "requests": w.requests, "t": round(reached.t, 1)}
    return {
        "first": {f"{mark}s": upto(mark).hit_rate for mark in MARKS_S},
        "by_requests": by_requests,
        "first_of_lookups": {f"{mark}s": upto(mark).hit_rate_of_lookups for mark in MARKS_S},
        "cumulative": whole.hit_rate,
        "cumulative_of_lookups": whole.hit_rate_of_lookups,
        "stays_at_target_after_s": stays_after,
        "windows_below_target": len(below),
        "requests_first_1s": upto(1).requests,
        "requests": whole.requests,
        "misses_l2": whole.misses_l2,
        "bypassed": whole.bypassed,
        "windows": [asdict(w) for w in windows],
    }


# --------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    name: str
    description: str
    warm_recipes: int | None
    restart: dict[str, Any]
    warm: dict[str, Any] | None
    redis_keys_at_start: int
    wrk: WrkResult
    summary: dict[str, Any]
    counters: dict[str, float]
    cpu_seconds: dict[str, float]
    machine_busy: float
    store_errors: dict[str, float]  # by operation, over the run
    background: dict[str, Any] = field(default_factory=dict)


def one_run(
    bench: Bench,
    servers: Sequence[Server],
    args: argparse.Namespace,
    *,
    name: str,
    warm_recipes: int | None,
    last_load_ended: float,
) -> Run:
    description = "no warming" if warm_recipes is None else f"`potluck warm-cache --recipes {warm_recipes}` first"
    err.rule(f"[bold]{name}[/bold]: cold Redis restart, {description}")
    background = wait_for_quiet(args.wait_idle)
    restart = cold_restart(bench, servers, last_load_ended)
    err.print(f"  Redis restarted empty; caches usable again after {restart['restart_to_usable_s']:.1f} s")
    if args.reconnect_first:
        restart["reconnect"] = reconnect_pools([s.port for s in servers], 2 * args.connections)
        # Their negative entries (a missing id is remembered for 30 s) are not warm data: not counted below.
        restart["reconnect"]["negative_entries"] = redis_keys(bench.redis.url)
        err.print(
            f"  stale Redis connections used up: {restart['reconnect']['bursts']} bursts of missing ids, failed reads "
            f"{restart['reconnect']['failed_reads_per_burst']}"
        )
    warm = None
    if warm_recipes is not None:
        warm = run_warm_cache(bench, args, warm_recipes)
        err.print(
            f"  warm-cache: {warm['wall_s']:.1f} s wall ({warm['job_seconds']} s in the job), "
            f"{warm['job_recipes']:.0f} recipe documents, {warm['job_searches']:.0f} searches, "
            f"{warm['job_trending_lists']:.0f} trending lists"
        )
    keys = redis_keys(bench.redis.url) - restart.get("reconnect", {}).get("negative_entries", 0)
    ports = [s.port for s in servers]
    pids = [s.proc.pid for s in servers]
    err.print(f"  {keys:,} keys in Redis; load {args.duration} s, {args.connections} connections per process")
    errors_before = store_errors(ports)
    cpu_before = cpu_snapshot(pids, bench.redis.pid, bench.postmaster_pid())
    result, samples = load_with_scrapes(bench, ports, args.duration, name)
    cpu_after = cpu_snapshot(pids, bench.redis.pid, bench.postmaster_pid())
    errors = {op: n - errors_before.get(op, 0.0) for op, n in store_errors(ports).items()}
    summary = summarize(samples, args.target, args.duration)
    stays = summary["stays_at_target_after_s"]
    err.print(
        f"  {result.requests:,} requests ({result.rps:,.0f}/s), errors {result.errors}; hit rate "
        + ", ".join(f"first {k[:-1]} s {_pct(v)}" for k, v in summary["first"].items())
        + f", whole run {_pct(summary['cumulative'])}; ≥{args.target:.0%} for good after "
        + (f"{stays:.1f} s" if stays is not None else "never")
    )
    return Run(
        name=name,
        description=description,
        warm_recipes=warm_recipes,
        restart=restart,
        warm=warm,
        redis_keys_at_start=keys,
        wrk=result,
        summary=summary,
        counters={k: round(v, 4) for k, v in hit_rate(samples[0].counters, samples[-1].counters).items()},
        cpu_seconds={
            "api": round(cpu_after.api - cpu_before.api, 2),
            "redis": round(cpu_after.redis - cpu_before.redis, 2),
            "postgres": round(cpu_after.postgres - cpu_before.postgres, 2),
            "wrk": round(result.wrk_cpu_s, 2),
        },
        machine_busy=round((cpu_after.busy - cpu_before.busy) / max(1.0, cpu_after.total - cpu_before.total), 3),
        store_errors={op: n for op, n in errors.items() if n},
        background=background,
    )


# --------------------------------------------------------------------------------------------- report


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def _by_requests(run: Run, mark: int) -> float | None:
    reached = run.summary["by_requests"].get(str(mark))
    return reached["hit_rate"] if reached else None


def report(runs: Sequence[Run], args: argparse.Namespace, command: str, setup: dict[str, Any]) -> dict[str, Any]:
    headers = ["run", "warm-cache wall s", "recipes warmed", "Redis keys at load start"]
    headers += [f"hit rate, first {m} s" for m in MARKS_S]
    headers += ["hit rate, whole run", f"1 s windows ≥ {args.target:.0%} after", "requests, first 1 s", "requests"]
    headers += ["Redis misses", "bypassed (breaker, timeouts)"]
    rows = []
    for run in runs:
        stays = run.summary["stays_at_target_after_s"]
        rows.append(
            [
                run.name,
                f"{run.warm['wall_s']:.1f}" if run.warm else "-",
                f"{run.warm['job_recipes']:,.0f}" if run.warm and run.warm["job_recipes"] is not None else "-",
                f"{run.redis_keys_at_start:,}",
                *(_pct(run.summary["first"][f"{m}s"]) for m in MARKS_S),
                _pct(run.summary["cumulative"], 2),
                f"{stays:.0f} s" if stays is not None else f"> {args.duration} s",
                f"{run.summary['requests_first_1s']:,.0f}",
                f"{run.wrk.requests:,}",
                f"{run.summary['misses_l2']:,.0f}",
                f"{run.summary['bypassed']:,.0f}",
            ]
        )
    cold = runs[0]
    ratio_headers = ["ratio", *(f"first {m} s" for m in MARKS_S), "whole run"]
    ratio_headers += [*(f"first {m:,} requests" for m in MARKS_REQUESTS), "requests served"]
    ratio_rows = []
    for run in runs[1:]:
        ratio_rows.append(
            [
                f"{run.name} / {cold.name}",
                *(_ratio(run.summary["first"][f"{m}s"], cold.summary["first"][f"{m}s"]) for m in MARKS_S),
                _ratio(run.summary["cumulative"], cold.summary["cumulative"]),
                *(_ratio(_by_requests(run, m), _by_requests(cold, m)) for m in MARKS_REQUESTS),
                _ratio(run.wrk.requests, cold.wrk.requests),
            ]
        )
    request_headers = ["run", *(f"hit rate, first {m:,} requests" for m in MARKS_REQUESTS)]
    request_rows = []
    for run in runs:
        cells = [run.name]
        for mark in MARKS_REQUESTS:
            reached = run.summary["by_requests"].get(str(mark))
            cells.append(f"{_pct(reached['hit_rate'])} (at {reached['t']:.0f} s)" if reached else "-")
        request_rows.append(cells)

    title = (
        f"recipe_detail hit rate after a cold Redis restart: Zipf s={args.zipf_s:g} over {setup['public_ids']:,} ids, "
        f"{args.duration} s of wrk"
    )
    tables = (
        (headers, rows, title),
        (request_headers, request_rows, "by requests served (the 1 s grain rounds each mark up)"),
        (ratio_headers, ratio_rows, "warm / cold"),
    )
    markdown = [f"`{command}`"]
    for heads, body, table_title in tables:
        table = Table(title=table_title)
        for column in heads:
            table.add_column(column, justify="left" if column in ("run", "ratio") else "right")
        for row in body:
            table.add_row(*row)
        out.print(table)
        markdown += ["", "| " + " | ".join(heads) + " |", "|---|" + "---:|" * (len(heads) - 1)]
        markdown += ["| " + " | ".join(row) + " |" for row in body]

    busy = ", ".join(f"{r.name} {r.machine_busy:.0%}" for r in runs)
    before = ", ".join(f"{r.name} {r.background.get('busy_share_before_run', 0):.0%}" for r in runs)
    markdown += [
        "",
        f"{setup['public_ids']:,} public recipe ids (of {args.recipes:,} seeded), ranked as the warm job ranks them; "
        f"{args.processes} API processes, one `wrk -t1 -c{args.connections}` each; before every run Redis was killed "
        "and restarted empty on the same port, and the load began once both processes used it again (first tier "
        "flushed and back on, Redis answering /readyz)"
        + (
            "; then bursts of reads of missing ids used up the processes' stale Redis connections (--reconnect-first)"
            if args.reconnect_first
            else ""
        )
        + ". Hit rate: requests served by the first tier or Redis / "
        "requests (the formula of deploy/prometheus/alerts.yml), from both processes' /metrics scraped every "
        f"second. Machine busy during the runs (all cores, anything): {busy}; before them: {before}.",
        "",
        "Counted as tests/integration/test_warming.py counts, hits / (hits + Redis misses), which leaves out the "
        "reads that waited for another read's load in the same process and those that bypassed the cache: "
        + "; ".join(
            f"{r.name} "
            + ", ".join(f"first {k[:-1]} s {_pct(v)}" for k, v in r.summary["first_of_lookups"].items())
            + f", whole run {_pct(r.summary['cumulative_of_lookups'], 2)}"
            for r in runs
        )
        + ".",
        "",
        "Store errors and timeouts (recipe_detail, by operation; three in a row open a process's breaker for 1 s): "
        + "; ".join(
            f"{r.name} " + (", ".join(f"{op} {n:,.0f}" for op, n in sorted(r.store_errors.items())) or "none")
            for r in runs
        )
        + (
            f". The priming load on fresh processes (Redis up): {prime.get('errors_total', 0):,.0f} store errors, "
            f"{prime.get('bypasses_total', 0):,.0f} reads bypassed of {prime.get('requests', 0):,.0f}."
            if (prime := setup.get("prime"))
            else "."
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
            "recipes": args.recipes,
            "users": args.users,
            "seed": args.seed,
            "zipf_s": args.zipf_s,
            "processes": args.processes,
            "connections_per_process": args.connections,
            "duration_s": args.duration,
            "warm_recipes": args.warm_recipes,
            "searches": args.searches,
            "trending_items": args.trending_items,
            "target": args.target,
            "reconnect_first": args.reconnect_first,
            "hit_rate": "(hits l1 + hits l2) / (hits l1 + misses l1), recipe_detail, both processes",
            "hit_rate_of_lookups": "(hits l1 + hits l2) / (hits l1 + hits l2 + misses l2)",
        },
        "setup": setup,
        "runs": [asdict(r) for r in runs],
        "markdown": "\n".join(markdown),
    }


def plot(data: Mapping[str, Any], path: Path) -> bool:
    """Per-second hit rate over the run, every run on one chart, and the first 10 s enlarged."""
    try:
        import matplotlib
    except ImportError:
        err.print("[yellow]no matplotlib: `uv run --group loadtest python -m bench.warm --plot-from ...`[/yellow]")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    params = data["parameters"]
    fig, (whole, start) = plt.subplots(
        1, 2, figsize=(12, 4.6), sharey=True, gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    palette = ("#7f8c8d", "#2980b9", "#16a085", "#d35400", "#8e44ad")
    for color, run in zip(palette, data["runs"], strict=False):
        windows = [
            w
            for w in run["summary"]["windows"]
            if w["hit_rate"] is not None and w["start"] < params["duration_s"] - 0.5  # not the tail after wrk
        ]
        xs = [windows[0]["start"], *(w["end"] for w in windows)] if windows else []
        ys = [w["hit_rate"] for w in windows]
        label = run["name"] + (f" ({run['warm']['wall_s']:.1f} s warm-cache first)" if run["warm"] else "")
        for axis in (whole, start):
            axis.step(xs, [*ys, ys[-1]] if ys else [], where="post", color=color, lw=1.8, label=label)
    for axis, right in ((whole, params["duration_s"]), (start, min(10, params["duration_s"]))):
        axis.axhline(params["target"], color="#c0392b", ls=":", lw=1.2, label=f"{params['target']:.0%}")
        axis.set_xlim(0, right)
        axis.grid(True, alpha=0.25)
        axis.set_xlabel("seconds since the load started (1 s windows)")
    whole.set_ylabel("recipe_detail hit rate per second\n(first tier + Redis hits) / requests")
    whole.yaxis.set_major_formatter(PercentFormatter(1.0))
    whole.set_ylim(0, 1.02)
    whole.legend(loc="lower right", fontsize=8.5, framealpha=0.92)
    whole.set_title(
        f"after a cold Redis restart: Zipf s={params['zipf_s']:g} over {data['setup']['public_ids']:,} recipes, "
        f"{params['processes']} API processes",
        fontsize=10.5,
    )
    start.set_title(f"the first {min(10, params['duration_s'])} s", fontsize=10.5)
    # What a cache holding exactly the top n ids would serve: their share of the Zipf reads.
    ids, s = data["setup"]["public_ids"], params["zipf_s"]
    total = sum(1 / k**s for k in range(1, ids + 1))
    for n in sorted({r["warm_recipes"] for r in data["runs"] if r["warm_recipes"]}):
        share = sum(1 / k**s for k in range(1, min(n, ids) + 1)) / total
        start.axhline(share, color="#34495e", ls="--", lw=0.9)
        start.annotate(
            f"top {n:,} ids: {share:.0%} of reads",
            (0.15, share),
            textcoords="offset points",
            xytext=(0, -11),
            fontsize=8,
            color="#34495e",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    err.print(f"plot written to {path}")
    return True


# --------------------------------------------------------------------------------------------- main


def command_line() -> str:
    """The command as typed: the parent `uv run ...` when there is one, else this interpreter's arguments."""
    with contextlib.suppress(OSError):
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        words = [w.decode(errors="replace") for w in parent]
        if words and Path(words[0]).name == "uv" and "bench.warm" in words:
            return shlex.join(["uv", *words[1:]])
    return shlex.join(["python", "-m", "bench.warm", *sys.argv[1:]])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.warm", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recipes", type=int, default=10_000, help="recipes to seed")
    parser.add_argument("--users", type=int, default=1_000, help="users to seed")
    parser.add_argument("--seed", type=int, default=7, help="seed of the demo data")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load after each restart")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections per API process")
    parser.add_argument("--processes", type=int, default=2, help="API processes")
    parser.add_argument("--zipf-s", type=float, default=1.0, help="Zipf exponent of the id popularity")
    parser.add_argument(
        "--warm-recipes",
        type=int,
        nargs="*",
        default=[100, 1000],
        help="one warmed run per value: `potluck warm-cache --recipes N` (the design's figure is 100)",
    )
    parser.add_argument("--searches", type=int, default=10, help="warm-cache --searches")
    parser.add_argument("--trending-items", type=int, default=20, help="warm-cache --trending-items")
    parser.add_argument("--target", type=float, default=TARGET, help="the hit rate the per-second windows must hold")
    parser.add_argument(
        "--prime",
        type=int,
        default=5,
        help="seconds of untimed load before the first run (every run then finds processes that have served load)",
    )
    parser.add_argument(
        "--reconnect-first",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after each restart, use up the API processes' stale Redis connections with reads of missing ids "
        "before the load (without it the load's first reads do, trip the breakers, and the first second measures "
        "that rather than the warm entries)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="where to draw the PNG (needs matplotlib)")
    parser.add_argument("--plot-from", type=Path, default=None, help="only draw the plot from this JSON file")
    parser.add_argument("--wait-idle", type=int, default=30, help="wait up to this many s for other load to stop")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_from is not None:
        return 0 if plot(json.loads(args.plot_from.read_text()), args.plot) else 1
    if shutil.which("wrk") is None:
        err.print("[red]wrk not found (apt-get install wrk)[/red]")
        return 2
    command = command_line()
    with contextlib.ExitStack() as stack:
        stack.enter_context(signals_as_interrupt())
        started = time.monotonic()
        bench = seeded_bench(stack, args, prefix="potluck-bench-warm-")
        err.print(f"{len(bench.ids):,} public recipe ids exported, most viewed first")
        api = bench.start_api(cache_enabled=True)
        ports = [s.port for s in api]
        prime: dict[str, float] | None = None
        if args.prime > 0:
            err.print(f"priming the API processes: {args.prime} s of the same load (untimed)")
            before = cache_counters(ports)
            bench.wrk(ports, args.prime, seed=1, label="prime")
            # Fresh processes, Redis up all along: does the first burst trip the breaker without a restart too?
            prime = {k: round(v, 4) for k, v in hit_rate(before, cache_counters(ports)).items()}
            err.print(
                f"  prime: {prime['requests']:,.0f} requests, hit rate {prime['hit_rate']:.1%}, "
                f"{prime.get('bypasses_total', 0):,.0f} bypassed, {prime.get('errors_total', 0):,.0f} store errors"
            )
        last_load_ended = time.monotonic()
        setup: dict[str, Any] = {"public_ids": len(bench.ids), "setup_seconds": round(time.monotonic() - started, 1)}
        if prime is not None:
            setup["prime"] = {"seconds": args.prime, **prime}

        runs: list[Run] = []
        for name, warm_recipes in [("cold", None), *((f"warm {n:,}", n) for n in args.warm_recipes)]:
            run = one_run(bench, api, args, name=name, warm_recipes=warm_recipes, last_load_ended=last_load_ended)
            last_load_ended = time.monotonic()
            runs.append(run)

        data = report(runs, args, command, setup)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(data, indent=2) + "\n")
        err.print(f"results written to {args.output}")
    plot(data, args.plot)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; every process this run started was stopped[/red]")
        sys.exit(130)
