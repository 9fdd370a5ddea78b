"""What a routed request costs the app itself, in process: the embedded app (SQLite, memory cache) behind
`httpx.ASGITransport`, no network, no server; the client's own share measured on a bare ASGI app in the same run
and subtracted. For A/B of the request path's fixed costs (routing, dependencies, middleware), not a capacity
figure:

    uv run python -m bench.route_cost --requests 1000 /api/v1/search/trending /api/v1/trending /api/v1/recipes
    PYTHONPATH=/tmp/before/src uv run python -m bench.route_cost ...     # another commit's src (git archive)
    uv run python -m bench.route_cost --seed-recipes 500 --header "Accept-Encoding: gzip, deflate, br" ...

`--seed-recipes` fills the database first (the demo seeder, a fifth as many users) so pages hold documents;
`--header` sends a header with every request (Locust's FastHttpUser sends `Accept-Encoding: gzip, deflate, br`).
A path with `cursor={cursor}` asks for the second page: the first page's `next_cursor` is put in its place.

Prints, per path, its status and the app's CPU per request (best of --rounds), in µs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from potluck.app import create_app
from potluck.config import DatabaseSettings, Settings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade
from potluck.seed.loader import default_end, load


async def _bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _cpu_per_request(client: httpx.AsyncClient, path: str, requests: int, rounds: int) -> float:
    for _ in range(100):  # warm: caches, code paths
        await client.get(path)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            await client.get(path)
        best = min(best, (time.process_time() - started) / requests * 1e6)
    return best


async def _second_page(client: httpx.AsyncClient, path: str) -> str:
    first = re.sub(r"[?&]cursor=\{cursor\}", "", path)
    cursor = (await client.get(first)).json()["next_cursor"]
    return path.replace("{cursor}", urllib.parse.quote(cursor))


async def main(paths: list[str], requests: int, rounds: int, seed_recipes: int, headers: dict[str, str]) -> None:
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="potluck-route-cost-")))
    engine = create_engine(settings.database_url, DatabaseSettings())
    await upgrade(engine)
    await engine.dispose()
    if seed_recipes:  # a plain engine, as `potluck seed` does: one transaction, no per-connection pragmas
        plain = create_async_engine(settings.database_url)
        users = max(1, seed_recipes // 5)
        await load(plain, users=users, recipes=seed_recipes, seed=42, password_hash="-", end=default_end())
        await plain.dispose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        base_url = "http://localhost"
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, headers=headers) as client,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=_bare), base_url=base_url, headers=headers) as bare,
        ):
            floor = await _cpu_per_request(bare, "/", requests, rounds)
            print(f"client's own share (bare ASGI app): {floor:.0f} µs per request")
            for wanted in paths:
                path = await _second_page(client, wanted) if "{cursor}" in wanted else wanted
                status = (await client.get(path)).status_code
                cost = await _cpu_per_request(client, path, requests, rounds) - floor
                print(f"{wanted:45s} {status}  {cost:6.0f} µs of app CPU per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-recipes", type=int, default=0, help="seed this many recipes first (default: none)")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", sent with every request')
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sent = {name.strip(): value.strip() for name, _, value in (h.partition(":") for h in args.header)}
    asyncio.run(main(args.paths, args.requests, args.rounds, args.seed_recipes, sent))
