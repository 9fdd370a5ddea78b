"""`python -m bench.endpoint_cost`: where the mix's API CPU goes, task by task (issues 14 and 15).

    uv run --group loadtest python -m bench.endpoint_cost                 # every task at 40 iterations/s, then the mix
    uv run --group loadtest python -m bench.endpoint_cost --tasks Visitor.recipe,Member.me --mix-rate 0
    uv run --group loadtest python -m bench.endpoint_cost --render bench/results/endpoint-cost-<UTC>/endpoint_cost.json

Against the running local cluster (`potluck cluster up`; this command does not start one), with
bench/loadtest.py's own helpers (cluster status, CPU of each component from /proc through psutil, /metrics):

1. Idle: each component's CPU per second over a quiet window (`--idle-seconds`): the background (the worker's
   periodic jobs, the cache's subscription pings, ...) that every window below subtracts.
2. Every task of the mix (bench/locustfile.py, as `Class.task`: anonymous Visitor and signed-in Member tasks
   apart), alone (the locustfile's `--only`) at `--rate` iterations/s: after `--warmup` s a window of `--seconds`
   s whose API, PostgreSQL, Redis and worker CPU, minus the idle rate, over the requests the API processes
   answered in it (potluck_http_requests_total), is the cost per request; requests per iteration (Locust's
   requests over the iterations completed), p50/p99 (Locust's, whole run), SQL statements and cache loads (misses
   that went to the database) per request. Logins cost ~160 ms of argon2 each: the tasks that log in run at
   `--slow-rate`.
3. The mix itself at `--mix-rate` (default 100/s), measured the same way.
4. Each task's contribution to the mix's API CPU per request, with the mix's own weights (the locustfile's plan
   printer: class weights from --auth-share, task weights from its @task decorators): a task i that is a share
   p_i of the iterations, with r_i requests per iteration and c_i µs per request alone, adds
   p_i * r_i * c_i / sum_j(p_j * r_j) µs to every request of the mix. Their sum is compared with 3.

Output: bench/results/endpoint-cost-<UTC>/ (or `--out`): endpoint_cost.json, endpoint_cost.md, endpoint_cost.png,
and each run's Locust files in a subdirectory. Each task's figures are written as soon as it is measured.
Figures on this 2-core box include whatever else runs on it: keep the rates modest and say so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import loadtest
from bench.task_mix import contributions, iteration_shares

console = loadtest.console
# Components whose CPU per request is reported (cpu_snapshot's names, grouped).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api": ("api",),
    "postgres": ("postgres primary", "postgres replicas"),
    "redis": ("redis",),
    "worker": ("celery worker + beat",),
    "nginx": ("nginx",),
}
# Tasks that log in (argon2, ~160 ms of CPU each): run at --slow-rate.
SLOW_TASKS = ("Visitor.sign_in", "Visitor.write_signed_out")
# Past the window, so that Locust's stop is never inside it (the window is timed from the stats history Locust
# writes every second, which run_locust sees ~1 s late).
TAIL_SECONDS = 5.0


# ----------------------------------------------------------------------------------------------- the mix


def read_mix(locust_args: Sequence[str]) -> dict[str, Any]:
    """The whole mix's weights, from the locustfile's plan printer (so they cannot drift from it)."""
    args, _ = loadtest.parse_args(["--rate", "1", "--duration", "1"])
    mix: dict[str, Any] = loadtest.load_plan(args, locust_args)["mix"]
    return mix


# -------------------------------------------------------------------------------------------- measurement


@dataclass(slots=True)
class Mark:
    """Every component's CPU seconds and the API's counters at one instant."""

    cpu: dict[str, float]
    metrics: dict[loadtest.MetricKey, float]


def take_mark(info: Mapping[str, Any]) -> Mark:
    return Mark(loadtest.cpu_snapshot(info), loadtest.scrape_all(info))


def answered(before: Mark, after: Mark) -> float:
    """Requests the API processes answered between two marks (the /metrics scrapes are not counted)."""
    name = "potluck_http_requests_total"
    return sum(v - before.metrics.get(k, 0.0) for k, v in after.metrics.items() if k[0] == name)


def rates(before: Mark, after: Mark) -> dict[str, float]:
    """Per second between two marks: each component's CPU seconds, and the API's answers (`answers`)."""
    wall = after.cpu["wall"] - before.cpu["wall"]
    out = {name: sum(after.cpu[p] - before.cpu[p] for p in parts) / wall for name, parts in COMPONENTS.items()}
    return {**out, "answers": answered(before, after) / wall, "wall": wall}


def window_cost(before: Mark, after: Mark, idle: Mapping[str, float]) -> dict[str, Any]:
    """µs of CPU per request answered in the window, each component minus its idle rate."""
    busy = rates(before, after)
    wall = busy["wall"]
    requests = max((busy["answers"] - idle.get("answers", 0.0)) * wall, 1.0)
    per_request = {name: max(busy[name] - idle.get(name, 0.0), 0.0) * wall / requests * 1e6 for name in COMPONENTS}
    gross = busy["api"] * wall / requests * 1e6
    sql = sum(loadtest.db_queries(before.metrics, after.metrics).values())
    cache = loadtest.cache_table(before.metrics, after.metrics)
    return {
        "wall": wall,
        "requests": requests,
        "requests_per_second": requests / wall,
        "us_per_request": per_request,
        "api_us_per_request_with_background": gross,
        "sql_per_request": sql / requests,
        "cache_lookups_per_request": sum(c["lookups"] for c in cache.values()) / requests,
        # Misses that went to the database (potluck_cache_load_seconds_count), all families.
        "cache_loads_per_request": sum(c["db_loads"] for c in cache.values()) / requests,
    }


@dataclass(slots=True)
class WindowSampler(loadtest.Sampler):
    """loadtest's sampler, plus a mark when the warm-up ends and one when the window ends."""

    warmup: float = 0.0
    seconds: float = 0.0
    marks: list[Mark] = field(default_factory=list)

    def tick(self, elapsed: float) -> None:
        if not self.marks and elapsed >= self.warmup:
            self.marks.append(take_mark(self.info))
        elif len(self.marks) == 1 and elapsed >= self.warmup + self.seconds:
            self.marks.append(take_mark(self.info))


