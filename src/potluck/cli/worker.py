"""`potluck worker` and `potluck beat`: Celery's worker and scheduler, configured from Settings."""

from __future__ import annotations

import typer
from rich.console import Console

from potluck.config import get_settings

console = Console(stderr=True)


def _app() -> object:
    from potluck.worker.app import NoBrokerError, create_celery

    try:
        return create_celery(get_settings())
    except NoBrokerError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
        raise typer.Exit(2) from None


def worker_command(
    concurrency: int = typer.Option(0, "--concurrency", "-c", min=0, help="Pool size (0: settings.worker)."),
    pool: str = typer.Option("prefork", "--pool", "-P", help="prefork, threads or solo."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    hostname: str | None = typer.Option(None, "--hostname", "-n", help="Node name (default: celery's)."),
) -> None:
    """Run a Celery worker: the outbox relay, the view flush, the purge (whatever beat schedules)."""
    app = _app()
    settings = get_settings()
    argv = [
        "worker",
        f"--concurrency={concurrency or settings.worker.concurrency}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        f"--queues={settings.worker.queue}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)  # type: ignore[attr-defined]


def beat_command(loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
    """Run Celery beat: sends the tasks of potluck.worker.schedule on time (run exactly one)."""
    app = _app()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.start(["beat", f"--loglevel={loglevel}"])  # type: ignore[attr-defined]
