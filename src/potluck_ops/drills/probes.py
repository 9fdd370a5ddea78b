"""What a drill watches besides its load: the cluster it runs on (cluster.json), the cache hit rate over short
windows (/metrics of each API process), Celery tasks it sends itself and finds again in the worker's log, and
the outbox and notifications in the primary (SQL, read-only)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from celery import Celery  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout, load_cluster_json, write_cluster_json
from potluck_ops.patroni import fetch_cluster, summarize

# The worker's queue and a task that is cheap and idempotent to run any number of times (potluck's defaults).
CELERY_QUEUE = "potluck"
PROBE_TASK = "events.relay"
# Lookups the database answered: a miss loaded, a read that bypassed the store (breaker open, or this process
# owes it invalidations), and a failed store read (it falls back to the loader; counted with operation="get").
DATABASE_READS = ("potluck_cache_load_seconds_count", "potluck_cache_bypasses_total")


@dataclass(frozen=True)
class Target:
    """The running cluster as a drill sees it: cluster.json of the state dir."""

    layout: Layout
    info: dict[str, Any]

    @classmethod
    def discover(cls, layout: Layout | None = None) -> Target:
        layout = layout or Layout.discover()
        info = load_cluster_json(layout)
        if info is None:
            raise OpsError(f"no cluster at {layout.root} (no cluster.json): run `potluck cluster up` first")
        return cls(layout, info)

    @property
    def lb_url(self) -> str:
        return str(self.info["lb"]["url"])

    @property
    def api_urls(self) -> list[str]:
        return [str(node["url"]) for node in self.info["api"]]

    @property
    def metrics_urls(self) -> list[str]:
        """Each API process's /metrics, on its internal listener (not on its API port)."""
        return [str(node["metrics_url"]) for node in self.info["api"]]

    @property
    def primary_dsn(self) -> str:
        """libpq URL of the node Patroni calls leader now (it moves with every failover)."""
        postgres = self.info["postgres"]
        leader = summarize(fetch_cluster(postgres["patroni_urls"]))["leader"]
        node = next((n for n in postgres["nodes"] if n["name"] == leader), None)
        if node is None:
            raise OpsError(f"Patroni names no leader among {[n['name'] for n in postgres['nodes']]}")
        return str(node["dsn"])

    @property
    def sentinel_ports(self) -> list[int]:
        return [int(node["port"]) for node in self.info["sentinel"]["nodes"]]

    @property
    def env(self) -> dict[str, str]:
        """The POTLUCK_* settings of the cluster's processes, with the shared signing key."""
        secret = Path(self.info["secret_file"]).read_text().strip()
        return {**self.info["env"], "POTLUCK_AUTH__SECRET_KEY": secret}

    def save(self) -> None:
        """Write back cluster.json (after a drill replaced a process: its new pid)."""
        write_cluster_json(self.layout, self.info)


# ------------------------------------------------------------------------------------------------ cache hit rate


@dataclass(frozen=True, slots=True)
class CacheReading:
    at: float
    hits: float  # first and second tier hits, every family, every API process
    loads: float  # lookups the database answered (see DATABASE_READS)


async def cache_reading(client: httpx.AsyncClient, metrics_urls: Sequence[str]) -> CacheReading | None:
    """Sum the cache counters of every API process now; None if one does not answer."""
    hits = loads = 0.0
    at = time.monotonic()
    for url in metrics_urls:
        try:
            text = (await client.get(url, timeout=2)).text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "potluck_cache_hits_total":
                    hits += sample.value
                elif sample.name in DATABASE_READS or (
                    sample.name == "potluck_cache_errors_total" and sample.labels.get("operation") == "get"
                ):
                    loads += sample.value
    return CacheReading(at, hits, loads)


@dataclass
class HitRateWatch:
    """Reads the counters every `interval` seconds; the hit rate of each interval is hits / (hits + loads)."""

    metrics_urls: Sequence[str]
    interval: float = 0.5
    readings: list[CacheReading] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            while not stop.is_set():
                reading = await cache_reading(client, self.metrics_urls)
                if reading is not None:
                    self.readings.append(reading)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)

    def rates(self) -> list[tuple[float, float, float | None]]:
        """(start, end, hit rate) per interval; None when the interval saw no lookup."""
        out: list[tuple[float, float, float | None]] = []
        for before, after in zip(self.readings, self.readings[1:], strict=False):
            hits, loads = after.hits - before.hits, after.loads - before.loads
            out.append((before.at, after.at, hits / (hits + loads) if hits + loads > 0 else None))
        return out

    def recovery(self, since: float, threshold: float = 0.9) -> float | None:
        """Seconds from `since` until the end of the first interval back at or above `threshold` after the first
        interval below it; 0 if it never dipped; None if it never came back."""
        after = [(start, end, rate) for start, end, rate in self.rates() if end > since and rate is not None]
        dip = next((i for i, (_, _, rate) in enumerate(after) if rate < threshold), None)
        if dip is None:
            return 0.0
        back = next((end for _, end, rate in after[dip:] if rate >= threshold), None)
        return None if back is None else back - since

    def lowest(self, since: float) -> float | None:
        seen = [rate for _, end, rate in self.rates() if end > since and rate is not None]
        return min(seen, default=None)