@dataclass(slots=True)
class Run:
    label: str
    rate: float
    exit_code: int
    window: dict[str, Any] | None
    locust_requests: int = 0
    iterations: int = 0
    failures: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    endpoints: dict[str, int] = field(default_factory=dict)

    @property
    def requests_per_iteration(self) -> float:
        return self.locust_requests / self.iterations if self.iterations else 0.0


def run_one(info: Mapping[str, Any], label: str, only: str, rate: float, opts: argparse.Namespace) -> Run:
    """One Locust run of `only` (empty: the mix) at `rate` iterations/s; the window's costs."""
    out_dir: Path = opts.out / label.replace(".", "-").replace(" ", "-")
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = ["--rate", str(rate), "--duration", str(opts.warmup + opts.seconds + TAIL_SECONDS)]
    args, _ = loadtest.parse_args([*argv, *(["--only", only] if only else [])])
    plan = loadtest.load_plan(args)
    prefix = out_dir / loadtest.CSV_NAME
    command = loadtest.locust_invocation(info["lb"]["url"], prefix, args, opts.locust_args)
    sampler = WindowSampler(info, warmup=opts.warmup, seconds=opts.seconds)
    code = loadtest.run_locust(command, out_dir, plan, sampler)
    marks = sampler.marks
    if len(marks) == 1:  # Locust stopped before the window's end: end it now (its idle tail is subtracted)
        console.print(f"[yellow]{label}: the window ends after Locust stopped[/yellow]")
        marks.append(take_mark(info))
    window = window_cost(marks[0], marks[1], opts.idle) if len(marks) == 2 else None
    run = Run(label, rate, code, window)
    stats = Path(f"{prefix}_stats.csv")
    if stats.exists():
        endpoints, agg = loadtest.read_endpoints(stats)
        run.locust_requests, run.failures, run.p50_ms, run.p99_ms = agg.requests, agg.failures, agg.p50, agg.p99
        run.endpoints = {f"{e.method} {e.name}": e.requests for e in endpoints}
    arrivals = Path(f"{prefix}_arrivals.json")
    if arrivals.exists():
        run.iterations = int(json.loads(arrivals.read_text()).get("completed", 0))
    if window is None:
        console.print(f"[red]{label}: no measurement window[/red] (exit code {code}); see {out_dir / 'locust.log'}")
    return run


def measure_idle(info: Mapping[str, Any], seconds: float) -> dict[str, float]:
    with console.status(f"idle: {seconds:.0f} s with no load"):
        before = take_mark(info)
        time.sleep(seconds)
        after = take_mark(info)
    idle = rates(before, after)
    console.print("idle, per second: " + ", ".join(f"{k} {v:.4f}" for k, v in idle.items()))
    return idle


