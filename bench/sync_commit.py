"""What synchronous replication costs a commit: N single-row INSERT commits against the Patroni leader with
synchronous_mode on (a commit waits for the synchronous standby to flush it) and off (asynchronous replicas).

    uv run python -m bench.sync_commit --commits 2000 --rounds 2

Starts etcd + three Patroni nodes (tests.harness.PatroniCluster, durable: fsync on), then alternates the two
modes `--rounds` times (switched through Patroni's PATCH /config) so that drift on a shared machine falls on
both. One connection, one INSERT per transaction, autocommit: the latency is the commit's. Prints median and
p95 per mode and the ratio on/off.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg
from rich.console import Console
from rich.table import Table
from tests.harness import PatroniCluster

console = Console()


async def _commits(port: int, count: int) -> list[float]:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="potluck")
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, note text)")
        insert = await conn.prepare("INSERT INTO bench_commit (note) VALUES ($1)")
        for _ in range(50):  # warm-up: connection, plan, WAL segment
            await insert.fetch("warm")
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            await insert.fetch("x")
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await conn.close()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[bool, list[float]] = {True: [], False: []}
    with PatroniCluster(durable=True) as cluster:
        for _ in range(args.rounds):
            for enabled in (True, False):
                cluster.set_synchronous_mode(enabled)
                port = cluster.nodes[cluster.leader()].pg_port
                results[enabled] += asyncio.run(_commits(port, args.commits))
        cluster.set_synchronous_mode(True)
    table = Table(title=f"single-row INSERT commits, {args.commits} x {args.rounds} per mode")
    for column in ("synchronous_mode", "median ms", "p95 ms"):
        table.add_column(column)
    figures = {}
    for enabled in (True, False):
        median, p95 = statistics.median(results[enabled]) * 1000, _p(results[enabled], 0.95) * 1000
        figures[enabled] = (median, p95)
        table.add_row("on" if enabled else "off", f"{median:.3f}", f"{p95:.3f}")
    console.print(table)
    on, off = figures[True], figures[False]
    console.print(f"ratio on/off: median {on[0] / off[0]:.2f}x, p95 {on[1] / off[1]:.2f}x")


if __name__ == "__main__":
    main()
