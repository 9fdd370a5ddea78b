"""Keyset against OFFSET pagination of the recipe list, deep into the list, on PostgreSQL and SQLite.

    uv run python -m bench.pagination --recipes 100000 --page-size 20 --pages 1,10,100,1000 --repeat 30

For each backend: a throwaway database (tests.harness.PgCluster, or a SQLite file in a temp dir) is migrated,
seeded with the potluck seeder and ANALYZEd. Then for every page P:

* keyset: the cursor for page P is found once by following cursors from page 1 (setup, not timed); then
  `RecipeRepository.list_page(..., cursor, ...)` is timed `--repeat` times;
* offset: `RecipeRepository.list_offset(..., offset=(P-1)*page_size, ...)` is timed as often.

All fetches are interleaved: each round times every (page, method) once in a random order, so machine noise,
drift and one fetch's after-effects on the next hit every cell alike. Each fetch gets a fresh read session,
preceded by an untimed SELECT 1; the timed span is the repository call (pool checkout with its pre-ping, BEGIN,
the query, ORM loading), not the session's close. Keyset and offset must return the same ids for page P, or the
run exits non-zero.

Results: a Rich table per backend, EXPLAIN plans for page max(--pages), bench/results/pagination-<backend>.json,
and Markdown tables on stdout at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import random
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tests.harness import PgCluster

from potluck.cli.seed import load_with_progress
from potluck.config import DatabaseSettings
from potluck.db.engine import Database
from potluck.db.migrate import upgrade
from potluck.kit.cursor import Cursor, decode_cursor, encode_cursor
from potluck.recipe.models import Recipe
from potluck.recipe.repository import RecipeRepository
from potluck.recipe.schemas import RecipeFilters
from potluck.seed.loader import SeedSummary, default_end

# Piped output (a log, CI) would otherwise wrap the tables and plans at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
RESULTS = Path(__file__).parent / "results"
BACKENDS = ("postgres", "sqlite")
# Plan lines shown per query: enough for the Limit node and the scan beneath it.
PLAN_LINES = 8
# Untimed rounds before timing (prepared-statement caches, the pool, the page cache).
WARMUP = 3
_COST = re.compile(r"\s*\(cost=[^)]*\)")


# ---------------------------------------------------------------------------------------------- results


@dataclass
class Timing:
    median_ms: float
    p95_ms: float
    samples_ms: list[float]

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        ms = sorted(s * 1000 for s in seconds)
        p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
        return cls(median_ms=statistics.median(ms), p95_ms=p95, samples_ms=[round(m, 4) for m in ms])


@dataclass
class PageResult:
    page: int
    offset: int
    rows: int
    ids_match: bool
    keyset: Timing
    offset_scan: Timing
    offset_over_keyset: float = 0.0
    keyset_over_page1: float = 0.0


@dataclass
class BackendResult:
    backend: str
    server_version: str
    command: str
    recipes: int
    users: int
    public_recipes: int
    page_size: int
    repeat: int
    seed_seconds: float
    seeded_rows: Mapping[str, int]
    pages: list[PageResult] = field(default_factory=list)
    # "keyset" / "offset" -> plan lines for the deepest page.
    explain: dict[str, list[str]] = field(default_factory=dict)
    explain_page: int = 0
    mismatches: list[int] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- setup


@contextmanager
def postgres_database(keep: bool) -> Iterator[str]:
    """A throwaway PostgreSQL 15; with `keep` it is shut down cleanly afterwards and its data dir left in place."""
    cluster = PgCluster(replicas=0).start()
    try:
        yield cluster.dsn("primary")
    finally:
        if keep:
            _shutdown_keeping_data(cluster)
        else:
            cluster.stop()


def _shutdown_keeping_data(cluster: PgCluster) -> None:
    data_dir = cluster.data_dir("primary")
    pidfile = data_dir / "postmaster.pid"
    pid = int(pidfile.read_text().split("\n", 1)[0])
    os.kill(pid, signal.SIGINT)  # a "fast" shutdown, so the data dir starts again without recovery
    deadline = time.monotonic() + 60
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    atexit.unregister(cluster.stop)
    # Without the owner file the harness's stale-cluster reaper leaves the dir alone.
    (data_dir.parent / "harness.pid").unlink(missing_ok=True)
    err.print(
        f"[yellow]kept[/yellow] PostgreSQL data in {data_dir} (stopped; restart it as the postgres user with "
        f"`postgres -D {data_dir}`: it listens on 127.0.0.1:{cluster.port()})"
    )


@contextmanager
def sqlite_database(keep: bool) -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="potluck-bench-pagination-"))
    try:
        yield f"sqlite+aiosqlite:///{directory / 'potluck.db'}"
    finally:
        if keep:
            err.print(f"[yellow]kept[/yellow] SQLite database in {directory / 'potluck.db'}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


async def seed(engine: AsyncEngine, *, users: int, recipes: int) -> SeedSummary:
    """The potluck seeder with its progress bars (`potluck seed`'s own)."""
    return await load_with_progress(
        engine,
        users=users,
        recipes=recipes,
        seed=42,
        # Nobody logs in: any string will do, and hashing with argon2 would only cost time.
        password_hash="bench-not-a-real-hash",
        end=default_end(),
        console=err,
    )


# ---------------------------------------------------------------------------------------------- measuring

Fetch = Callable[[RecipeRepository], Awaitable[Sequence[Recipe]]]


class Bench:
    def __init__(self, db: Database, page_size: int) -> None:
        self.db = db
        self.page_size = page_size
        self.filters = RecipeFilters()

    def keyset(self, cursor: Cursor | None) -> Fetch:
        return lambda repo: repo.list_page(self.filters, None, cursor, self.page_size, set())

    def offset(self, page: int) -> Fetch:
        return lambda repo: repo.list_offset(self.filters, None, (page - 1) * self.page_size, self.page_size)

    async def ids(self, fetch: Fetch) -> list[Any]:
        async with self.db.read_session() as session:
            return [r.id for r in await fetch(RecipeRepository(session))]

    async def timed(self, fetch: Fetch) -> float:
        """Seconds for one fetch in a fresh read session."""
        # An untimed trivial round trip first absorbs most of what the previous fetch leaves behind.
        async with self.db.read_session() as session:
            await session.execute(text("SELECT 1"))
        async with self.db.read_session() as session:
            repo = RecipeRepository(session)
            started = time.perf_counter()
            rows = await fetch(repo)
            elapsed = time.perf_counter() - started
        if len(rows) != self.page_size:
            raise AssertionError(f"expected {self.page_size} rows, got {len(rows)}")
        return elapsed

    async def cursors_for(self, pages: Sequence[int]) -> dict[int, Cursor | None]:
        """The cursor that opens each page, found by walking the list page by page, as a client would."""
        wanted = set(pages)
        found: dict[int, Cursor | None] = {1: None} if 1 in wanted else {}
        cursor: Cursor | None = None
        for page in range(1, max(pages)):
            async with self.db.read_session() as session:
                rows = await RecipeRepository(session).list_page(self.filters, None, cursor, self.page_size, set())
            if len(rows) < self.page_size:
                raise SystemExit(f"the list ends at page {page}: seed more recipes or ask for fewer pages")
            last = rows[-1]
            # Through the opaque token, as the API hands it out and takes it back.
            cursor = decode_cursor(encode_cursor(last.created_at, last.id))
            if page + 1 in wanted:
                found[page + 1] = cursor
        return found

    async def captured_sql(self, fetch: Fetch) -> tuple[str, Any]:
        """The SELECT the repository sends for `fetch`, with its driver-level parameters."""
        seen: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                seen.append((statement, parameters))

        engine = self.db.primary_reader.sync_engine
        event.listen(engine, "before_cursor_execute", capture)
        try:
            await self.ids(fetch)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        return seen[-1]

    async def explain(self, fetch: Fetch) -> list[str]:
        statement, parameters = await self.captured_sql(fetch)
        if self.db.dialect == "postgresql":
            prefix = "EXPLAIN (ANALYZE, BUFFERS) "
        else:
            prefix = "EXPLAIN QUERY PLAN "
        async with self.db.primary_reader.connect() as conn:
            result = await conn.exec_driver_sql(prefix + statement, parameters)
            rows = result.all()
        if self.db.dialect == "postgresql":
            # Planner cost estimates only add width: the actual rows, loops and times tell the story.
            lines = [_COST.sub("", str(row[0])) for row in rows]
            timing = [line for line in lines if line.startswith(("Planning Time", "Execution Time"))]
            return lines[:PLAN_LINES] + timing
        # SQLite: (id, parent, notused, detail); indent by depth.
        depth: dict[int, int] = {0: -1}
        out = []
        for node_id, parent, _, detail in (tuple(row) for row in rows):
            depth[node_id] = depth.get(parent, -1) + 1
            out.append("  " * depth[node_id] + str(detail))
        return out


async def measure(url: str, backend: str, args: argparse.Namespace, pages: list[int], command: str) -> BackendResult:
    settings = DatabaseSettings()
    db = Database.from_settings(url, settings)
    try:
        # Database.from_settings builds the engines with create_engine(), plus a non-locking reader on SQLite.
        engine = db.primary
        await upgrade(engine)
        users = args.users or max(200, args.recipes // 20)
        # A plain engine, as `potluck seed` uses: on SQLite the app's engine opens every transaction with
        # BEGIN IMMEDIATE, and the loader's PRAGMA synchronous then fails inside that transaction.
        loader = create_async_engine(url)
        try:
            summary = await seed(loader, users=users, recipes=args.recipes)
        finally:
            await loader.dispose()
        err.print(f"seeded {summary.total_rows:,} rows in {summary.elapsed_seconds:.1f} s")
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        async with engine.connect() as conn:
            if backend == "postgres":
                version = str((await conn.execute(text("SHOW server_version"))).scalar_one())
            else:
                version = f"SQLite {sqlite3.sqlite_version}"
            public = int((await conn.execute(text("SELECT count(*) FROM recipe WHERE is_public"))).scalar_one())
        result = BackendResult(
            backend=backend,
            server_version=version,
            command=command,
            recipes=args.recipes,
            users=users,
            public_recipes=public,
            page_size=args.page_size,
            repeat=args.repeat,
            seed_seconds=round(summary.elapsed_seconds, 2),
            seeded_rows=dict(summary.rows),
        )
        bench = Bench(db, args.page_size)
        with console.status(f"{backend}: walking to page {max(pages)}"):
            cursors = await bench.cursors_for(pages)
        fetches = {page: (bench.keyset(cursors[page]), bench.offset(page)) for page in pages}
        matches: dict[int, tuple[bool, int]] = {}
        for page, (keyset, offset) in fetches.items():
            keyset_ids, offset_ids = await bench.ids(keyset), await bench.ids(offset)
            matches[page] = (keyset_ids == offset_ids, len(keyset_ids))
            if keyset_ids != offset_ids:
                result.mismatches.append(page)
                err.print(f"[red]page {page}: keyset and offset return different ids[/red]")
        samples: dict[tuple[int, str], list[float]] = {(p, m): [] for p in pages for m in ("keyset", "offset")}
        # Every round times each (page, method) once, in a fresh random order: drift on a noisy machine and the
        # carry-over of a heavy fetch into the next one (measured: +1.6 ms after an OFFSET 20000 on SQLite)
        # then fall on every cell alike instead of on whichever cell follows the heavy one.
        rng = random.Random(args.seed)
        cells = [(page, method) for page in pages for method in ("keyset", "offset")]
        rounds = WARMUP + args.repeat
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"{backend}: timing", total=rounds * len(cells))
            for i in range(rounds):
                rng.shuffle(cells)
                for page, method in cells:
                    elapsed = await bench.timed(fetches[page][0 if method == "keyset" else 1])
                    if i >= WARMUP:
                        samples[page, method].append(elapsed)
                    bar.advance(task)
        for page in pages:
            ids_match, rows = matches[page]
            result.pages.append(
                PageResult(
                    page=page,
                    offset=(page - 1) * args.page_size,
                    rows=rows,
                    ids_match=ids_match,
                    keyset=Timing.of(samples[page, "keyset"]),
                    offset_scan=Timing.of(samples[page, "offset"]),
                )
            )
        base = result.pages[0].keyset.median_ms
        for p in result.pages:
            p.offset_over_keyset = round(p.offset_scan.median_ms / p.keyset.median_ms, 2)
            p.keyset_over_page1 = round(p.keyset.median_ms / base, 2)
        deepest = max(pages)
        result.explain_page = deepest
        result.explain = {
            "keyset": await bench.explain(bench.keyset(cursors[deepest])),
            "offset": await bench.explain(bench.offset(deepest)),
        }
        return result
    finally:
        await db.dispose()


# ---------------------------------------------------------------------------------------------- reporting


def _headers(first_page: int) -> list[str]:
    return [
        "page",
        "keyset median ms",
        "keyset p95 ms",
        "offset median ms",
        "offset p95 ms",
        "offset / keyset",
        f"keyset P / keyset {first_page}",
        "same ids",
    ]


def _cells(p: PageResult) -> list[str]:
    return [
        f"{p.page:,}",
        f"{p.keyset.median_ms:.2f}",
        f"{p.keyset.p95_ms:.2f}",
        f"{p.offset_scan.median_ms:.2f}",
        f"{p.offset_scan.p95_ms:.2f}",
        f"{p.offset_over_keyset:.2f}x",
        f"{p.keyset_over_page1:.2f}x",
        "yes" if p.ids_match else "NO",
    ]


def print_table(r: BackendResult) -> None:
    title = (
        f"{r.backend} ({r.server_version}): {r.public_recipes:,} public of {r.recipes:,} recipes, "
        f"page size {r.page_size}, {r.repeat} fetches each (medians)"
    )
    table = Table(title=title)
    for header in _headers(r.pages[0].page):
        table.add_column(header, justify="right")
    for p in r.pages:
        table.add_row(*_cells(p))
    console.print(table)
    for kind in ("keyset", "offset"):
        console.print(f"[bold]EXPLAIN {kind} page {r.explain_page:,}[/bold] ({r.backend})")
        for line in r.explain[kind]:
            console.print(f"  {line}", markup=False, highlight=False)


def markdown(r: BackendResult) -> str:
    headers = _headers(r.pages[0].page)
    lines = [
        f"**{r.backend}** ({r.server_version}; {r.public_recipes:,} public of {r.recipes:,} recipes, "
        f"page size {r.page_size}, {r.repeat} fetches per cell)",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_cells(p)) + " |" for p in r.pages]
    return "\n".join(lines)


