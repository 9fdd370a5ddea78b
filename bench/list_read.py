"""What caching list pages buys: anonymous first pages of the common lists, warm vs uncached, same run.

The pages: `GET /api/v1/recipes` (newest), `?cuisine=` for every seeded cuisine, `?tag=` for the most used tags and
`?author=` for the most prolific authors: first pages (no cursor), the default limit, cards. Zipf-distributed over
that list (newest first, then cuisines, tags, authors by size). Scenarios, measured the way bench/cache_read.py
measures recipe reads (its processes, wrk instances, CPU accounting):

* uncached: ``POTLUCK_CACHE__ENABLED=false``: every page is the list query plus the cards' documents (cold);
* warm, cards uncached: cache on, after one request per page: the ids under `list:{scope}:{gen}:...`, but the cards
            not in `recipe:{id}` (a list never fills it), so each page loads its cards in one statement;
* warm:     cache on, after one request per page and one detail read per recipe shown (what the mix's detail
            reads leave behind): ids and cards cached, no SQL.

    uv run python -m bench.list_read --recipes 2000 --users 300 --duration 10 --warmup 3 --wait-idle 0

Prints a Markdown table (headed with the command line) and writes bench/results/list-read.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.cache_read import (
    HOST,
    Bench,
    ScenarioResult,
    Server,
    add_run_arguments,
    command_line,
    err,
    metrics_url,
    seeded_bench,
    signals_as_interrupt,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "list-read.json"
LIST_FAMILY = "recipe_list"


def list_paths(bench: Bench, tags: int, authors: int) -> list[str]:
    """The first pages, most requested first: newest, then each cuisine, tag and author by how many recipes."""
    pg = bench.pg
    cuisines = pg.psql("SELECT cuisine FROM recipe WHERE is_public GROUP BY cuisine ORDER BY count(*) DESC").split()
    tag_sql = (
        "SELECT t.name FROM tag t JOIN recipe_tag rt ON rt.tag_id = t.id JOIN recipe r ON r.id = rt.recipe_id "
        f"WHERE r.is_public GROUP BY t.name ORDER BY count(*) DESC, t.name LIMIT {tags}"
    )
    author_sql = (
        "SELECT author_id FROM recipe WHERE is_public GROUP BY author_id "
        f"ORDER BY count(*) DESC, author_id LIMIT {authors}"
    )
    base = "/api/v1/recipes"
    paths = [base]
    paths += [f"{base}?cuisine={quote(c)}" for c in cuisines]
    paths += [f"{base}?tag={quote(t)}" for t in pg.psql(tag_sql).splitlines() if t.strip()]
    paths += [f"{base}?author={a}" for a in pg.psql(author_sql).split()]
    return paths


def list_counters(ports: Sequence[int]) -> dict[str, float]:
    """recipe_list hits and misses per tier, summed over the API processes."""
    totals: dict[str, float] = defaultdict(float)
    with httpx.Client(timeout=5) as client:
        for port in ports:
            for family in text_string_to_metric_families(client.get(metrics_url(port)).text):
                for sample in family.samples:
                    if sample.labels.get("family") != LIST_FAMILY:
                        continue
                    if sample.name in ("potluck_cache_hits_total", "potluck_cache_misses_total"):
                        kind = "hits" if "hits" in sample.name else "misses"
                        totals[f"{kind}_{sample.labels['tier']}"] += sample.value
    return dict(totals)


async def _sweep(ports: Sequence[int], paths: Sequence[str], *, details: bool) -> int:
    """One request per page on each process (each fills its first tier; the second tier is shared); with
    `details`, also one detail read per recipe on those pages. Returns how many recipes the pages show."""
    ids: set[str] = set()
    async with httpx.AsyncClient(timeout=30) as client:
        for port in ports:
            for path in paths:
                response = await client.get(f"http://{HOST}:{port}{path}")
                response.raise_for_status()
                ids.update(item["id"] for item in response.json()["items"])
        if details:
            for recipe_id in sorted(ids):
                (await client.get(f"http://{HOST}:{ports[0]}/api/v1/recipes/{recipe_id}")).raise_for_status()
    return len(ids)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.list_read", description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, popular="page")
    parser.add_argument("--tags", type=int, default=20, help="tag pages (the most used tags)")
    parser.add_argument("--authors", type=int, default=20, help="author pages (the most prolific authors)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--wait-idle", type=int, default=300, help="wait up to this many seconds for quiet first")
    return parser.parse_args(argv)


def _row(result: ScenarioResult, base: ScenarioResult) -> str:
    w, cpu = result.wrk, result.cpu_us_per_request
    return (
        f"| {result.name} | {w.rps:,.0f} | {w.p50_ms:.2f} | {w.p99_ms:.2f} | {w.rps / max(base.wrk.rps, 1e-9):.2f}x "
        f"| {cpu['api']:.0f} | {cpu['postgres']:.0f} | {cpu['redis']:.0f} | {w.errors} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = command_line().replace("bench.cache_read", "bench.list_read")
    with contextlib.ExitStack() as stack:
        stack.enter_context(signals_as_interrupt())
        bench = seeded_bench(stack, args, prefix="potluck-list-bench-")
        paths = list_paths(bench, args.tags, args.authors)
        bench.ids_file.write_text("\n".join(paths) + "\n")  # zipf_get.lua takes a line starting with / as a path
        bench.ids = paths
        err.print(f"{len(paths)} first pages: {paths[:3]} ...")
        counters: dict[str, dict[str, float]] = {}

        def sweeper(details: bool) -> Callable[[list[Server]], dict[str, Any]]:
            def sweep(running: list[Server]) -> dict[str, Any]:
                began = time.monotonic()
                shown = asyncio.run(_sweep([s.port for s in running], paths, details=details))
                counters["before"] = list_counters([s.port for s in running])
                return {"sweep_seconds": round(time.monotonic() - began, 1), "recipes_shown": shown}

            return sweep

        def after_warm(running: list[Server], result: ScenarioResult) -> None:
            after = list_counters([s.port for s in running])
            delta = {k: after.get(k, 0.0) - counters["before"].get(k, 0.0) for k in after}
            asked = delta.get("hits_l1", 0.0) + delta.get("misses_l1", 0.0)
            hits = delta.get("hits_l1", 0.0) + delta.get("hits_l2", 0.0)
            result.extra["list_hit_rate"] = round(hits / asked, 4) if asked else None
            result.extra["list_counters"] = delta

        results = {
            "uncached": bench.scenario(
                "uncached", "POTLUCK_CACHE__ENABLED=false", lambda: bench.start_api(cache_enabled=False)
            ),
            # Lists alone never fill recipe:{id} (a card the tiers lack is loaded, not filled): the pages' ids
            # are cached, their cards come from the database on every request.
            "warm, cards uncached": bench.scenario(
                "warm, cards uncached",
                "list ids cached, each page's cards loaded",
                lambda: bench.start_api(cache_enabled=True),
                prepare=sweeper(details=False),
                after=after_warm,
            ),
            # In the mix, detail reads (41.6% of requests) keep the popular recipes in recipe:{id}: the cards too.
            "warm": bench.scenario(
                "warm",
                "list ids and cards cached (one detail read per recipe shown)",
                lambda: bench.start_api(cache_enabled=True),
                prepare=sweeper(details=True),
                after=after_warm,
            ),
        }
        base = results["uncached"]
        lines = [
            f"`{command}`",
            "",
            "| scenario | req/s | p50 ms | p99 ms | vs uncached | API CPU µs/req | PG CPU µs/req | Redis CPU µs/req "
            "| errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(_row(r, base) for r in results.values()),
            "",
            f"{len(paths)} first pages (newest, {len(paths) - 1 - args.tags - args.authors} cuisines, "
            f"{args.tags} tags, {args.authors} authors), Zipf s={args.zipf_s:g}; {args.processes} API processes, "
            f"one `wrk -t1 -c{args.connections}` each; list hit rate (warm-up and timed run) "
            f"{results['warm'].extra['list_hit_rate']} (warm), "
            f"{results['warm, cards uncached'].extra['list_hit_rate']} (cards uncached).",
            f"API CPU per request, warm/uncached: "
            f"{results['warm'].cpu_us_per_request['api'] / max(base.cpu_us_per_request['api'], 1e-9):.2f}.",
        ]
        print("\n".join(lines))
        data = {
            "command": command,
            "pages": paths,
            "scenarios": {k: asdict(r) for k, r in results.items()},
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(data, indent=2, default=str) + "\n")
        err.print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
