"""What the session check adds to a signed-in request: the access token's verification alone (what the check was
before sessions could be revoked) against verification + `SessionRevocations.is_revoked` (issue 18).

Variants, interleaved round by round in one process so a loaded machine slows them alike:

* jwt-only:       `TokenService.verify` (the baseline: the whole check before issue 18);
* memory:         + the revocation set in memory (the embedded default);
* redis-recheck:  + the set on Redis, the answer remembered `--recheck` seconds per process (the default, 1 s);
* redis-every:    + one Redis `EXISTS` per request (`POTLUCK_AUTH__REVOCATION_RECHECK_SECONDS=0`).

`--sessions` distinct sessions are checked round-robin (each remembered answer is per session).

    uv run python -m bench.session_check --checks 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tests.harness import RedisServer

from potluck.cache.redis_store import redis_client
from potluck.user.revocation import MemoryRevocationStore, RedisRevocationStore, RevocationStore, SessionRevocations
from potluck.user.security import TokenService


async def _never(_: uuid.UUID) -> bool:
    return False


def _revocations(store: RevocationStore, recheck: float) -> SessionRevocations:
    return SessionRevocations(store, ttl=960, fallback=_never, recheck_seconds=recheck)


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    tokens = TokenService("bench-secret-key-long-enough-for-hs256", "HS256", timedelta(minutes=15), timedelta(days=1))
    issued = [tokens.issue(uuid.uuid4(), "access", session_id=uuid.uuid4()).token for _ in range(max(1, args.sessions))]
    with RedisServer() as server:
        client = redis_client(server.url, 1.0)
        try:
            checks: dict[str, Callable[[str], Awaitable[object]]] = {}

            async def jwt_only(token: str) -> object:
                return tokens.verify(token, "access")

            def with_set(revocations: SessionRevocations) -> Callable[[str], Awaitable[object]]:
                async def check(token: str) -> object:
                    claims = tokens.verify(token, "access")
                    return await revocations.is_revoked(claims.session_id)

                return check

            checks["jwt-only"] = jwt_only
            checks["memory"] = with_set(_revocations(MemoryRevocationStore(), args.recheck))
            checks["redis-recheck"] = with_set(_revocations(RedisRevocationStore(client), args.recheck))
            checks["redis-every"] = with_set(_revocations(RedisRevocationStore(client), 0.0))
            for check in checks.values():  # connections open, code warm
                for token in issued:
                    await check(token)
            timings: dict[str, list[float]] = {name: [] for name in checks}
            for _ in range(args.rounds):
                for name, check in checks.items():
                    started = time.perf_counter()
                    for i in range(args.checks):
                        await check(issued[i % len(issued)])
                    timings[name].append((time.perf_counter() - started) / args.checks * 1e6)
            return timings
        finally:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.session_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20_000, help="checks per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (variants interleaved in each)")
    parser.add_argument("--sessions", type=int, default=100, help="distinct sessions, checked round-robin")
    parser.add_argument("--recheck", type=float, default=1.0, help="seconds an answer is remembered")
    args = parser.parse_args()
    timings = asyncio.run(run(args))
    base = statistics.median(timings["jwt-only"])
    print(f"`uv run python -m bench.session_check --checks {args.checks} --rounds {args.rounds}`\n")
    print("| variant | µs per check (median of rounds) | vs jwt-only | added µs |")
    print("|---|---:|---:|---:|")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / base:.2f} | {median - base:+.1f} |")


if __name__ == "__main__":
    main()
