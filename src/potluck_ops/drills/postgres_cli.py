"""`potluck drill primary-crash | switchover | network-partition`: `register(app)` adds them to the drill app
(drills/cli.py calls it). Each prints one table row, writes its JSON, and exits 1 when a goal was missed."""

from __future__ import annotations

from pathlib import Path

import typer

from potluck_ops.drills.failover_cli import OBSERVE, OUT, READERS, WARMUP, drill_options, run_drill
from potluck_ops.drills.postgres import PartitionOptions, network_partition, planned_switchover, primary_crash

HOLD = typer.Option(15.0, "--hold", min=1, help="Seconds the replica stays stopped (ttl is 10 s).")
SYNC = typer.Option(False, "--sync", help="Partition the synchronous standby instead of an asynchronous replica.")


def register(app: typer.Typer) -> None:
    """Add the PostgreSQL (Patroni) drills to `app` (`potluck drill`)."""

    @app.command("primary-crash")
    def primary_crash_command(
        warmup: float = WARMUP, observe: float = OBSERVE, readers: int = READERS, out: Path | None = OUT
    ) -> None:
        """SIGKILL the Patroni leader's Patroni and postmaster under load: write outage, acknowledged writes lost;
        then restart it and check it rejoins as a replica and serves reads again."""
        options = drill_options(warmup, observe, readers)
        run_drill(lambda target: primary_crash(target, options), out)

    @app.command("switchover")
    def switchover_command(
        warmup: float = WARMUP, observe: float = OBSERVE, readers: int = READERS, out: Path | None = OUT
    ) -> None:
        """`patronictl switchover --force` to the synchronous standby under load: failed requests (goal 0)."""
        options = drill_options(warmup, observe, readers)
        run_drill(lambda target: planned_switchover(target, options), out)

    @app.command("network-partition")
    def network_partition_command(
        warmup: float = WARMUP,
        observe: float = OBSERVE,
        readers: int = READERS,
        hold: float = HOLD,
        sync: bool = SYNC,
        out: Path | None = OUT,
    ) -> None:
        """SIGSTOP a replica's Patroni and PostgreSQL for --hold seconds, then SIGCONT, under load: failed reads
        (goal 0), and the replica leaves and re-enters the read rotation."""
        options = drill_options(warmup, observe, readers)
        partition = PartitionOptions(hold=hold, sync=sync)
        run_drill(lambda target: network_partition(target, options, partition), out)
