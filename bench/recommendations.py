"""GET /recommendations' service call, cold and cached, ranked by today's formula and by the trained model.

Runs against a database already seeded with `potluck seed` (the embedded default: SQLite and the in-process
cache), in one process: `RecommendationService.for_user(user, 20)` is what the route awaits (ranking, the cache,
hydration through the recipe cache). For `--users` users who liked something:

* formula, cold: the user's list is invalidated before each call (ranked from the database, then hydrated);
* formula, cached: the same calls again (the list comes from the cache; hydration hits the recipe cache);
* then the model is trained (`ModelTrainer.train`: reads everything, trains, writes the artefact; timed, and the
  artefact's size reported) and loaded, and the same two passes run again.

Reported as p50/p95 in ms and as ratios to the formula's cold p95 measured in the same run.

    POTLUCK_DATA_DIR=/tmp/recs/a uv run python -m bench.recommendations --users 300

With `--postgres RECIPES`: the production stores instead. A throwaway PostgreSQL (tests.harness.PgCluster, no
replicas) is migrated and seeded with RECIPES recipes (users: a tenth of that), a throwaway Redis
(tests.harness.RedisServer) holds the cache, and the in-process first tier is off, so "cached" is a Redis read
plus hydration from Redis:

    flock /tmp/potluck-measure.lock uv run python -m bench.recommendations --postgres 20000 --users 200
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from potluck.bootstrap import bootstrap
from potluck.cache.keys import recommend_key
from potluck.config import CacheSettings, DatabaseSettings, RedisSettings, Settings


def _users(db: Path, n: int, seed: int) -> list[uuid.UUID]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT DISTINCT user_id FROM favorite ORDER BY user_id").fetchall()
    ids = [uuid.UUID(hex=r[0]) if isinstance(r[0], str) else uuid.UUID(bytes=r[0]) for r in rows]
    random.Random(seed).shuffle(ids)
    return ids[:n]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _pg_users(url: str, n: int, seed: int) -> list[uuid.UUID]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT DISTINCT user_id FROM favorite ORDER BY user_id"))).all()
    finally:
        await engine.dispose()
    ids = [row[0] for row in rows]
    random.Random(seed).shuffle(ids)
    return ids[:n]


async def run_postgres(args: argparse.Namespace) -> None:
    import tempfile

    from sqlalchemy.ext.asyncio import create_async_engine
    from tests.harness import PgCluster, RedisServer

    from bench.pagination import seed
    from potluck.db.migrate import upgrade

    with PgCluster(replicas=0) as cluster, RedisServer() as redis_server, tempfile.TemporaryDirectory() as tmp:
        url = cluster.dsn("primary")
        engine = create_async_engine(url)
        try:
            await upgrade(engine)
            summary = await seed(engine, users=max(200, args.postgres // 10), recipes=args.postgres)
        finally:
            await engine.dispose()
        Console(stderr=True).print(f"seeded {summary.total_rows:,} rows in {summary.elapsed_seconds:.1f} s")
        settings = Settings(
            data_dir=Path(tmp),
            database=DatabaseSettings(url=url),
            redis=RedisSettings(url=redis_server.url),
            cache=CacheSettings(local_enabled=False, timeout_ms=1000),
        )
        users = await _pg_users(url, args.users, args.seed)
        await run(args, settings, users, f"PostgreSQL + Redis, {args.postgres:,} recipes")


async def run_embedded(args: argparse.Namespace) -> None:
    settings = Settings()
    users = _users(settings.data_dir / "potluck.db", args.users, args.seed)
    await run(args, settings, users, "SQLite + in-process cache")


async def run(args: argparse.Namespace, settings: Settings, users: list[uuid.UUID], stores: str) -> None:
    container = bootstrap(settings)
    await container.start()
    service = container.recommendations
    timings: dict[str, list[float]] = {}

    async def passes(label: str) -> None:
        cold, cached = timings.setdefault(f"{label}, cold", []), timings.setdefault(f"{label}, cached", [])
        for user in users:
            await container.cache.invalidate([recommend_key(user)])
            started = time.perf_counter()
            await service.for_user(user, 20)
            cold.append(time.perf_counter() - started)
        for user in users:
            started = time.perf_counter()
            await service.for_user(user, 20)
            cached.append(time.perf_counter() - started)

    try:
        await passes("formula")
        report = await container.model_trainer.train()
        assert service.models is not None
        await service.models.refresh(force=True)
        await passes("model")
    finally:
        await container.aclose()
    base = _p(timings["formula, cold"], 0.95)
    table = Table(title=f"GET /recommendations service call, {len(users)} users, {stores} (shared 2-core box)")
    for name in ("ranking", "p50 ms", "p95 ms", "p95 / formula cold p95"):
        table.add_column(name, justify="left" if name == "ranking" else "right")
    lines = [
        f"`uv run python -m bench.recommendations {' '.join(shlex.quote(a) for a in sys.argv[1:])}`",
        "",
        "| ranking | p50 ms | p95 ms | p95 / formula cold p95 |",
        "|---|---|---|---|",
    ]
    for label, values in timings.items():
        p50, p95 = statistics.median(values) * 1000, _p(values, 0.95)
        table.add_row(label, f"{p50:.1f}", f"{p95:.1f}", f"{p95 / base:.2f}")
        lines.append(f"| {label} | {p50:.1f} | {p95:.1f} | {p95 / base:.2f} |")
    console = Console()
    console.print(table)
    console.print(
        f"training: {report.seconds:.1f} s (reading the database included), artefact {report.bytes / 1e6:.1f} MB, "
        f"{report.recipes:,} public recipes, {report.users:,} users, {report.likes:,} likes"
    )
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", type=int, metavar="RECIPES", help="seed PostgreSQL + Redis with this many")
    args = parser.parse_args()
    asyncio.run(run_postgres(args) if args.postgres else run_embedded(args))


if __name__ == "__main__":
    main()