# ------------------------------------------------------------------------------------------------ output


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """The contributions, from the task runs so far and the mix's weights."""
    costs = {
        label: (run["window"]["us_per_request"]["api"], run["requests_per_iteration"])
        for label, run in result["tasks"].items()
        if run["window"] and run["requests_per_iteration"]
    }
    return contributions(iteration_shares(result["mix"]), costs)


def markdown(result: Mapping[str, Any]) -> str:
    split = result["split"]
    rows = sorted(split["rows"].items(), key=lambda kv: -kv[1]["us_per_mix_request"])
    # Cache loads per request: recorded from 6f04a18 on (older results: the column is left out).
    loads = all("cache_loads_per_request" in result["tasks"][task]["window"] for task, _ in rows)
    lines = [
        "| task (class) | share of iterations | requests / iteration | share of requests | API µs / request alone "
        "| PostgreSQL µs / req | Redis µs / req | SQL / req |"
        + (" cache loads / req |" if loads else "")
        + " p50 / p99 ms | µs per mix request | share of the mix's API CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if loads else "") + "---:|---:|---:|",
    ]
    for task, row in rows:
        run = result["tasks"][task]
        w = run["window"]
        lines.append(
            f"| `{task}` | {row['iteration_share']:.1%} | {run['requests_per_iteration']:.2f} | "
            f"{row['request_share']:.1%} | {w['us_per_request']['api']:,.0f} | {w['us_per_request']['postgres']:,.0f} "
            f"| {w['us_per_request']['redis']:,.0f} | {w['sql_per_request']:.2f} | "
            + (f"{w['cache_loads_per_request']:.2f} | " if loads else "")
            + f"{run['p50_ms']:,.0f} / {run['p99_ms']:,.0f} | {row['us_per_mix_request']:,.0f} | "
            f"{row['cost_share']:.1%} |"
        )
    lines.append(
        f"| **sum (weighted)** | | {split['requests_per_iteration']:.2f} | | | | | |"
        + (" |" if loads else "")
        + f" | **{split['us_per_mix_request']:,.0f}** | 100% |"
    )
    mix = result.get("mix_run")
    if mix and mix.get("window"):
        w = mix["window"]
        lines += [
            "",
            f"The mix itself at {mix['rate']:.0f}/s, same window and method: **{w['us_per_request']['api']:,.0f} µs** "
            f"of API CPU per request net of idle ({w['api_us_per_request_with_background']:,.0f} with the "
            f"background), {mix['requests_per_iteration']:.2f} requests per iteration, PostgreSQL "
            f"{w['us_per_request']['postgres']:,.0f} µs, Redis {w['us_per_request']['redis']:,.0f} µs, "
            f"{w['sql_per_request']:.2f} SQL statements per request, p50 / p99 {mix['p50_ms']:,.0f} / "
            f"{mix['p99_ms']:,.0f} ms. Weighted sum of the tasks alone / the mix: "
            f"{split['us_per_mix_request'] / max(w['us_per_request']['api'], 1e-9):.2f}.",
        ]
    if split["missing"]:
        missing = f"{', '.join(split['missing'])} ({split['missing_iteration_share']:.1%} of iterations)"
        lines += ["", f"Not measured: {missing}; left out of the sum."]
    return "\n".join(lines) + "\n"


