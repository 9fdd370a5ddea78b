"""Bulk-insert a SeedPlan's rows: Core executemany batches in one transaction, on PostgreSQL or SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from potluck.migrations.models import Base
from potluck.seed.generate import SeedPlan, SeedSpec
from potluck.seed.rows import TABLES

Progress = Callable[[str, int], None]

# Any row in these means the database is in use: seeding would collide with it (unique names, usernames).
_OCCUPIED_IF_ANY = ("recipe", "user_account", "ingredient", "tag")


class SchemaMissingError(RuntimeError):
    """The tables the seeder writes to do not exist: the database has not been migrated."""


@dataclass(frozen=True, slots=True)
class SeedSummary:
    seed: int
    users: int
    recipes: int
    # The data set's "now" (see SeedSpec.end): the same seed and end give the same rows.
    end: datetime
    # Rows inserted per table, in insertion order.
    rows: Mapping[str, int]
    elapsed_seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


def default_end(now: datetime | None = None) -> datetime:
    """Midnight UTC today: recent enough for trending, stable enough that a day's seeds agree."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


async def _missing_tables(conn: AsyncConnection) -> list[str]:
    def names(sync_conn: Connection) -> set[str]:
        return set(inspect(sync_conn).get_table_names())

    present = await conn.run_sync(names)
    return [t for t in TABLES if t not in present]


async def _require_schema(conn: AsyncConnection) -> None:
    missing = await _missing_tables(conn)
    if missing:
        raise SchemaMissingError(
            f"the database has no table {', '.join(missing)}; run `potluck migrate` before seeding"
        )


async def is_empty(engine: AsyncEngine) -> bool:
    """True when there are no users, recipes, ingredients or tags yet. Raises SchemaMissingError before migration."""
    async with engine.connect() as conn:
        await _require_schema(conn)
        for name in _OCCUPIED_IF_ANY:
            table = _table(name)
            if (await conn.execute(select(table.c.id).limit(1))).first() is not None:
                return False
    return True


async def load(
    engine: AsyncEngine,
    *,
    users: int,
    recipes: int,
    seed: int,
    password_hash: str,
    progress: Progress | None = None,
    end: datetime | None = None,
    batch_size: int = 2000,
    on_plan: Callable[[Mapping[str, int]], None] | None = None,
) -> SeedSummary:
    """Insert the demo data set for (users, recipes, seed, end) and report what was written.

    The caller checks `is_empty()` first. Everything is one transaction: a failure leaves the database as it was.
    `on_plan` receives the exact row count per table once the plan is made (before the first insert);
    `progress(table, rows)` is called after each batch.
    """
    spec = SeedSpec(
        users=users,
        recipes=recipes,
        seed=seed,
        password_hash=password_hash,
        end=end or default_end(),
        batch_size=batch_size,
    )
    started = time.perf_counter()
    async with engine.connect() as conn:
        await _require_schema(conn)
        if conn.dialect.name == "sqlite":
            # Before anything is written (journal_mode cannot change inside a write transaction). WAL with NORMAL
            # sync is safe and much faster for one big write; journal_mode persists in the file, as the app wants.
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
        await conn.commit()  # end the transaction the schema check began, so the load gets a fresh one
        # Planning is CPU work (seconds at 100k recipes): off the event loop.
        plan = await asyncio.to_thread(SeedPlan, spec)
        if on_plan is not None:
            on_plan(plan.row_counts())
        written = dict.fromkeys(TABLES, 0)
        statements = {name: insert(_table(name)) for name in TABLES}
        async with conn.begin():
            for batch in plan.batches():
                await conn.execute(statements[batch.table], batch.rows)
                written[batch.table] += len(batch.rows)
                if progress is not None:
                    progress(batch.table, len(batch.rows))
    return SeedSummary(
        seed=seed,
        users=users,
        recipes=recipes,
        end=spec.end,
        rows=written,
        elapsed_seconds=time.perf_counter() - started,
    )
