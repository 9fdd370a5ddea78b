"""`potluck`: serve, migrate, seed, and the operator commands."""

from __future__ import annotations

import asyncio
import os

import typer
from rich.console import Console

from potluck.cli.events import events_app
from potluck.cli.recommend import recommend_app
from potluck.cli.seed import seed_command
from potluck.cli.warm import warm_command
from potluck.cli.worker import beat_command, worker_command
from potluck.config import get_settings
from potluck_ops.backup_cli import backup_app, restore_command
from potluck_ops.cli import cluster_app
from potluck_ops.drills.cli import drill_app

app = typer.Typer(help="Potluck, the backend of a recipe-sharing platform.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(int(os.environ.get("PORT", "8000")), help="Port (env PORT)."),
    workers: int = typer.Option(1, min=1, help="Worker processes (one per core is right)."),
    access_log: bool = typer.Option(False, help="Log every request."),
    keep_alive: int = typer.Option(
        65, min=1, help="Seconds an idle connection is kept (longer than the load balancer's, which closes first)."
    ),
    metrics_port: int | None = typer.Option(
        None,
        help="The internal listener's port: /metrics is served there only (default observability.metrics_port; "
        "none: /metrics is served nowhere).",
    ),
    metrics_host: str | None = typer.Option(
        None, help="The internal listener's interface (default observability.metrics_host, 127.0.0.1)."
    ),
    worker_timeout: int = typer.Option(
        30,
        min=1,
        help="Seconds a worker may take to answer the supervisor (at startup: to import the app) before it is "
        "replaced (several workers only).",
    ),
) -> None:
    """Serve the HTTP API.

    With several workers (or observability.multiprocess_dir / PROMETHEUS_MULTIPROC_DIR set) the workers keep their
    metrics in one directory, so /metrics answers for all of them whichever one it reaches.

    /metrics is answered only on the internal listener (--metrics-port on --metrics-host): the same processes
    listen on both sockets, and the app tells them apart by the port a request came in on.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from potluck.cli.serving import internal_listener, server_options
    from potluck.observability.multiprocess import server_directory

    # The app (here, or in each worker process) reads the internal port from its settings: hand it over.
    if metrics_port is not None:
        os.environ["POTLUCK_OBSERVABILITY__METRICS_PORT"] = str(metrics_port)
    if metrics_host is not None:
        os.environ["POTLUCK_OBSERVABILITY__METRICS_HOST"] = metrics_host
    get_settings.cache_clear()
    settings = get_settings()
    observability = settings.observability
    # Before the workers start: they inherit the environment and make their metrics file-backed.
    with server_directory(observability.multiprocess_dir, processes=workers) as metrics_dir:
        if metrics_dir is not None:
            console.print(f"metrics of {workers} worker process(es) merged from {metrics_dir}", soft_wrap=True)
        config = uvicorn.Config(
            "potluck.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=access_log,
            proxy_headers=True,
            server_header=False,
            # Slow clients: a deadline and a size limit on each request's header block (docs/security.md).
            **server_options(settings.api, keep_alive=keep_alive),
            # uvicorn's default (5 s) kills workers still importing the app on a busy machine, over and over.
            timeout_worker_healthcheck=worker_timeout,
        )
        sockets = [config.bind_socket()]
        if observability.metrics_port is not None:
            internal = internal_listener(config, observability.metrics_host, observability.metrics_port)
            sockets.append(internal.bind_socket())
        if workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server = uvicorn.Server(config)
            server.run(sockets=sockets)
            if not server.started:
                raise typer.Exit(3)


@app.command()
def migrate(revision: str = typer.Argument("heads", help="Target revision (all heads by default).")) -> None:
    """Bring the database schema up to date (Alembic)."""
    from potluck.db.engine import create_engine
    from potluck.db.migrate import upgrade

    settings = get_settings()

    async def _run() -> None:
        engine = create_engine(settings.database_url, settings.database)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(_run())
    console.print(f"[green]database at {revision}[/green]: {_redacted(settings.database_url)}")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


app.command("seed", help="Load realistic, deterministic demo data.")(seed_command)
app.add_typer(cluster_app, name="cluster", help="The full topology on one machine: up, down, status.")
app.add_typer(backup_app, name="backup", help="PostgreSQL backups (pgBackRest): now, list, verify; Redis.")
app.command("restore", help="Restore PostgreSQL: --latest or --to TIME, into a fresh dir; --promote.")(restore_command)
app.add_typer(drill_app, name="drill", help="Disaster-recovery drills, timed: restore.")
app.add_typer(events_app, name="events", help="The outbox: list events, dead letters, replay.")
app.add_typer(recommend_app, name="recommend", help="Recommendations: offline evaluation and training.")
app.command("worker")(worker_command)
app.command("beat")(beat_command)
app.command("warm-cache")(warm_command)


if __name__ == "__main__":
    app()
