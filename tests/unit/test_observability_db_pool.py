"""DbPoolCollector: connections in use per {role, node}, read from the pools at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from potluck.config import DatabaseSettings
from potluck.db.engine import Database, create_engine
from potluck.observability.db_pool import DbPoolCollector, database_pools


def sample(registry: CollectorRegistry, name: str, role: str, node: str) -> float | None:
    return registry.get_sample_value(name, {"role": role, "node": node})


async def test_checked_out_follows_connections_in_use(tmp_path: Path) -> None:
    primary = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", pool_size=3)
    replica = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", pool_size=2)
    registry = CollectorRegistry()
    DbPoolCollector([("primary", "primary", primary), ("replica", "10.0.0.2:5432", replica)], registry)
    try:
        assert sample(registry, "potluck_db_pool_checked_out", "primary", "primary") == 0
        assert sample(registry, "potluck_db_pool_size", "primary", "primary") == 3
        assert sample(registry, "potluck_db_pool_size", "replica", "10.0.0.2:5432") == 2
        async with primary.connect() as first, primary.connect() as second, replica.connect() as third:
            for conn in (first, second, third):
                await conn.execute(text("SELECT 1"))
            assert sample(registry, "potluck_db_pool_checked_out", "primary", "primary") == 2
            assert sample(registry, "potluck_db_pool_checked_out", "replica", "10.0.0.2:5432") == 1
        assert sample(registry, "potluck_db_pool_checked_out", "primary", "primary") == 0
    finally:
        await primary.dispose()
        await replica.dispose()


async def test_the_database_s_engines_of_one_node_are_summed(tmp_path: Path) -> None:
    """On SQLite the primary has a writer and a reader engine: one {role, node}, their connections added."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'potluck.db'}"
    database = Database.from_settings(url, DatabaseSettings())
    registry = CollectorRegistry()
    targets = database_pools(database)
    assert [(role, node) for role, node, _ in targets] == [("primary", "primary"), ("primary", "primary")]
    DbPoolCollector(targets, registry)
    try:
        async with database.primary.connect() as writer, database.primary_reader.connect() as reader:
            await writer.execute(text("SELECT 1"))
            await reader.execute(text("SELECT 1"))
            assert sample(registry, "potluck_db_pool_checked_out", "primary", "primary") == 2
    finally:
        await database.dispose()


async def test_pools_without_counters_are_skipped(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", poolclass=NullPool)
    registry = CollectorRegistry()
    DbPoolCollector([("primary", "primary", engine)], registry)
    assert sample(registry, "potluck_db_pool_checked_out", "primary", "primary") is None
    await engine.dispose()


def test_replicas_are_labelled_by_node() -> None:
    settings = DatabaseSettings(replica_urls=["postgresql+asyncpg://u@10.0.0.2:5432/p"])
    primary = create_engine("postgresql+asyncpg://u@10.0.0.1:5432/p", settings)
    replica = create_engine(settings.replica_urls[0], settings)
    database = Database(primary, [("10.0.0.2:5432", replica)], settings=settings)
    targets = database_pools(database)
    assert [(role, node) for role, node, _ in targets] == [("primary", "primary"), ("replica", "10.0.0.2:5432")]
    registry = CollectorRegistry()
    DbPoolCollector(targets, registry)  # no connection is opened to read a pool
    assert sample(registry, "potluck_db_pool_size", "replica", "10.0.0.2:5432") == settings.pool_size
