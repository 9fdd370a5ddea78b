"""All SQL about statistics: adding flushed view counts, and the flush ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, update

from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.session import WriteSession
from potluck.db.time_partitions import TimePartitionChanges, TimePartitions
from potluck.recipe.models import Recipe
from potluck.stats.models import StatsFlush

STATS_FLUSH_TABLE = "stats_flush"
_recipe = Recipe.__table__
assert isinstance(_recipe, Table)
# Core executemany: one prepared UPDATE for a whole chunk. It changes neither version nor updated_at, so a
# view does not change the recipe's ETag.
_ADD_VIEWS = (
    update(_recipe).where(_recipe.c.id == bindparam("rid")).values(view_count=_recipe.c.view_count + bindparam("n"))
)


class StatsRepository:
    def __init__(self, session: WriteSession) -> None:
        self.session = session

    async def record_flush(self, flush_id: str, recipes: int, views: int, flushed_at: datetime) -> bool:
        """Claim `flush_id` in this transaction; False when it was applied before (apply nothing then).
        `flushed_at` must be the same on every try of one flush (it is in the key on PostgreSQL)."""
        result = await self.session.execute(
            dialect_insert(self.session, StatsFlush.__table__)
            .values(flush_id=flush_id, recipes=recipes, views=views, flushed_at=flushed_at)
            .on_conflict_do_nothing()
        )
        return rowcount(result) > 0

    async def add_views(self, chunk: Sequence[tuple[uuid.UUID, int]]) -> None:
        if chunk:
            await self.session.execute(_ADD_VIEWS, [{"rid": rid, "n": n} for rid, n in chunk])

    async def maintain_partitions(self, now: datetime, retention: timedelta) -> TimePartitionChanges:
        """Create the coming months of `stats_flush` and drop the months past `retention` (PostgreSQL)."""
        return await TimePartitions(self.session, STATS_FLUSH_TABLE, "flushed_at").maintain(now, retention)
