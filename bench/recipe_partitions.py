"""Is partitioning `recipe` by UUIDv7 id range (a month per partition) worth it? The hot queries at 1,000,000
recipes, plain table (baseline) against partitioned, in one scratch PostgreSQL 15 (tests/harness, no replica).

Both tables have recipe's columns and its hot-path indexes as migration 0001 makes them: the primary key on id,
(author_id, created_at DESC, id DESC), (is_public, created_at DESC, id DESC), (cuisine, rating_avg DESC). The
partitioned one is `PARTITION BY RANGE (id)` with one partition per month of UUIDv7 time (ids made in SQL from
each row's created_at, as `kit.ids.new_id` makes them: 48 bits of milliseconds first), plus a default partition;
its primary key stays `id` (the partition key). `--rows` recipes spread evenly over `--months` months up to now,
by `--authors` authors, 1 in 10 private, generated server-side (generate_series). The same rows go into both.

The queries, as recipe/repository.py sends them (prepared, through asyncpg, as the app does):

- pk: `WHERE id = $1` (a random existing id; the recipe page's main read);
- newest: `WHERE is_public ORDER BY created_at DESC, id DESC LIMIT 20` (GET /recipes, first page), and the same
  with a keyset cursor half-way back in time (a deep page);
- author: `WHERE author_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20` (an author's page).

Each is run `--reps` times per table, plain and partitioned interleaved in blocks so load on the shared box falls
on both alike; median and p95 latency, the ratio partitioned / plain, and one EXPLAIN (ANALYZE, BUFFERS) each:
how many partitions the plan touches and the shared buffers hit.

    uv run python -m bench.recipe_partitions --rows 1000000 --base-dir /var/tmp/pb
    uv run python -m bench.recipe_partitions --rows 1000000 --base-dir /var/tmp/pb --plan-cache-mode force_custom_plan
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from tests.harness import PgCluster

console = Console(stderr=True)

COLUMNS = """
    id uuid NOT NULL,
    author_id uuid NOT NULL,
    title varchar(200) NOT NULL,
    description text NOT NULL,
    cuisine varchar(50),
    prep_minutes integer NOT NULL,
    cook_minutes integer NOT NULL,
    servings integer NOT NULL,
    difficulty varchar(10) NOT NULL,
    is_public boolean NOT NULL,
    image_key varchar(255),
    rating_avg double precision,
    rating_count integer NOT NULL,
    view_count integer NOT NULL,
    favorite_count integer NOT NULL,
    updated_at timestamptz NOT NULL,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (id)
"""

INDEXES = (
    "CREATE INDEX {t}_author_created ON {t} (author_id, created_at DESC, id DESC)",
    "CREATE INDEX {t}_public_created ON {t} (is_public, created_at DESC, id DESC)",
    "CREATE INDEX {t}_cuisine_rating ON {t} (cuisine, rating_avg DESC)",
)

# A UUIDv7 whose time is `ts` (random bits from md5 of the row number): what kit.ids.new_id gives at that time.
UUID7 = (
    "(lpad(to_hex((extract(epoch FROM {ts}) * 1000)::bigint), 12, '0') || '7' || substr(md5({g}::text), 1, 3) "
    "|| '8' || substr(md5({g}::text || 'x'), 1, 15))::uuid"
)

LOAD = f"""
INSERT INTO recipe_plain
SELECT {UUID7.format(ts="ts", g="g")}, md5((g % $4)::text)::uuid, 'Recipe ' || g,
       repeat('A warm dish, simmered slowly. ', 6), (ARRAY['italian','thai','mexican','french','indian'])[g % 5 + 1],
       10, 30, 4, 'easy', g % 10 <> 0, NULL, (g % 50) / 10.0, g % 50, g % 1000, g % 100, ts, 1, ts
FROM generate_series(1, $1::bigint) AS g,
     LATERAL (SELECT $2::timestamptz - make_interval(days => $3) + g * (make_interval(days => $3) / $1)
              AS ts) AS t
