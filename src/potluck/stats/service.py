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
import uuid
from collections.abc import Mapping
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from potluck.db.engine import Database
from potluck.kit.ids import new_id
from potluck.recipe.views import ViewCounter
from potluck.stats.edge_views import count_views
from potluck.stats.repository import StatsRepository
from potluck.stats.views import chunks, flush_time, parse_redis_counts

logger = logging.getLogger("potluck.stats")

VIEWS_KEY = "potluck:views"
# How far each edge hit log has been shipped (bytes), per log path.
EDGE_OFFSET_PREFIX = "potluck:edge-views:offset:"
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


class ViewStats:
    def __init__(self, database: Database, counter: ViewCounter, coord: aioredis.Redis | None) -> None:
        self.database = database
        self.counter = counter
        self.coord = coord
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
        """Add the views in an edge node's hit log, from the offset shipped last, to the counts in Redis.

        The counts and the new offset are written in one MULTI/EXEC under WATCH of the offset, so a view is
        counted once even when two shippers run at once (one of them finds the offset moved and ships nothing)."""
        if self.coord is None:
            return 0
        offset_key = EDGE_OFFSET_PREFIX + str(path)
        async with self.coord.pipeline(transaction=True) as pipe:
            await pipe.watch(offset_key)
            offset = int(await pipe.get(offset_key) or 0)
            try:
                size = path.stat().st_size
                if size < offset:
                    offset = 0  # the log was truncated or replaced: start it again
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(max_bytes)
            except FileNotFoundError:
                return 0
            counts, consumed = count_views(chunk)
            if not consumed:
                return 0
            pipe.multi()  # type: ignore[no-untyped-call]
            for recipe_id, n in counts.items():
                pipe.hincrby(VIEWS_KEY, str(recipe_id), n)
            pipe.set(offset_key, offset + consumed)
            try:
                await pipe.execute()
            except WatchError:
                return 0
        return sum(counts.values())

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
