"""`potluck events list|dead|replay ID|replay-dead|drain`: the operator's view of the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

from potluck.config import get_settings
from potluck.db.engine import Database
from potluck.events.models import OutboxEvent
from potluck.events.service import EventAdmin

events_app = typer.Typer(help="The transactional outbox: list events, inspect and replay dead letters.")
console = Console()
T = TypeVar("T")


def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    settings = get_settings()

    async def run() -> T:
        database = Database.from_settings(settings.database_url, settings.database)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _table(rows: list[OutboxEvent], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "topic", "aggregate", "status", "attempts", "created", "last error"):
        table.add_column(column, overflow="fold")
    for e in rows:
        table.add_row(
            str(e.id),
            e.topic,
            str(e.aggregate_id),
            e.status,
            str(e.attempts),
            e.created_at.isoformat(timespec="seconds"),
            (e.last_error or "")[:200],
        )
    return table


@events_app.command("list")
def list_events(
    status: str | None = typer.Option(None, help="pending, delivered or dead (default: all)."),
    limit: int = typer.Option(50, min=1, max=10_000),
) -> None:
    """The newest events."""

    async def work(database: Database) -> list[OutboxEvent]:
        async with database.read_session(primary=True) as session:
            return await EventAdmin().events(session, status, limit)

    console.print(_table(_with_database(work), f"outbox events ({status or 'all'})"))


@events_app.command("dead")
def dead(limit: int = typer.Option(100, min=1, max=10_000)) -> None:
    """Events that ran out of attempts."""

    async def work(database: Database) -> list[OutboxEvent]:
        async with database.read_session(primary=True) as session:
            return await EventAdmin().dead(session, limit)

    console.print(_table(_with_database(work), "dead letters"))


@events_app.command("replay")
def replay(event_id: int = typer.Argument(..., help="The id of a dead event.")) -> None:
    """Send one dead event back to the relay (attempts reset)."""

    async def work(database: Database) -> bool:
        async with database.write_session() as session:
            return await EventAdmin().replay(session, event_id)

    if not _with_database(work):
        console.print(f"[red]event {event_id} is not a dead letter[/red]")
        raise typer.Exit(1)
    console.print(f"event {event_id} is pending again")


@events_app.command("replay-dead")
def replay_dead() -> None:
    """Send every dead event back to the relay."""

    async def work(database: Database) -> int:
        async with database.write_session() as session:
            return await EventAdmin().replay_dead(session)

    console.print(f"{_with_database(work)} dead event(s) pending again")


@events_app.command("drain")
def drain(budget: float = typer.Option(60.0, min=0.1, help="Stop after this many seconds.")) -> None:
    """Deliver due events from this process (what the worker's relay task does), then exit."""
    from potluck.bootstrap import bootstrap

    async def run() -> int:
        container = bootstrap(get_settings())
        await container.database.start()
        try:
            return await container.events.relay.drain(budget_seconds=budget)
        finally:
            if container.edge is not None:
                await container.edge.aclose()
            await container.cache.aclose()
            await container.events.aclose()
            await container.database.dispose()

    console.print(f"{asyncio.run(run())} event(s) settled")
