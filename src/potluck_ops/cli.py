"""`potluck cluster up|down|status`: the full topology on one machine.

etcd and PostgreSQL 15 under Patroni (one leader, the rest replicas, one synchronous standby), the Redis cache
instance (deploy/redis/cache.conf, evicting) and the non-evicting Redis coordination instance
(deploy/redis/coord.conf), N API processes and nginx round-robin in front of them, a Celery worker and beat
(broker: the coordination instance), all on 127.0.0.1. All state lives under one directory (see
potluck_ops.layout).
"""

from __future__ import annotations

import json
import shutil
import sys
import time

import typer

from potluck_ops.bringup import bring_up, prepare_state_dir
from potluck_ops.failures import OpsError
from potluck_ops.layout import MARKER, Layout, locked
from potluck_ops.progress import console, note, step
from potluck_ops.s3 import stop_local_s3
from potluck_ops.status import cluster_status, summary
from potluck_ops.teardown import stop_all

cluster_app = typer.Typer(
    help="Run the full topology on this machine: etcd and PostgreSQL under Patroni (a leader + replicas), Redis, "
    "N API processes, nginx, "
    "a Celery worker and beat.",
    no_args_is_help=True,
)


def _fail(exc: OpsError) -> typer.Exit:
    console.print("[red]error:[/red]", end=" ")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@cluster_app.command()
def up(
    api: int = typer.Option(2, "--api", min=1, help="API processes behind nginx."),
    replicas: int = typer.Option(2, "--replicas", min=0, help="PostgreSQL replicas (Patroni nodes: replicas + 1)."),
    lb_port: int = typer.Option(8080, "--lb-port", min=1, max=65535, help="Port of the nginx load balancer."),
    users: int = typer.Option(500, "--users", min=1, help="Demo users to seed."),
    recipes: int = typer.Option(5000, "--recipes", min=0, help="Demo recipes to seed."),
    seed: int = typer.Option(42, "--seed", help="Random seed of the demo data."),
    no_seed: bool = typer.Option(False, "--no-seed", help="Do not load demo data."),
    edges: int = typer.Option(1, "--edges", min=0, help="Edge cache nodes (Varnish) between nginx and the API."),
) -> None:
    """Start everything (idempotent: a healthy cluster is left as it is). Existing data is reused."""
    try:
        layout = Layout.discover()
        status = cluster_status(layout)
        if status["up"]:
            console.print(summary(status))
            counts = (len(status["api"]), len(status["postgres"]["replicas"]), status["lb"]["port"])
            if counts != (api, replicas, lb_port):
                note(
                    f"already up with --api {counts[0]} --replicas {counts[1]} "
                    f"--lb-port {counts[2]}; run `potluck cluster down` first to change them"
                )
            return
        with locked(layout):
            prepare_state_dir(layout)
            seed_args = None if no_seed else ["--users", str(users), "--recipes", str(recipes), "--seed", str(seed)]
            began = time.monotonic()
            try:
                info = bring_up(
                    layout,
                    api_count=api,
                    replica_count=replicas,
                    lb_port=lb_port,
                    seed_args=seed_args,
                    edge_count=edges,
                )
            except BaseException:
                console.print(f"[red]cluster up failed[/red]; stopping what started. Logs stay in {layout.root}")
                try:
                    stop_all(layout, quiet=True)
                except OpsError as stop_error:
                    console.print(f"stopping failed too: {stop_error}", markup=False, soft_wrap=True)
                raise
        console.print(summary(info))
        console.print(f"[green]up[/green] in {time.monotonic() - began:.1f}s; state in {layout.root}")
    except OpsError as exc:
        raise _fail(exc) from None


@cluster_app.command()
def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete the state dir (databases, logs, secret)."),
) -> None:
    """Stop everything: nginx, Celery, the API processes, Redis, PostgreSQL. Data is kept unless --purge.

    The local S3 server holding the backups keeps running (its objects live in memory) unless --purge."""
    try:
        layout = Layout.discover()
        if not layout.root.exists():
            console.print(f"nothing to do: {layout.root} does not exist")
            return
        if not (layout.root / MARKER).exists():
            raise OpsError(f"{layout.root} was not made by `potluck cluster`; not touching it")
        with locked(layout), step("stop the cluster"):
            stop_all(layout)
        if purge:
            stop_local_s3(layout.s3)  # the backups' stand-in bucket outlives a plain `down` (backup_steps.py)
            shutil.rmtree(layout.root)
            console.print(f"deleted {layout.root}")
        else:
            console.print(f"data kept in {layout.root} (`potluck cluster up` reuses it; --purge deletes it)")
    except OpsError as exc:
        raise _fail(exc) from None


@cluster_app.command()
def status() -> None:
    """Print cluster.json with liveness (pids alive, endpoints healthy) as JSON; exit 1 unless all is up."""
    try:
        info = cluster_status(Layout.discover())
    except OpsError as exc:
        raise _fail(exc) from None
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    if not info["up"]:
        raise typer.Exit(1)
