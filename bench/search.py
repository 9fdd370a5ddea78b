"""Search and trending on PostgreSQL 15 at scale: full-text search against a plain ILIKE, uncached and cached.

    uv run python -m bench.search --recipes 100000

A throwaway PostgreSQL (tests.harness.PgCluster, no replicas) is migrated, seeded with the potluck seeder and
ANALYZEd; a throwaway Redis (tests.harness.RedisServer) holds the cache. Then, for ~30 realistic queries built
from the seed's vocabulary (plain words, phrases, exclusions, type-ahead prefixes, typos, filters, sorts):

* fts: `run_search(SearchRepository(session), query)`, the uncached path: the full-text query (and, when it
  finds nothing, the typo fallback) for a page of 20 ids, in a fresh read session;
* cached: `SearchService.search(query)` after a warm-up, with Redis as the only cache tier: the generation,
  the cached page of ids, and the 20 recipe documents it is hydrated with, all from Redis;
* ilike: the same words as `(title || ' ' || description) ILIKE '%word%'` (every word), newest first, 20 rows:
  what search looks like without a full-text index (no ranking, no stemming, no ingredients).

Every round times each (query, method) once in a fresh random order, after WARMUP untimed rounds. Then the
trending recompute (`TrendingService.compute`) per period. Output: Markdown on stdout (with the command line),
EXPLAIN plans for three representative queries, bench/results/search.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.harness import PgCluster, RedisServer

from bench.pagination import seed
from potluck.cache.cache import Cache
from potluck.cache.metrics import CacheMetrics
from potluck.cache.redis_store import RedisStore, redis_client
from potluck.config import CacheSettings, DatabaseSettings
from potluck.db.engine import Database
from potluck.db.migrate import upgrade
from potluck.recipe.service import RecipeService
from potluck.search.analytics import InMemorySearchAnalytics
from potluck.search.query import SearchQuery, normalise
from potluck.search.repository import WORD_SIMILARITY_THRESHOLD, SearchRepository
from potluck.search.service import SearchService, run_search
from potluck.trending.repository import TrendingRepository
from potluck.trending.scoring import PERIODS, Period
from potluck.trending.service import TrendingService

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
RESULTS = Path(__file__).parent / "results"
WARMUP = 2
METHODS = ("fts", "cached", "ilike")
_COST = re.compile(r"\s*\(cost=[^)]*\)")
MATCH_CAP = 10_000
SEARCH_TRIGGERS_OFF = (
    "ALTER TABLE recipe DISABLE TRIGGER recipe_search_before_write",
    "ALTER TABLE recipe_ingredient DISABLE TRIGGER USER",
)
BACKFILL = "UPDATE recipe SET search_vector = recipe_search_document(title, description, recipe_ingredient_names(id))"

# (label, q, extra normalise() arguments): what people type into a recipe site, from the seed's vocabulary.
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("chicken", {}),
    ("chicken curry", {}),
    ("tomato soup", {}),
    ("pasta", {}),
    ("risotto", {}),
    ("beef stew", {}),
    ("chocolate cake", {}),
    ("lemon", {}),
    ("garlic shrimp", {}),
    ("salmon", {}),
    ("tacos", {}),
    ("ramen", {}),
    ("pancakes", {}),
    ("coconut", {}),
    ("mushrooms", {}),
    ('"fried rice"', {}),
    ("curry -chicken", {}),
    ("noodles or dumplings", {}),
    ("spicy tofu", {}),
    ("roast vegetables", {}),
    ("basil", {"sort": "newest"}),
    ("cake", {"sort": "rating"}),
    ("spaghetti", {"cuisine": "italian", "max_total_minutes": 45}),
    ("chicken", {"tags": ["quick"], "exclude_ingredients": ["garlic"]}),
    ("soup", {"min_rating": 4.0}),
    ("chick", {"prefix": True}),
    ("tomato so", {"prefix": True}),
    ("ris", {"prefix": True}),
    ("chiken tika", {}),
    ("lasagne", {}),
]
# EXPLAIN ANALYZE for: the most common word, a type-ahead prefix, a typo (the fallback's plan).
EXPLAINED = ("chicken", "chick", "chiken tika")


@dataclass
class Timing:
    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        ms = sorted(s * 1000 for s in seconds)
        p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
        return cls(round(statistics.median(ms), 3), round(p95, 3))


@dataclass
class QueryResult:
    label: str
    params: dict[str, Any]
    matches: int
    mode: str
    fts: Timing
    cached: Timing
    ilike: Timing


@dataclass
class Result:
    command: str
    server_version: str
    recipes: int
    public_recipes: int
    users: int
    repeat: int
    seed_seconds: float
    backfill_seconds: float
    queries: list[QueryResult] = field(default_factory=list)
    overall: dict[str, Timing] = field(default_factory=dict)
    trending: dict[str, dict[str, Any]] = field(default_factory=dict)
    explain: dict[str, list[str]] = field(default_factory=dict)


def _query(label: str, params: Mapping[str, Any]) -> SearchQuery:
    return normalise(label, **params)


class Bench:
    def __init__(self, db: Database, service: SearchService) -> None:
        self.db = db
        self.service = service

    async def fts(self, query: SearchQuery) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            async with self.db.read_session() as session:
                return await run_search(SearchRepository(session), query, None)

        return run

    async def ilike(self, query: SearchQuery) -> Callable[[], Awaitable[Any]]:
        words = query.text.positive_words
        conditions = " AND ".join(f"(title || ' ' || description) ILIKE :w{i}" for i in range(len(words)))
        sql = text(f"SELECT id FROM recipe WHERE is_public AND {conditions} ORDER BY created_at DESC, id DESC LIMIT 21")
        params = {f"w{i}": f"%{w}%" for i, w in enumerate(words)}

        async def run() -> Any:
            async with self.db.read_session() as session:
                return (await session.execute(sql, params)).all()

        return run

    async def cached(self, query: SearchQuery) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            return await self.service.search(query, None)

        return run

    async def timed(self, run: Callable[[], Awaitable[Any]]) -> float:
        started = time.perf_counter()
        await run()
        return time.perf_counter() - started

    async def matches(self, query: SearchQuery) -> tuple[int, str]:
        """How many public recipes the query matches (counted up to MATCH_CAP), and which mode answers it."""
        async with self.db.read_session() as session:
            page = await run_search(SearchRepository(session), query, None)
            hits = await SearchRepository(session).search(query, None, fuzzy=page.fuzzy, limit=MATCH_CAP + 1)
        return len(hits), "fuzzy" if page.fuzzy else "exact"

    async def explain(self, query: SearchQuery) -> list[str]:
        seen: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "set_config" not in statement:
                seen.append((statement, parameters))

        engines = {self.db.primary.sync_engine, self.db.primary_reader.sync_engine}
        for engine in engines:
            event.listen(engine, "before_cursor_execute", capture)
        try:
            await (await self.fts(query))()
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", capture)
        statement, parameters = seen[-1]
        async with self.db.primary.connect() as conn:
            await conn.exec_driver_sql(f"SET pg_trgm.word_similarity_threshold = {WORD_SIMILARITY_THRESHOLD}")
            result = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            lines = [_COST.sub("", str(row[0])) for row in result.all()]
        return lines


async def run(args: argparse.Namespace, command: str) -> Result:
    with PgCluster(replicas=0) as cluster, RedisServer() as redis_server:
        url = cluster.dsn("primary")
        db = Database.from_settings(url, DatabaseSettings(pool_size=5, statement_timeout_ms=60_000))
        try:
            await upgrade(db.primary)
            users = args.users or max(200, args.recipes // 20)
            # A bulk load with the search triggers off and one backfill after it, as a migration backfills an
            # existing table: row by row, the triggers cost the seeder ~4x its time (docs/search.md).
            async with db.primary.begin() as conn:
                for statement in SEARCH_TRIGGERS_OFF:
                    await conn.execute(text(statement))
            loader = create_async_engine(url)
            try:
                summary = await seed(loader, users=users, recipes=args.recipes)
            finally:
                await loader.dispose()
            err.print(f"seeded {summary.total_rows:,} rows in {summary.elapsed_seconds:.1f} s")
            started = time.perf_counter()
            async with db.primary.begin() as conn:
                await conn.execute(text("SET LOCAL statement_timeout = 0"))
                await conn.execute(text(BACKFILL))
                for statement in SEARCH_TRIGGERS_OFF:
                    await conn.execute(text(statement.replace("DISABLE", "ENABLE")))
            backfill_seconds = time.perf_counter() - started
            err.print(f"search vectors backfilled in {backfill_seconds:.1f} s")
            # The backfill leaves one dead version per recipe: compact, as a table that grew by inserts would be.
            async with db.primary.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM FULL recipe"))
                await conn.execute(text("VACUUM ANALYZE"))
            async with db.primary.connect() as conn:
                version = str((await conn.execute(text("SHOW server_version"))).scalar_one())
                public = int((await conn.execute(text("SELECT count(*) FROM recipe WHERE is_public"))).scalar_one())
            result = Result(
                command=command,
                server_version=version,
                recipes=args.recipes,
                public_recipes=public,
                users=users,
                repeat=args.repeat,
                seed_seconds=round(summary.elapsed_seconds, 1),
                backfill_seconds=round(backfill_seconds, 1),
            )

            cache_settings = CacheSettings(local_enabled=False, timeout_ms=1000)
            cache = Cache(
                RedisStore(redis_client(redis_server.url, 1.0)), CacheMetrics(CollectorRegistry()), cache_settings
            )
            recipes = RecipeService(db, cache, "/media")
            service = SearchService(db, cache, recipes, InMemorySearchAnalytics())
            bench = Bench(db, service)
            queries = [(label, params, _query(label, params)) for label, params in QUERIES]
            runs: dict[tuple[int, str], Callable[[], Awaitable[Any]]] = {}
            for i, (_, _, query) in enumerate(queries):
                runs[i, "fts"] = await bench.fts(query)
                runs[i, "ilike"] = await bench.ilike(query)
                runs[i, "cached"] = await bench.cached(query)
            with console.status("warming the cache"):
                for i in range(len(queries)):
                    await runs[i, "cached"]()
            samples: dict[tuple[int, str], list[float]] = {key: [] for key in runs}
            cells = list(runs)
            rng = random.Random(args.seed)
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("timing", total=(WARMUP + args.repeat) * len(cells))
                for round_ in range(WARMUP + args.repeat):
                    rng.shuffle(cells)
                    for cell in cells:
                        elapsed = await bench.timed(runs[cell])
                        if round_ >= WARMUP:
                            samples[cell].append(elapsed)
                        bar.advance(task)
            for i, (label, params, query) in enumerate(queries):
                matches, mode = await bench.matches(query)
                result.queries.append(
                    QueryResult(
                        label=label,
                        params=dict(params),
                        matches=matches,
                        mode=mode,
                        fts=Timing.of(samples[i, "fts"]),
                        cached=Timing.of(samples[i, "cached"]),
                        ilike=Timing.of(samples[i, "ilike"]),
                    )
                )
            for method in METHODS:
                pooled = [s for (i, m), values in samples.items() if m == method for s in values]
                result.overall[method] = Timing.of(pooled)

            trending = TrendingService(db, cache, recipes)
            for period in Period:
                async with db.read_session() as session:
                    since = trending.clock() - PERIODS[period].window
                    candidates = len(await TrendingRepository(session).candidates(since))
                times = []
                for _ in range(args.trending_repeat):
                    started = time.perf_counter()
                    top = await trending.compute(period)
                    times.append(time.perf_counter() - started)
                timing = Timing.of(times)
                result.trending[period.value] = {
                    "candidates": candidates,
                    "top": len(top),
                    "p50_ms": timing.p50_ms,
                    "max_ms": round(max(times) * 1000, 3),
                }

            for label in EXPLAINED:
                params = next(p for q, p in QUERIES if q == label)
                result.explain[label] = await bench.explain(_query(label, params))
            await cache.aclose()
            return result
        finally:
            await db.dispose()


def _params(q: QueryResult) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in q.params.items())
    return f"`{q.label}`" + (f" ({extra})" if extra else "")


def markdown(r: Result) -> str:
    out = [
        f"`{r.command}`",
        "",
        f"PostgreSQL {r.server_version}, {r.public_recipes:,} public of {r.recipes:,} recipes ({r.users:,} users, "
        f"seeded in {r.seed_seconds:.0f} s, vectors backfilled in {r.backfill_seconds:.0f} s, then VACUUM FULL); "
        f"{r.repeat} timed runs per cell, cells in random order per round.",
        "",
        "| query | matches | mode | fts p50 ms | fts p95 ms | cached p50 ms | cached p95 ms | ilike p50 ms | "
        "ilike p95 ms | ilike / fts (p50) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for q in r.queries:
        ratio = q.ilike.p50_ms / q.fts.p50_ms if q.fts.p50_ms else 0.0
        matches = f"{MATCH_CAP:,}+" if q.matches > MATCH_CAP else f"{q.matches:,}"
        out.append(
            f"| {_params(q)} | {matches} | {q.mode} | {q.fts.p50_ms:.2f} | {q.fts.p95_ms:.2f} | "
            f"{q.cached.p50_ms:.2f} | {q.cached.p95_ms:.2f} | {q.ilike.p50_ms:.2f} | {q.ilike.p95_ms:.2f} | "
            f"{ratio:.1f}x |"
        )
    o = r.overall
    out.append(
        f"| **all queries** | | | **{o['fts'].p50_ms:.2f}** | **{o['fts'].p95_ms:.2f}** | "
        f"**{o['cached'].p50_ms:.2f}** | **{o['cached'].p95_ms:.2f}** | **{o['ilike'].p50_ms:.2f}** | "
        f"**{o['ilike'].p95_ms:.2f}** | **{o['ilike'].p50_ms / o['fts'].p50_ms:.1f}x** |"
    )
    out += [
        "",
        "Trending recompute (`TrendingService.compute`: candidates query + scoring, top 100):",
        "",
        "| period | candidates | p50 ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for period, t in r.trending.items():
        out.append(f"| {period} | {t['candidates']:,} | {t['p50_ms']:.1f} | {t['max_ms']:.1f} |")
    for label, lines in r.explain.items():
        out += ["", f"EXPLAIN (ANALYZE, BUFFERS) `{label}`:", "", "```", *lines, "```"]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=0, help="default: recipes / 20 (at least 200)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per (query, method)")
    parser.add_argument("--trending-repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1, help="seed of the timing order")
    args = parser.parse_args()
    command = "uv run python -m bench.search " + shlex.join(sys.argv[1:])
    result = asyncio.run(run(args, command.strip()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(asdict(result), indent=2, default=str))
    console.print(markdown(result), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