# ------------------------------------------------------------------------------------------------ Celery tasks


@dataclass
class TaskProbe:
    """Sends the relay task with ids of its own to the broker (through the sentinels) every `interval` seconds;
    a send that returned is acknowledged by the broker, and must show up as run in the worker's log."""

    target: Target
    interval: float = 0.5
    sent: list[str] = field(default_factory=list)
    send_failures: int = 0

    def _app(self) -> Any:
        sentinels = ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.target.sentinel_ports)
        app = Celery("potluck-drill", broker=sentinels, set_as_current=False)
        app.conf.broker_transport_options = {
            "master_name": self.target.info["sentinel"]["masters"]["coord"],
            "sentinel_kwargs": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
        }
        return app

    async def run(self, stop: asyncio.Event) -> None:
        app = self._app()
        try:
            while not stop.is_set():
                task_id = f"drill-{uuid.uuid4()}"
                try:
                    send = asyncio.to_thread(
                        app.send_task, PROBE_TASK, task_id=task_id, queue=CELERY_QUEUE, retry=False
                    )
                    await asyncio.wait_for(send, 3)
                    self.sent.append(task_id)
                except Exception:  # any broker error: not acknowledged, so not expected to run
                    self.send_failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await asyncio.to_thread(app.close)

    def lost(self) -> list[str]:
        """Acknowledged sends the worker's log does not show as run (succeeded or failed)."""
        text = self.target.layout.background_log("worker").read_text(errors="replace")
        done = set(re.findall(r"Task \S+\[(drill-[0-9a-f-]+)\] (?:succeeded|failed)", text))
        return [task_id for task_id in self.sent if task_id not in done]


# ------------------------------------------------------------------------------------------------ the outbox


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def outbox_high_water(dsn: str) -> int:
    """The newest outbox event id now: the drill's events are those after it."""
    return int(await fetchval(dsn, "SELECT coalesce(max(id), 0) FROM outbox_event"))


async def undelivered(dsn: str, after_id: int) -> int:
    """Events recorded after `after_id` not (yet) delivered: pending, or dead-lettered."""
    sql = "SELECT count(*) FROM outbox_event WHERE id > $1 AND status <> 'delivered'"
    return int(await fetchval(dsn, sql, after_id))


async def wait_delivered(dsn: str, after_id: int, timeout: float) -> float | None:
    """Seconds until every event after `after_id` is delivered; None if some are not within `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if await undelivered(dsn, after_id) == 0:
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    return None


async def wait_in_delivery(dsn: str, timeout: float) -> bool:
    """Until a relay holds a claim on a pending event (it is delivering); False if none did within `timeout`."""
    sql = "SELECT count(*) FROM outbox_event WHERE status = 'pending' AND claimed_until > now()"
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if int(await conn.fetchval(sql)) > 0:
                return True
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return False


@dataclass(frozen=True, slots=True)
class FanOut:
    recipes: int  # the author's recipes in the database (acknowledged or not)
    expected: int  # recipes x followers
    missing: int  # (follower, recipe) pairs without a notification
    duplicates: int  # extra notifications beyond one per (follower, recipe)


async def notification_fan_out(dsn: str, author_id: str, follower_ids: Sequence[str]) -> FanOut:
    """One notification per follower per recipe of the author: what is missing and what is doubled."""
    author = uuid.UUID(author_id)
    followers = [uuid.UUID(f) for f in follower_ids]
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        recipes = int(await conn.fetchval("SELECT count(*) FROM recipe WHERE author_id = $1", author))
        rows = await conn.fetch(
            "SELECT count(*) AS n FROM notification n JOIN recipe r ON r.id = n.recipe_id "
            "WHERE r.author_id = $1 AND n.kind = 'recipe' AND n.user_id = ANY($2::uuid[]) "
            "GROUP BY n.user_id, n.recipe_id",
            author,
            followers,
        )
    finally:
        await conn.close()
    expected = recipes * len(followers)
    return FanOut(recipes, expected, expected - len(rows), sum(int(r["n"]) - 1 for r in rows))
