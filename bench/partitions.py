"""The outbox's 7-day purge: DELETE on the plain table (baseline) against dropping day partitions (migration 0004).

Two databases on one PostgreSQL 15 (tests/harness, no replica): `plain` migrated to the heads without 0004 and
`partitioned` migrated to all heads. Each gets the same outbox: `--rows` events spread evenly over `--days` days
up to now, every 1000th one dead (kept by both purges), the others delivered with one handler record each. Then
each runs its purge as the scheduled jobs do (plain: OutboxRepository.purge_delivered; partitioned:
maintain_partitions, then purge_delivered for what the default partition holds), with no statement timeout (the
app's default of 5 s would stop the plain DELETE at these sizes), and the figures are:

- purge time (wall clock, one run), and for the DELETE the VACUUM it leaves behind (timed separately);
- table + index sizes of the outbox and handled_event (every partition of each) before, after the purge, and
  after the VACUUM;
- the ratio partitioned / plain for each.

    uv run python -m bench.partitions --rows 1000000          # ~3 min on the 2-core box
    uv run python -m bench.partitions --rows 1000000 --days 20 --first-id 500000   # handler blocks dropped too
    uv run python -m bench.partitions --rows 10000000 --base-dir /var/tmp/pb   # the issue's scale, data on disk
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.harness import PgCluster

from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from potluck.db.session import WriteSession
from potluck.events.repository import OutboxRepository

console = Console(stderr=True)
RETENTION = timedelta(days=7)

SIZES = """
SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint AS tables, coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint
       AS indexes
FROM pg_class c
WHERE c.relkind = 'r' AND (c.relname LIKE 'outbox_event%' OR c.relname LIKE 'handled_event%')
"""


async def _sizes(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(SIZES)
    return {"table_bytes": int(row["tables"]), "index_bytes": int(row["indexes"])}


async def _load(
    conn: asyncpg.Connection, engine: AsyncEngine, rows: int, days: int, now: datetime, partitioned: bool
) -> float:
    started = time.perf_counter()
    await conn.execute("SET statement_timeout = 0")
    if partitioned:
        # The steady state: the job ran every day, so every loaded day has its partition (none in the default).
        await _keep_up(engine, now, days)
    await conn.execute(
        """
        INSERT INTO outbox_event (topic, aggregate_type, aggregate_id, payload, status, attempts, available_at,
                                  created_at, delivered_at)
        SELECT 'recipe.created', 'recipe', gen_random_uuid(), '{"recipe_id": "x"}'::json,
               CASE WHEN g % 1000 = 0 THEN 'dead' ELSE 'delivered' END, 1, ts, ts, ts
        FROM generate_series(1, $1::bigint) AS g,
             LATERAL (SELECT $2::timestamptz - make_interval(days => $3) + (g * (make_interval(days => $3) / $1))
                      AS ts) AS t
        """,
        rows,
        now,
        days,
    )
    if partitioned:
        # The steady state: the hourly job has kept handled_event's id blocks ahead of the sequence (retention of a
        # year here: nothing is dropped before the measured purge).
        await _keep_up(engine, now, days=0)
    await conn.execute(
        "INSERT INTO handled_event (event_id, handler, handled_at) "
        "SELECT id, 'search.index', created_at FROM outbox_event WHERE status = 'delivered'"
    )
    await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


async def _keep_up(engine: AsyncEngine, now: datetime, days: int) -> None:
    for back in range(days + 1, -1, -1):
        async with WriteSession(bind=engine) as session:
            await OutboxRepository(session).maintain_partitions(now - timedelta(days=back), timedelta(days=365))
            await session.commit()


async def _purge(engine: AsyncEngine, now: datetime, partitioned: bool) -> dict[str, Any]:
    started = time.perf_counter()
    async with WriteSession(bind=engine) as session:
        repo = OutboxRepository(session)
        dropped: tuple[str, ...] = ()
        if partitioned:
            dropped = (await repo.maintain_partitions(now, RETENTION)).dropped
        deleted = await repo.purge_delivered(now - RETENTION)
        await session.commit()
    return {"purge_seconds": time.perf_counter() - started, "deleted_rows": deleted, "dropped_partitions": len(dropped)}


async def _one(pg: PgCluster, name: str, rows: int, days: int, first_id: int, now: datetime) -> dict[str, Any]:
    admin = await asyncpg.connect(host=pg.host, port=pg.port("primary"), user=pg.user, database="postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgresql+asyncpg://{pg.user}@{pg.host}:{pg.port('primary')}/{name}"
    engine = create_engine(url, DatabaseSettings(statement_timeout_ms=0))
    partitioned = name == "partitioned"
    if partitioned:
        await upgrade(engine)
    else:
        await upgrade(engine, "0003")
        await upgrade(engine, "0002")
    conn = await asyncpg.connect(host=pg.host, port=pg.port("primary"), user=pg.user, database=name)
    try:
        await conn.execute(f"ALTER SEQUENCE outbox_event_id_seq RESTART WITH {first_id}")
        result: dict[str, Any] = {"load_seconds": await _load(conn, engine, rows, days, now, partitioned)}
        result["before"] = await _sizes(conn)
        result.update(await _purge(engine, now, partitioned))
        result["after_purge"] = await _sizes(conn)
        started = time.perf_counter()
        await conn.execute("VACUUM")
        result["vacuum_seconds"] = time.perf_counter() - started
        result["after_vacuum"] = await _sizes(conn)
        result["remaining_rows"] = await conn.fetchval("SELECT count(*) FROM outbox_event")
        result["remaining_dead"] = await conn.fetchval("SELECT count(*) FROM outbox_event WHERE status = 'dead'")
    finally:
        await conn.close()
        await engine.dispose()
    console.print(name, result)
    return result


async def main(rows: int, days: int, first_id: int = 1, base_dir: Path | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    with PgCluster(base_dir=base_dir, replicas=0) as pg:
        plain = await _one(pg, "plain", rows, days, first_id, now)
        partitioned = await _one(pg, "partitioned", rows, days, first_id, now)
    mib = 1024 * 1024
    report = {
        "rows": rows,
        "days": days,
        "first_id": first_id,
        "plain": plain,
        "partitioned": partitioned,
        "ratios_partitioned_to_plain": {
            "purge_seconds": partitioned["purge_seconds"] / plain["purge_seconds"],
            "purge_plus_vacuum_seconds": (partitioned["purge_seconds"] + partitioned["vacuum_seconds"])
            / (plain["purge_seconds"] + plain["vacuum_seconds"]),
            "index_bytes_after_purge": partitioned["after_purge"]["index_bytes"] / plain["after_purge"]["index_bytes"],
            "index_bytes_after_vacuum": partitioned["after_vacuum"]["index_bytes"]
            / plain["after_vacuum"]["index_bytes"],
        },
        "index_mib": {
            k: {s: v[s]["index_bytes"] / mib for s in ("before", "after_purge", "after_vacuum")}
            for k, v in (("plain", plain), ("partitioned", partitioned))
        },
    }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    # Where the ids start: handled_event is dropped by blocks of 1,000,000 ids, so a block is only dropped once the
    # oldest kept event is past its end (--first-id 500000 --days 20 puts the first block's end inside the purge).
    parser.add_argument("--first-id", type=int, default=1)
    # Where the scratch cluster's data dirs go (default: /dev/shm when roomy); 10,000,000 rows take ~8 GB: disk.
    parser.add_argument("--base-dir", type=Path, default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rows, args.days, args.first_id, args.base_dir)), indent=2))
