"""`potluck drill`: disaster-recovery drills, one subcommand per drill module, each timed and reported as one
table row plus a JSON file (drills/report.py). Add a drill: a module with its `run_*` and a command here."""

from __future__ import annotations

from pathlib import Path

import typer

from potluck_ops.drills import failover_cli, postgres_cli
from potluck_ops.drills.report import report
from potluck_ops.drills.restore import run_restore_drill
from potluck_ops.failures import OpsError
from potluck_ops.progress import console, step

drill_app = typer.Typer(help="Disaster-recovery drills, timed.", no_args_is_help=True)

JSON_OUT = typer.Option(None, "--json-out", help="Where to write the result (default: drill-<name>-<time>.json).")


@drill_app.command("restore")
def restore_drill(
    recipes: int = typer.Option(100_000, "--recipes", min=100, help="Recipes to seed (users: a tenth)."),
    write_seconds: float = typer.Option(20.0, "--write-seconds", min=1, help="Seconds of writes per phase."),
    tail_seconds: float = typer.Option(
        30.0, "--tail-seconds", min=0, help="Writes after the last archived segment, before the crash (what is lost)."
    ),
    rate: float = typer.Option(50.0, "--rate", min=1, help="Acknowledged writes per second (one connection)."),
    archive_timeout: int = typer.Option(60, "--archive-timeout", min=1, help="archive_timeout: the RPO bound (s)."),
    json_out: Path | None = JSON_OUT,
) -> None:
    """Seed, full backup, writes, incremental, writes, destroy, restore latest; check every write and checksum."""
    try:
        with step(f"restore drill at {recipes:,} recipes"):
            result = run_restore_drill(
                recipes=recipes,
                write_seconds=write_seconds,
                tail_seconds=tail_seconds,
                rate=rate,
                archive_timeout=archive_timeout,
            )
    except OpsError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    path = report("restore", result, json_out)
    console.print(f"written to {path}")
    if not result["ok"]:
        raise typer.Exit(1)


# The failover drills: PostgreSQL (primary-crash, switchover, network-partition: drills/postgres_cli.py), Redis and
# the worker (redis-cache-crash, redis-coord-crash, worker-crash: drills/failover_cli.py).
postgres_cli.register(drill_app)
failover_cli.register(drill_app)
