"""`potluck seed`: fill an empty database with deterministic demo data (registered in main.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from potluck.config import get_settings
from potluck.seed import DEMO_PASSWORD
from potluck.seed.loader import SchemaMissingError, SeedSummary, default_end, is_empty, load

_err = Console(stderr=True)
_out = Console()


def seed_command(
    users: int = typer.Option(200, "--users", min=1, help="Number of users."),
    recipes: int = typer.Option(1000, "--recipes", min=0, help="Number of recipes."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data, ids included."),
    if_empty: bool = typer.Option(False, "--if-empty", help="do nothing when data exists"),
    as_of: datetime | None = typer.Option(
        None,
        "--as-of",
        formats=["%Y-%m-%d"],
        help="The data set's 'now' (UTC date); activity spans the two years before it. Default: today.",
    ),
) -> None:
    """Fill an empty database with realistic demo data. Every demo user's password is 'potluck-demo'."""
    end = as_of.replace(tzinfo=UTC) if as_of is not None else default_end()
    asyncio.run(_seed(users=users, recipes=recipes, seed=seed, if_empty=if_empty, end=end))


async def _seed(*, users: int, recipes: int, seed: int, if_empty: bool, end: datetime) -> None:
    settings = get_settings()
    engine = create_async_engine(settings.database_url)
    try:
        try:
            empty = await is_empty(engine)
        except SchemaMissingError as exc:
            _err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        except (DBAPIError, OSError) as exc:
            _err.print(f"[red]cannot reach the database:[/red] {exc}")
            raise typer.Exit(1) from exc
        if not empty:
            if if_empty:
                _err.print("[yellow]the database already has data; nothing seeded[/yellow]")
                return
            _err.print(
                "[red]the database already has data;[/red] seed only an empty database "
                "(or pass --if-empty to skip quietly)"
            )
            raise typer.Exit(1)

        from potluck.user.security import PasswordHasher

        # One hash for every demo user: argon2 is slow on purpose, and the hash is salted anyway.
        password_hash = PasswordHasher.from_settings(settings.auth).hash(DEMO_PASSWORD)
        summary = await load_with_progress(
            engine, users=users, recipes=recipes, seed=seed, password_hash=password_hash, end=end
        )
    finally:
        await engine.dispose()
    _print_summary(summary)


async def load_with_progress(
    engine: AsyncEngine,
    *,
    users: int,
    recipes: int,
    seed: int,
    password_hash: str,
    end: datetime,
    console: Console = _err,
) -> SeedSummary:
    """The seeder with a progress bar per table and one for all rows (also what the benchmarks seed with)."""
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        overall = bar.add_task("planning", total=None)
        tasks: dict[str, TaskID] = {}

        def on_plan(counts: Mapping[str, int]) -> None:
            bar.update(overall, description="all rows", total=sum(counts.values()))
            for table, count in counts.items():
                if count:
                    tasks[table] = bar.add_task(table, total=count)

        def progress(table: str, rows: int) -> None:
            bar.advance(tasks[table], rows)
            bar.advance(overall, rows)

        return await load(
            engine,
            users=users,
            recipes=recipes,
            seed=seed,
            password_hash=password_hash,
            progress=progress,
            end=end,
            on_plan=on_plan,
        )


def _print_summary(summary: SeedSummary) -> None:
    table = Table(title=f"seeded (seed {summary.seed}, as of {summary.end:%Y-%m-%d})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in summary.rows.items():
        table.add_row(name, f"{count:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{summary.total_rows:,}[/bold]")
    _out.print(table)
    _out.print(
        f"{summary.elapsed_seconds:.1f} s, {summary.rows_per_second:,.0f} rows/s. "
        f"Log in as any user with the password '{DEMO_PASSWORD}'."
    )
