"""What one Redis command costs the API process's CPU through redis-py, with its pure-Python reply parser and with
hiredis (the C parser redis-py picks when the `hiredis` package is installed, as it now is), in the same run:

    uv run python -m bench.redis_client                  # a throwaway redis-server on loopback
    uv run python -m bench.redis_client --rounds 5 --requests 5000

The commands are the cache's own on a request: a GET of a recipe document, an MGET of a page of 20 of them (search
and list hydration), a GET of a generation (a small integer), and the lease script (EVALSHA). The documents are
`--doc-bytes` of JSON each (a seeded recipe's document is ~2 KB). Each configuration runs on its own client under
uvloop (as the API does), alternating `--rounds` times; printed is each command's lowest client CPU per command
over the rounds (µs), the ratio hiredis / Python, and the parser class each configuration's connections really
used. Server-side time is not counted: only the client's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvloop
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
from tests.harness import RedisServer

from potluck.cache.redis_store import RedisStore, redis_client

# redis-py speaks RESP3 by default (as the API's clients do): its Python parser for it, or hiredis (either protocol).
PARSERS: dict[str, type[Any]] = {"python": _AsyncRESP3Parser, "hiredis": _AsyncHiredisParser}


def _document(i: int, size: int) -> bytes:
    words = " ".join(f"word{j}" for j in range(size // 6))
    return orjson.dumps({"id": f"recipe-{i}", "title": f"Recipe {i}", "description": words[:size]})


async def _per_command(call: Callable[[], Awaitable[Any]], requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await call()
    return (time.process_time() - started) / requests * 1e6


async def _round(url: str, parser: type[Any], requests: int) -> tuple[dict[str, float], str]:
    """Each command's client CPU per call (µs), and the parser class the client's connections used."""
    client = redis_client(url, timeout=0.5)
    client.connection_pool.connection_kwargs["parser_class"] = parser
    store = RedisStore(client)
    keys = [f"recipe:{i}" for i in range(20)]
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "GET document": lambda: store.get(keys[0]),
        "MGET 20 documents": lambda: store.get_many(keys),
        "GET generation": lambda: store.get("gen:bench"),
        "lease (EVALSHA)": lambda: store.acquire_lease("lease:bench", b"token", 1),
    }
    try:
        for call in calls.values():  # warm: connections, the script's SHA
            for _ in range(200):
                await call()
        costs = {name: await _per_command(call, requests) for name, call in calls.items()}
        used = {type(c._parser).__name__ for c in client.connection_pool._available_connections}
        return costs, ",".join(sorted(used))
    finally:
        await store.aclose()


async def main(rounds: int, requests: int, doc_bytes: int) -> None:
    with RedisServer() as server:
        seed = aioredis.Redis.from_url(server.url)
        await seed.mset({f"recipe:{i}": _document(i, doc_bytes) for i in range(20)})
        await seed.set("gen:bench", 17)
        await seed.aclose()
        best: dict[str, dict[str, float]] = {name: {} for name in PARSERS}
        used: dict[str, str] = {}
        for _ in range(rounds):
            for name, parser in PARSERS.items():
                costs, used[name] = await _round(server.url, parser, requests)
                for command, cost in costs.items():
                    best[name][command] = min(cost, best[name].get(command, float("inf")))
    print(f"client CPU per command, µs (lowest of {rounds} rounds x {requests}; documents of {doc_bytes} bytes)")
    print("parsers used: " + ", ".join(f"{name} = {parser}" for name, parser in used.items()))
    print(f"{'command':22s} {'python':>8s} {'hiredis':>8s} {'ratio':>6s}")
    for command in best["python"]:
        python, hiredis = best["python"][command], best["hiredis"][command]
        print(f"{command:22s} {python:8.1f} {hiredis:8.1f} {hiredis / python:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--doc-bytes", type=int, default=2000)
    args = parser.parse_args()
    uvloop.run(main(args.rounds, args.requests, args.doc_bytes))
