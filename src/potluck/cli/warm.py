"""`potluck warm-cache`: run the design's warm_cache job now (beat runs it every worker.warm_interval_seconds)."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from potluck.config import get_settings
from potluck.warming.service import WARM_RECIPES, WARM_SEARCHES, WARM_TRENDING_ITEMS, WarmReport

console = Console(stderr=True)


def warm_command(
    recipes: int = typer.Option(WARM_RECIPES, min=0, max=100_000, help="Most popular recipes to warm."),
    searches: int = typer.Option(WARM_SEARCHES, min=0, max=50, help="Most frequent searches (24 h) to warm."),
    trending_items: int = typer.Option(
        WARM_TRENDING_ITEMS, min=0, max=100, help="Recipes at the top of each trending list to warm."
    ),
) -> None:
    """Warm the shared cache: popular recipes, trending searches and the trending lists, through guarded fills."""
    from potluck.bootstrap import bootstrap
    from potluck.worker.runtime import worker_settings

    settings = get_settings()
    if settings.cache_redis is None:
        console.print(
            "[yellow]No Redis configured (POTLUCK_REDIS__URL or POTLUCK_REDIS__SENTINELS):[/yellow] the embedded "
            "default's cache lives inside the API process, which warms it itself every "
            f"{settings.worker.warm_interval_seconds:g} s. Nothing to warm from here."
        )
        raise typer.Exit(2)

    async def run() -> WarmReport:
        # No first tier and no invalidation bus: this process serves no reads.
        container = bootstrap(worker_settings(settings))
        try:
            return await container.background.warmer.run(
                recipes=recipes, searches=searches, trending_items=trending_items
            )
        finally:
            await container.aclose()

    with console.status("warming the cache…"):
        report = asyncio.run(run())
    table = Table(title="cache warmed", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("recipe documents present", str(report.recipes))
    table.add_row("recipes gone (deleted or private since ranked)", str(report.recipes_gone))
    table.add_row("searches warmed", str(report.searches))
    table.add_row("searches skipped (unusable text)", str(report.searches_skipped))
    table.add_row("trending lists recomputed", str(report.trending_lists))
    table.add_row("seconds", f"{report.seconds:.2f}")
    Console().print(table)
