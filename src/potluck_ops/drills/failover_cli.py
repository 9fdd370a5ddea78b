"""`potluck drill redis-cache-crash | redis-coord-crash | worker-crash`: `register(app)` adds them to the drill
app (drills/cli.py calls it). Each prints one table row, writes its JSON, and exits 1 when a goal was missed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from potluck_ops.drills.failover import REDIS_DRILLS, DrillOptions, redis_crash, worker_crash
from potluck_ops.drills.load import LoadConfig
from potluck_ops.drills.probes import Target
from potluck_ops.drills.result import DrillResult, results_table
from potluck_ops.failures import OpsError
from potluck_ops.progress import console

WARMUP = typer.Option(5.0, "--warmup", min=0, help="Seconds of load before the fault.")
OBSERVE = typer.Option(15.0, "--observe", min=1, help="Seconds of load from the fault on.")
READERS = typer.Option(4, "--readers", min=1, help="Concurrent readers.")
OUT = typer.Option(None, "--out", help="Directory for the JSON result (default: <state dir>/drills).")


def drill_options(warmup: float, observe: float, readers: int) -> DrillOptions:
    return DrillOptions(warmup=warmup, observe=observe, load=LoadConfig(readers=readers))


def run_drill(run: Callable[[Target], Coroutine[Any, Any, DrillResult]], out: Path | None) -> DrillResult:
    """Run one drill on the cluster of the state dir; print its row and where its JSON went."""
    try:
        target = Target.discover()
        result: DrillResult = asyncio.run(run(target))
    except OpsError as exc:
        console.print("[red]error:[/red]", str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    path = result.write(out or target.layout.root / "drills")
    # One row of many columns: a pipe or a log gets it unwrapped, whatever its width.
    wide = console if console.is_terminal else Console(stderr=True, width=240)
    wide.print(results_table([result], title=f"potluck drill {result.drill}"))
    console.print(f"JSON: {path}")
    if not result.passed:
        raise typer.Exit(1)
    return result


def register(app: typer.Typer) -> None:
    """Add the Redis and worker drills to `app` (`potluck drill`)."""

    def redis_command(name: str, role: str) -> None:
        def command(
            warmup: float = WARMUP, observe: float = OBSERVE, readers: int = READERS, out: Path | None = OUT
        ) -> None:
            options = drill_options(warmup, observe, readers)
            run_drill(lambda target: redis_crash(target, role, options), out)

        command.__doc__ = (
            f"SIGKILL the {role} Redis master Sentinel names, under load: failed reads, lost Celery tasks and "
            "outbox events, time until the cache hit rate is back above 90%. The killed instance rejoins as a replica."
        )
        app.command(name)(command)

    for name, role in REDIS_DRILLS.items():
        redis_command(name, role)

    @app.command("worker-crash")
    def worker_crash_command(
        warmup: float = WARMUP, observe: float = OBSERVE, readers: int = READERS, out: Path | None = OUT
    ) -> None:
        """SIGKILL the Celery worker mid-delivery under load, restart it: events lost, duplicate notifications."""
        options = drill_options(warmup, observe, readers)
        run_drill(lambda target: worker_crash(target, options), out)
