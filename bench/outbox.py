"""The outbox's cost and throughput, in one run: write latency of POST /api/v1/recipes with events recorded
against the same without (POTLUCK_EVENTS__ENABLED=false, a setting only this benchmark uses), and events per
second delivered end to end by a real Celery worker.

    uv run python -m bench.outbox --recipes 500 --rounds 2 --concurrency 4 --followers 200 --worker-concurrency 4

Starts real PostgreSQL (primary only) and two Redis instances (cache, coordination/broker), one API process
(`potluck serve`), `potluck worker` and `potluck beat`. Three write scenarios, alternating within each round so
drift hits all alike: events disabled (the baseline); events recorded with the worker stopped (the write path's
own cost: one INSERT in the transaction); events recorded while the worker delivers them (on a small machine the
delivery competes with the writes for the same CPUs). Each recipe.created event fans out to --followers
followers, invalidates and warms the cache.

Delivery is measured two ways: "sustained" while the writes run (events / (last delivered - first recorded)),
and "backlog" (the events recorded with the worker stopped: N / time from its start to the last delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from tests.harness import PgCluster, RedisServer

from bench.replicas import start_api
from potluck.config import DatabaseSettings
from potluck.db.engine import create_engine
from potluck.db.migrate import upgrade

console = Console(stderr=True)


@dataclass
class Writes:
    scenario: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float


SCENARIOS = {
    "baseline": "without outbox (POTLUCK_EVENTS__ENABLED=false)",
    "deferred": "with outbox, worker stopped (the cost of recording)",
    "live": "with outbox, worker delivering meanwhile",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Background:
    def __init__(self, role: str, env: dict[str, str], log: Path, *extra: str) -> None:
        self.role, self.env, self.log, self.extra = role, env, log, extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "potluck.cli.main", self.role, *self.extra],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.role == "worker":
            deadline = time.monotonic() + 60
            while b" ready." not in self.log.read_bytes():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"worker did not start; see {self.log}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


async def author_with_followers(client: httpx.AsyncClient, db: str, followers: int) -> dict[str, str]:
    name = f"a{uuid.uuid4().hex[:10]}"
    body = {"email": f"{name}@example.com", "username": name, "password": "long enough pw"}
    (await client.post("/api/v1/auth/register", json=body)).raise_for_status()
    token = (await client.post("/api/v1/auth/token", data={"username": name, "password": "long enough pw"})).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    author = (await client.get("/api/v1/users/me", headers=headers)).json()
    conn = await asyncpg.connect(db)
    try:
        ids = [uuid.uuid4() for _ in range(followers)]
        await conn.executemany(
            "INSERT INTO user_account (id, email, username, password_hash, display_name, bio, created_at, "
            "updated_at, version) VALUES ($1, $2, $3, 'x', 'fan', '', now(), now(), 1)",
            [(i, f"{i.hex}@example.com", f"f{i.hex[:24]}") for i in ids],
        )
        await conn.executemany(
            "INSERT INTO follow (follower_id, followee_id, created_at) VALUES ($1, $2, now())",
            [(i, uuid.UUID(author["id"])) for i in ids],
        )
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {token['access_token']}"}


async def post_recipes(url: str, headers: dict[str, str], n: int, concurrency: int, label: str) -> Writes:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    body = {"title": "bench", "ingredients": [{"name": "salt"}], "steps": ["mix"], "tags": ["bench"]}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            resp = await client.post("/api/v1/recipes", json={**body, "title": f"{label}-{i}"}, headers=headers)
            latencies.append(time.perf_counter() - started)
            if resp.status_code != 201:
                raise RuntimeError(f"POST failed: {resp.status_code} {resp.text[:200]}")

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Writes(label, n, elapsed, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000)


async def wait_delivered(db: str, since_id: int, expected: int, timeout: float = 600) -> tuple[float, float]:
    """(seconds from the first event recorded to the last delivered, events delivered) once all are."""
    conn = await asyncpg.connect(db)
    try:
        deadline = time.monotonic() + timeout
        while True:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'delivered') AS done, count(*) AS total, "
                "extract(epoch FROM max(delivered_at) - min(created_at)) AS span "
                "FROM outbox_event WHERE id > $1",
                since_id,
            )
            assert row is not None
            if row["total"] >= expected and row["done"] == row["total"]:
                return float(row["span"] or 0.0), float(row["done"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{row['done']}/{row['total']} delivered")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def last_event_id(db: str) -> int:
    conn = await asyncpg.connect(db)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox_event"))
    finally:
        await conn.close()


async def write_round(
    url: str, db: str, followers: int, n: int, concurrency: int, label: str, before: Callable[[], None]
) -> tuple[Writes, int]:
    """A fresh author with `followers`, a warm-up delivered, `before()`, then `n` timed POSTs."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        headers = await author_with_followers(client, db, followers)
    await post_recipes(url, headers, 50, 4, f"warm-{label}")  # connections, caches: not counted
    await wait_delivered(db, 0, 0)  # nothing left over from before
    before()
    since = await last_event_id(db)
    return await post_recipes(url, headers, n, concurrency, label), since


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", type=int, default=500, help="POSTs per round and scenario")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each scenario (alternating)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--followers", type=int, default=200, help="followers of the author (fan-out per event)")
    parser.add_argument("--worker-concurrency", type=int, default=4)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the servers and the worker are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = "uv run python -m bench.outbox " + shlex.join(sys.argv[1:])

    logs = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    with PgCluster(replicas=0) as pg, RedisServer() as cache, RedisServer() as coord:
        db_url = pg.dsn("primary")
        plain = f"postgresql://{pg.user}@{pg.host}:{pg.port('primary')}/{pg.dbname}"

        async def migrate() -> None:
            engine = create_engine(db_url, DatabaseSettings())
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        env = {
            **os.environ,
            "POTLUCK_DATABASE__URL": db_url,
            "POTLUCK_REDIS__URL": cache.url,
            "POTLUCK_REDIS__COORD_URL": coord.url,
            "POTLUCK_AUTH__SECRET_KEY": "bench-secret-key-long-enough-for-hs256-signing",
            "POTLUCK_AUTH__ARGON2_TIME_COST": "1",
            "POTLUCK_AUTH__ARGON2_MEMORY_KIB": "1024",
            "POTLUCK_AUTH__ARGON2_PARALLELISM": "1",
            "POTLUCK_DATA_DIR": str(logs / "data"),
            "POTLUCK_WORKER__RELAY_INTERVAL_SECONDS": "0.2",
        }
        worker = Background("worker", env, logs / "worker.log", "--concurrency", str(args.worker_concurrency))
        beat = Background("beat", env, logs / "beat.log")
        beat.start()
        writes: dict[str, list[Writes]] = {scenario: [] for scenario in SCENARIOS}
        sustained: list[float] = []
        backlog: list[float] = []
        try:
            for round_ in range(args.rounds):
                for scenario in SCENARIOS:
                    events_on = scenario != "baseline"
                    if worker.proc is None:
                        worker.start()
                    # Deferred: events pile up, the write pays only for recording them.
                    before = worker.stop if scenario == "deferred" else (lambda: None)
                    proc, port = start_api({**env, "POTLUCK_EVENTS__ENABLED": str(events_on).lower()}, logs)
                    try:
                        url = f"http://127.0.0.1:{port}"
                        label = f"{scenario}-{round_}"
                        result, since = asyncio.run(
                            write_round(url, plain, args.followers, args.recipes, args.concurrency, label, before)
                        )
                        writes[scenario].append(result)
                        console.print(result)
                        if scenario == "live":
                            span, done = asyncio.run(wait_delivered(plain, since, args.recipes))
                            sustained.append(done / span)
                        elif scenario == "deferred":
                            worker.start()
                            started = time.perf_counter()
                            asyncio.run(wait_delivered(plain, since, args.recipes))
                            backlog.append(args.recipes / (time.perf_counter() - started))
                    finally:
                        proc.terminate()
                        proc.wait(30)
        finally:
            beat.stop()
            worker.stop()

    def median(values: list[float]) -> float:
        return statistics.median(values)

    base = median([w.p50_ms for w in writes["baseline"]])
    rows = []
    for scenario, title in SCENARIOS.items():
        p50 = median([w.p50_ms for w in writes[scenario]])
        p99 = median([w.p99_ms for w in writes[scenario]])
        rps = median([w.requests / w.seconds for w in writes[scenario]])
        rows.append(f"| {title} | {p50:.1f} | {p99:.1f} | {rps:.0f} | {p50 / base:.2f}x |")
    lines = [
        f"`{command}`",
        "",
        f"{args.recipes} POSTs per round, {args.rounds} rounds (scenarios alternate), concurrency "
        f"{args.concurrency}, {args.followers} followers per author, worker concurrency {args.worker_concurrency}, "
        f"{os.cpu_count()} CPUs shared by PostgreSQL, Redis, the API, the worker and the load generator; "
        "medians of rounds.",
        "",
        "| POST /api/v1/recipes | p50 ms | p99 ms | POSTs/s | p50 vs baseline |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "| delivery of recipe.created (fan-out, invalidate, warm), end to end | events/s |",
        "|---|---:|",
        f"| sustained: delivered while the writes run (first recorded to last delivered) | {median(sustained):.0f} |",
        f"| backlog: {args.recipes} recorded with the worker stopped, then started | {median(backlog):.0f} |",
    ]
    print("\n".join(lines))
    console.print(f"logs in {logs}")


if __name__ == "__main__":
    main()