"""

QUERIES = {
    "pk": "SELECT * FROM {t} WHERE id = $1",
    "newest_first_page": "SELECT * FROM {t} WHERE is_public ORDER BY created_at DESC, id DESC LIMIT 20",
    "newest_deep_page": "SELECT * FROM {t} WHERE is_public AND (created_at, id) < ($1, $2) "
    "ORDER BY created_at DESC, id DESC LIMIT 20",
    "author_page": "SELECT * FROM {t} WHERE author_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20",
}


def _month_starts(now: datetime, months: int) -> list[datetime]:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    index = first.year * 12 + first.month - 1
    return [datetime((index + n) // 12, (index + n) % 12 + 1, 1, tzinfo=UTC) for n in range(-months, 3)]


def _uuid_floor(ts: datetime) -> str:
    hex12 = f"{int(ts.timestamp() * 1000):012x}"
    return f"{hex12[:8]}-{hex12[8:12]}-0000-0000-000000000000"


async def _create(conn: asyncpg.Connection, now: datetime, months: int) -> int:
    await conn.execute(f"CREATE TABLE recipe_plain ({COLUMNS})")
    await conn.execute(f"CREATE TABLE recipe_part ({COLUMNS}) PARTITION BY RANGE (id)")
    await conn.execute("CREATE TABLE recipe_part_default PARTITION OF recipe_part DEFAULT")
    starts = _month_starts(now, months)
    for start, end in pairwise(starts):
        await conn.execute(
            f"CREATE TABLE recipe_part_p{start:%Y%m} PARTITION OF recipe_part "
            f"FOR VALUES FROM ('{_uuid_floor(start)}') TO ('{_uuid_floor(end)}')"
        )
    for table in ("recipe_plain", "recipe_part"):
        for index in INDEXES:
            await conn.execute(index.format(t=table))
    return len(starts) - 1


async def _timed(conn: asyncpg.Connection, sql: str, args_list: list[tuple[Any, ...]]) -> list[float]:
    stmt = await conn.prepare(sql)
    out = []
    for args in args_list:
        started = time.perf_counter()
        await stmt.fetch(*args)
        out.append((time.perf_counter() - started) * 1e6)
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered), "p95_us": ordered[int(len(ordered) * 0.95) - 1]}


async def _plan(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *args)
    text = "\n".join(r[0] for r in rows)
    top = re.search(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?", text)  # the first is the top node's: all
    touched = set(re.findall(r"recipe_part_(?:p\d{6}|default)", text))
    never = len(re.findall(r"\(never executed\)", text))
    return {
        "partitions_in_plan": len(touched),
        "never_executed_nodes": never,
        "buffers": int(top.group(1) or 0) + int(top.group(2) or 0) if top else None,
        "plan": text,
    }


async def main(
    rows: int, months: int, authors: int, reps: int, base_dir: Path | None, plan_cache_mode: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    rng = random.Random(7)
    with PgCluster(base_dir=base_dir, replicas=0) as pg:
        conn = await asyncpg.connect(host=pg.host, port=pg.port("primary"), user=pg.user, database="postgres")
        try:
            await conn.execute("SET statement_timeout = 0")
            # auto (the default, the app's): a prepared statement switches to a generic plan after 5 runs, which on
            # a partitioned table prunes at run time; force_custom_plan plans each run with its values.
            await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
            partitions = await _create(conn, now, months)
            started = time.perf_counter()
            await conn.execute(LOAD, rows, now, months * 30, authors)
            load_plain = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute("INSERT INTO recipe_part SELECT * FROM recipe_plain")
            load_part = time.perf_counter() - started
            await conn.execute("VACUUM ANALYZE recipe_plain")
            await conn.execute("VACUUM ANALYZE recipe_part")
            default_rows = await conn.fetchval("SELECT count(*) FROM recipe_part_default")
            ids = [r[0] for r in await conn.fetch("SELECT id FROM recipe_plain TABLESAMPLE SYSTEM (1) LIMIT 5000")]
            middle = await conn.fetchrow(
                "SELECT created_at, id FROM recipe_plain WHERE is_public ORDER BY created_at LIMIT 1 OFFSET $1",
                rows // 2,
            )
            author_ids = [r[0] for r in await conn.fetch("SELECT DISTINCT author_id FROM recipe_plain LIMIT 2000")]
            params: dict[str, list[tuple[Any, ...]]] = {
                "pk": [(rng.choice(ids),) for _ in range(reps)],
                "newest_first_page": [() for _ in range(reps)],
                "newest_deep_page": [(middle["created_at"], middle["id"]) for _ in range(reps)],
                "author_page": [(rng.choice(author_ids),) for _ in range(reps)],
            }
            samples: dict[str, dict[str, list[float]]] = {q: {"plain": [], "part": []} for q in QUERIES}
            block = max(reps // 10, 1)
            for name, sql in QUERIES.items():
                for _ in range(2):  # warm both tables' pages and plans, then measure
                    for table in ("recipe_plain", "recipe_part"):
                        await _timed(conn, sql.format(t=table), params[name][:block])
                for start in range(0, reps, block):
                    for table, key in (("recipe_plain", "plain"), ("recipe_part", "part")):
                        chunk = params[name][start : start + block]
                        samples[name][key] += await _timed(conn, sql.format(t=table), chunk)
            results: dict[str, Any] = {}
            for name, sql in QUERIES.items():
                plain, part = _summary(samples[name]["plain"]), _summary(samples[name]["part"])
                results[name] = {
                    "plain": plain,
                    "partitioned": part,
                    "ratio_median_partitioned_to_plain": part["median_us"] / plain["median_us"],
                    "ratio_p95_partitioned_to_plain": part["p95_us"] / plain["p95_us"],
                    "plan_plain": await _plan(conn, sql.format(t="recipe_plain"), params[name][0]),
                    "plan_partitioned": await _plan(conn, sql.format(t="recipe_part"), params[name][0]),
                }
                console.print(name, {k: v for k, v in results[name].items() if not k.startswith("plan")})
            sizes = {
                t: {
                    "table_bytes": await conn.fetchval(
                        "SELECT sum(pg_table_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE $1",
                        t + "%",
                    ),
                    "index_bytes": await conn.fetchval(
                        "SELECT sum(pg_indexes_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r' "
                        "AND c.relname LIKE $1",
                        t + "%",
                    ),
                }
                for t in ("recipe_plain", "recipe_part")
            }
        finally:
            await conn.close()
    return {
        "rows": rows,
        "months": months,
        "partitions": partitions,
        "rows_in_default_partition": default_rows,
        "authors": authors,
        "reps": reps,
        "plan_cache_mode": plan_cache_mode,
        "load_seconds": {"plain": load_plain, "partitioned": load_part},
        "sizes": sizes,
        "queries": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--authors", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--base-dir", type=Path, default=None)
    parser.add_argument(
        "--plan-cache-mode", choices=["auto", "force_custom_plan", "force_generic_plan"], default="auto"
    )
    args = parser.parse_args()
    report = asyncio.run(main(args.rows, args.months, args.authors, args.reps, args.base_dir, args.plan_cache_mode))
    print(json.dumps(report, indent=2, default=str))