def write_json(r: BackendResult) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"pagination-{r.backend}.json"
    payload = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **asdict(r)}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------- main


def _pages(value: str) -> list[int]:
    try:
        pages = sorted({int(p) for p in value.split(",") if p.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of page numbers: {value!r}") from None
    if not pages or pages[0] < 1:
        raise argparse.ArgumentTypeError("pages are numbered from 1")
    return pages


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pagination", description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", type=_positive, default=100_000, help="recipes to seed (default 100000)")
    parser.add_argument("--users", type=int, default=0, help="users to seed (default max(200, recipes/20))")
    parser.add_argument("--page-size", type=_positive, default=20)
    parser.add_argument("--pages", type=_pages, default=[1, 10, 100, 1000], help="e.g. 1,10,100,1000")
    parser.add_argument("--repeat", type=_positive, default=30, help="timed fetches per page and method")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="keep the temporary databases")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random order of timed fetches")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "uv run python -m bench.pagination " + shlex.join(sys.argv[1:] if argv is None else argv)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    started = time.perf_counter()
    results: list[BackendResult] = []
    for backend in backends:
        console.rule(backend)
        database = postgres_database if backend == "postgres" else sqlite_database
        with database(args.keep) as url:
            result = asyncio.run(measure(url, backend, args, args.pages, command))
        results.append(result)
        print_table(result)
        console.print(f"wrote {write_json(result)}")
    wall = time.perf_counter() - started

    console.rule("markdown")
    out = [f"`{command}`", ""]
    for r in results:
        out += [markdown(r), ""]
    out.append(f"Wall time: {wall:.0f} s (setup, seeding and measuring).")
    print("\n".join(out))
    failed = [(r.backend, r.mismatches) for r in results if r.mismatches]
    if failed:
        err.print(f"[red]keyset and offset disagree on: {failed}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