def plot(result: Mapping[str, Any], path: Path) -> None:
    """Horizontal bars: each task's µs per mix request (left) and its API µs per request alone (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    split = result["split"]
    rows = sorted(split["rows"].items(), key=lambda kv: kv[1]["us_per_mix_request"])
    names = [task for task, _ in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.34 * len(rows) + 2.2), sharey=True, layout="constrained")
    colors = ["#c0392b" if n.startswith("Member.") else "#2b8cbe" for n in names]
    contrib = [row["us_per_mix_request"] for _, row in rows]
    left.barh(names, contrib, color=colors)
    for y, (value, (_, row)) in enumerate(zip(contrib, rows, strict=True)):
        left.text(value, y, f" {value:,.0f} ({row['cost_share']:.0%})", va="center", fontsize=8)
    title = f"weighted sum {split['us_per_mix_request']:,.0f} µs"
    mix = result.get("mix_run")
    if mix and mix.get("window"):
        measured = mix["window"]["us_per_request"]["api"]
        title += f"; the mix measured at {mix['rate']:.0f}/s: {measured:,.0f} µs"
    left.set_title(f"µs of API CPU each task adds to every request of the mix\n({title})", fontsize=10)
    left.set_xlim(0, max(contrib, default=1.0) * 1.35)
    alone = [result["tasks"][n]["window"]["us_per_request"]["api"] for n in names]
    right.barh(names, alone, color=colors)
    for y, value in enumerate(alone):
        right.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
    right.set_xscale("log")
    right.set_xlim(100, max(alone, default=1000.0) * 4)
    right.set_title(
        "API µs per request, the task alone (log scale)\nblue: anonymous (Visitor), red: signed in", fontsize=10
    )
    for axis in (left, right):
        axis.grid(True, axis="x", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: Path) -> None:
    result["split"] = summarize(result)
    (out / "endpoint_cost.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if result["split"]["rows"]:
        (out / "endpoint_cost.md").write_text(f"`{result['command']}`\n\n" + markdown(result))
        plot(result, out / "endpoint_cost.png")


# -------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=40.0, help="iterations/s of each task alone (default 40)")
    parser.add_argument("--slow-rate", type=float, default=4.0, help=f"for {', '.join(SLOW_TASKS)} (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window of each run (default 20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of each run before its window (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="the idle window (default 20)")
    parser.add_argument("--tasks", default="", help="Class.task names to measure (default: every task of the mix)")
    parser.add_argument("--mix-rate", type=float, default=100.0, help="the whole mix's rate (0: not run; default 100)")
    parser.add_argument("--auth-share", type=float, help="the locustfile's --auth-share (default its own)")
    parser.add_argument("--out", type=Path, help="directory (default bench/results/endpoint-cost-<UTC>)")
    parser.add_argument("--render", type=Path, help="only rewrite the table and plot of this endpoint_cost.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.render:
        write_outputs(json.loads(opts.render.read_text()), opts.render.parent)
        console.print(f"rewrote {opts.render.parent}/endpoint_cost.md and .png")
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    opts.out = opts.out or loadtest.RESULTS / f"endpoint-cost-{stamp}"
    opts.out.mkdir(parents=True, exist_ok=True)
    opts.locust_args = [] if opts.auth_share is None else ["--auth-share", str(opts.auth_share)]
    info = loadtest.cluster_status()
    if not info.get("up"):
        raise SystemExit("the cluster is not up: start it first (`uv run potluck cluster up`, docs/benchmarks.md)")
    mix = read_mix(opts.locust_args)
    tasks = [t.strip() for t in opts.tasks.split(",") if t.strip()] or list(iteration_shares(mix))
    command = "uv run --group loadtest python -m bench.endpoint_cost " + shlex.join(argv or sys.argv[1:])
    result: dict[str, Any] = {"command": command, "mix": mix, "options": vars(opts), "tasks": {}}
    loadtest.settle(info, 120.0)
    opts.idle = result["idle"] = measure_idle(info, opts.idle_seconds)
    for i, task in enumerate(tasks, 1):
        rate = opts.slow_rate if task in SLOW_TASKS else opts.rate
        console.rule(f"[bold]{i}/{len(tasks)}: {task}[/bold] alone at {rate:g} iterations/s")
        run = run_one(info, task, task, rate, opts)
        result["tasks"][task] = {**asdict(run), "requests_per_iteration": run.requests_per_iteration}
        write_outputs(result, opts.out)
        _print_run(run)
    if opts.mix_rate > 0:
        console.rule(f"[bold]the whole mix[/bold] at {opts.mix_rate:g} iterations/s")
        run = run_one(info, "whole mix", "", opts.mix_rate, opts)
        result["mix_run"] = {**asdict(run), "requests_per_iteration": run.requests_per_iteration}
        _print_run(run)
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["code"] = loadtest.code_version()
    write_outputs(result, opts.out)
    if result["split"]["rows"]:
        console.print(markdown(result))
    console.print(f"results: {opts.out}")
    return 0


def _print_run(run: Run) -> None:
    if run.window is None:
        return
    w = run.window
    console.print(
        f"{run.label}: {w['requests_per_second']:,.1f} req/s answered, API {w['us_per_request']['api']:,.0f} µs/req "
        f"(PostgreSQL {w['us_per_request']['postgres']:,.0f}, Redis {w['us_per_request']['redis']:,.0f}), "
        f"{run.requests_per_iteration:.2f} req/iteration, p50 {run.p50_ms:,.0f} ms p99 {run.p99_ms:,.0f} ms, "
        f"{run.failures} failures"
    )


if __name__ == "__main__":
    raise SystemExit(main())
