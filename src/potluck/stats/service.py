"""View counts on their way to the database, with no write per view.

Read path: `ViewCounter.record` (a dict increment). Every second each API process pushes its counts to Redis
(HINCRBY in one MULTI/EXEC on the coordination instance). A scheduled flush moves them to the database exactly
once: a Lua script renames the hash to a flush-id key (new views go to a fresh hash meanwhile) and remembers the
id; one transaction adds the counts and records the id in `stats_flush`; then the flush key is deleted. A flush
that died after renaming is finished by the next one (the id is remembered); one that died after its commit is
found in `stats_flush`, and its key is only deleted.

Without Redis (the embedded default) the counts go from memory straight to the database, on the same schedule.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from potluck.db.engine import Database
from potluck.kit.ids import new_id
from potluck.recipe.views import ViewCounter
from potluck.stats.edge_views import (
    FAMILIES,
    HANDLINGS,
    LIMITS,
    ROTATED_SUFFIX,
    EdgeLogCounts,
    LogPosition,
    Shipped,
    count_edge_log,
    count_rejections,
    rotation_due,
    where_to_read,
)
from potluck.stats.repository import StatsRepository
from potluck.stats.views import chunks, flush_time, parse_redis_counts

logger = logging.getLogger("potluck.stats")

VIEWS_KEY = "potluck:views"
# How far each edge hit log has been shipped (bytes), per log path.
EDGE_OFFSET_PREFIX = "potluck:edge-views:offset:"
# When the rotation job first saw each log file (per path and inode): its age. And who is rotating a log now.
EDGE_SINCE_PREFIX = "potluck:edge-views:since:"
EDGE_ROTATING_PREFIX = "potluck:edge-views:rotating:"
ROTATING_MS = 10_000
INFLIGHT_KEY = "potluck:views:inflight"
FLUSH_KEY_PREFIX = "potluck:views:flush:"
CHUNK = 1000

# Start a flush: finish an unfinished one first, else atomically move the live hash aside under a new id.
_BEGIN = """
local inflight = redis.call('GET', KEYS[2])
if inflight then return inflight end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('RENAME', KEYS[1], ARGV[2] .. ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
return ARGV[1]
"""

# End a flush: drop its hash, and forget it as in flight (only if it still is).
_END = """
redis.call('DEL', ARGV[2] .. ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def flush_key(flush_id: str) -> str:
    return FLUSH_KEY_PREFIX + flush_id


C = TypeVar("C", bound=Shipped)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _writer_pid(pid_file: Path, log: Path) -> int | None:
    """The pid `pid_file` names, if that process writes `log` (its command line names the log, as varnishncsa's -w
    or nginx's -e; nginx rewrites its argv into one string, hence the substring): a stale pid file never gets
    another process signalled."""
    try:
        pid = int(pid_file.read_text().strip())
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(log).encode() in command_line else None


class EdgeTrafficMetrics:
    """What the edge nodes answered, from their request logs as shipped (the hit ratio by route family)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "potluck_edge_requests_total",
            "Requests the edge nodes answered, by route family and cache handling (hit, miss, pass, pipe, synth).",
            ["family", "handling"],
            registry=registry,
        )
        self.rejected = Counter(
            "potluck_gateway_rejected_total",
            "Requests the gateway refused with 429, by the limit (nginx zone) that refused them.",
            ["limit"],
            registry=registry,
        )
        # Every series exists from the start: a ratio over an absent series is no data.
        for family in FAMILIES:
            for handling in HANDLINGS:
                self.requests.labels(family, handling)
        for limit in LIMITS:
            self.rejected.labels(limit)


class ViewStats:
    def __init__(
        self,
        database: Database,
        counter: ViewCounter,
        coord: aioredis.Redis | None,
        edge_metrics: EdgeTrafficMetrics | None = None,
    ) -> None:
        self.database = database
        self.counter = counter
        self.coord = coord
        self.edge_metrics = edge_metrics
        if coord is not None:
            self._begin = coord.register_script(_BEGIN)
            self._end = coord.register_script(_END)

    async def push(self) -> int:
        """Move this process's counts to Redis; on failure they stay in memory for the next push."""
        if self.coord is None:
            return 0
        counts = self.counter.take()
        if not counts:
            return 0
        try:
            async with self.coord.pipeline(transaction=True) as pipe:
                for recipe_id, n in counts.items():
                    pipe.hincrby(VIEWS_KEY, str(recipe_id), n)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self.counter.restore(counts)
            logger.warning("stats.push_failed", extra={"error": repr(exc), "recipes": len(counts)})
            return 0
        return len(counts)

    async def ship_edge_log(self, path: Path, max_bytes: int = 4 << 20) -> int:
        """Add the views in an edge node's request log, from the offset shipped last, to the counts in Redis, and its
        requests to `potluck_edge_requests_total`; returns the views."""

        def record(pipe: Pipeline, counts: EdgeLogCounts) -> None:
            for recipe_id, n in counts.views.items():
                pipe.hincrby(VIEWS_KEY, str(recipe_id), n)

        counts = await self._ship_log(path, count_edge_log, record, max_bytes)
        if counts is None:
            return 0
        if self.edge_metrics is not None:
            for (family, handling), n in counts.requests.items():
                self.edge_metrics.requests.labels(family, handling).inc(n)
        return sum(counts.views.values())

    async def ship_gateway_log(self, path: Path, max_bytes: int = 4 << 20) -> int:
        """Count the 429s in the gateway's (nginx) error log by the limit that refused them; returns how many."""
        counts = await self._ship_log(path, count_rejections, lambda _pipe, _counts: None, max_bytes)
        if counts is None:
            return 0
        if self.edge_metrics is not None:
            for limit, n in counts.by_limit.items():
                self.edge_metrics.rejected.labels(limit).inc(n)
        return sum(counts.by_limit.values())

    async def rotate_log(
        self, path: Path, writer: Path, reopen: signal.Signals, *, max_bytes: int, max_seconds: float
    ) -> bool:
        """Rename a shipped log to `<log>.1` and send its writer (`writer`: its pid file) `reopen`, on which it
        reopens the path (varnishncsa: SIGHUP; nginx: SIGUSR1), once the log is past a bound and the shipper has
        finished the previous `.1` (`rotation_due`); True when it did. The shipper then finishes `.1` before the
        new file: nothing lost."""
        if self.coord is None:
            return False
        if not await self.coord.set(EDGE_ROTATING_PREFIX + str(path), b"1", nx=True, px=ROTATING_MS):
            return False  # another worker is at it
        try:
            current = _stat(path)
            if current is None:
                return False  # renamed, its writer not reopened yet
            since_key = f"{EDGE_SINCE_PREFIX}{path}:{current.st_ino}"
            ttl = int(max(max_seconds * 2, 86_400))
            await self.coord.set(since_key, str(time.time()), nx=True, ex=ttl)
            age = time.time() - float(await self.coord.get(since_key) or time.time())
            shipped = LogPosition.decode(await self.coord.get(EDGE_OFFSET_PREFIX + str(path)))
            if not rotation_due(shipped, current, age, max_bytes, max_seconds):
                return False
            pid = _writer_pid(writer, path)
            if pid is None:
                logger.warning("stats.edge_log_writer_unknown", extra={"log": str(path), "pid_file": str(writer)})
                return False
            os.replace(path, path.with_name(path.name + ROTATED_SUFFIX))
            os.kill(pid, reopen)
            await self.coord.delete(since_key)  # its inode may be reused by a later file
        finally:
            await self.coord.delete(EDGE_ROTATING_PREFIX + str(path))
        logger.info("stats.edge_log_rotated", extra={"log": str(path), "bytes": current.st_size, "age": round(age)})
        return True

    async def _ship_log(
        self, path: Path, parse: Callable[[bytes], C], record: Callable[[Pipeline, C], None], max_bytes: int
    ) -> C | None:
        """Parse the log from the position shipped last; `record` what it found and the new position at once.

        One MULTI/EXEC under WATCH of the position: when two shippers run at once, one finds the position moved and
        ships nothing (None), so nothing is counted twice. A rotated log is finished first (`where_to_read`)."""
        if self.coord is None:
            return None
        offset_key = EDGE_OFFSET_PREFIX + str(path)
        rotated_path = path.with_name(path.name + ROTATED_SUFFIX)
        async with self.coord.pipeline(transaction=True) as pipe:
            await pipe.watch(offset_key)
            shipped = LogPosition.decode(await pipe.get(offset_key))
            choice = where_to_read(shipped, _stat(path), _stat(rotated_path), time.time())
            if choice is None:
                return None
            rotated, at = choice
            try:
                with (rotated_path if rotated else path).open("rb") as fh:
                    fh.seek(at.offset)
                    chunk = fh.read(max_bytes)
            except FileNotFoundError:
                return None
            counts = parse(chunk)
            after = LogPosition(at.inode, at.offset + counts.consumed)
            if not counts.consumed and rotated:
                current = _stat(path)  # the rotated file is done (what is left is no complete line)
                after = LogPosition(current.st_ino if current else None, 0)
            if after == shipped:
                return None
            pipe.multi()  # type: ignore[no-untyped-call]
            record(pipe, counts)
            pipe.set(offset_key, after.encode())
            try:
                await pipe.execute()
            except WatchError:
                return None
        return counts

    async def flush(self) -> int:
        """Add the counted views to `recipe.view_count` exactly once; returns the views applied."""
        if self.coord is None:
            return await self._flush_memory()
        await self.push()  # this process's own counts go along
        return await self._flush_redis()

    async def _flush_memory(self) -> int:
        counts = self.counter.take()
        if not counts:
            return 0
        try:
            await self._apply(str(new_id()), counts)
        except BaseException:
            self.counter.restore(counts)
            raise
        return sum(counts.values())

    async def _flush_redis(self) -> int:
        assert self.coord is not None
        flush_id = await self._begin(keys=[VIEWS_KEY, INFLIGHT_KEY], args=[str(new_id()), FLUSH_KEY_PREFIX])
        if flush_id is None:
            return 0
        flush_id = flush_id.decode() if isinstance(flush_id, bytes) else str(flush_id)
        counts = parse_redis_counts(await self.coord.hgetall(flush_key(flush_id)))
        applied = await self._apply(flush_id, counts) if counts else False
        await self._end(keys=[INFLIGHT_KEY], args=[flush_id, FLUSH_KEY_PREFIX])
        return sum(counts.values()) if applied else 0

    async def _apply(self, flush_id: str, counts: Mapping[uuid.UUID, int]) -> bool:
        async with self.database.write_session() as session:
            repo = StatsRepository(session)
            if not await repo.record_flush(flush_id, len(counts), sum(counts.values()), flush_time(flush_id)):
                logger.info("stats.flush_already_applied", extra={"flush_id": flush_id})
                return False
            for chunk in chunks(counts, CHUNK):
                await repo.add_views(chunk)
        logger.info("stats.flushed", extra={"flush_id": flush_id, "recipes": len(counts)})
        return True
