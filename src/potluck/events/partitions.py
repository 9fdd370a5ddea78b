"""Which daily partitions of the outbox should exist, and which have expired: pure, no I/O.

On PostgreSQL the outbox is range-partitioned by `created_at`, one partition per UTC day
(`outbox_event_p20261205` holds [2026-12-05, 2026-12-06)), plus a DEFAULT partition for rows no day partition
covers (events older than any partition, kept because they were not delivered). The purge drops a whole day once
it is past retention instead of deleting its rows (docs/scaling.md, "Partitioned tables"). SQLite, the embedded
default, keeps a plain table and the DELETE purge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

OUTBOX_TABLE = "outbox_event"
DEFAULT_SUFFIX = "_default"
# Days created ahead of today: a missed run or two (the job is hourly) never leaves today's rows without a
# partition (they would go to the default partition, and creating the day later has to move them).
DAYS_AHEAD = 3


@dataclass(frozen=True, order=True)
class DayPartition:
    day: date
    name: str

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


def day_partition(table: str, day: date) -> DayPartition:
    return DayPartition(day, f"{table}_p{day:%Y%m%d}")


def parse(table: str, name: str) -> DayPartition | None:
    """The day a partition's name stands for (None for the default partition or a name that is not ours)."""
    match = re.fullmatch(re.escape(table) + r"_p(\d{8})", name)
    if match is None:
        return None
    return day_partition(table, datetime.strptime(match.group(1), "%Y%m%d").date())


def wanted(table: str, now: datetime, days_ahead: int = DAYS_AHEAD) -> list[DayPartition]:
    """Today's partition and the next `days_ahead` days' (UTC)."""
    today = now.astimezone(UTC).date()
    return [day_partition(table, today + timedelta(days=n)) for n in range(days_ahead + 1)]


def missing(table: str, existing: Iterable[str], now: datetime, days_ahead: int = DAYS_AHEAD) -> list[DayPartition]:
    have = set(existing)
    return [p for p in wanted(table, now, days_ahead) if p.name not in have]


def expired(table: str, existing: Iterable[str], cutoff: datetime) -> list[DayPartition]:
    """Day partitions whose every row is older than `cutoff` (their whole day ends at or before it), oldest first."""
    days = (parse(table, name) for name in existing)
    return sorted(p for p in days if p is not None and p.end <= cutoff)


# --- handled_event: by blocks of event ids ------------------------------------------------------------------
#
# A handler record is keyed by (event_id, handler), and its uniqueness is what makes a second delivery skip the
# handler, so its partition key must be in that key: handled_event is range-partitioned by event_id, in blocks of
# HANDLED_BLOCK ids. Ids grow with time, so a block is dropped once every event in it is gone from the day
# partitions (the records of undelivered events that were kept go to handled_event's default partition first).

HANDLED_TABLE = "handled_event"
HANDLED_BLOCK = 1_000_000
BLOCKS_AHEAD = 2


@dataclass(frozen=True, order=True)
class IdBlock:
    start: int
    end: int
    name: str


def id_block(table: str, start: int, size: int = HANDLED_BLOCK) -> IdBlock:
    return IdBlock(start, start + size, f"{table}_b{start}")


def parse_block(table: str, name: str, size: int = HANDLED_BLOCK) -> IdBlock | None:
    match = re.fullmatch(re.escape(table) + r"_b(\d+)", name)
    return id_block(table, int(match.group(1)), size) if match else None


def blocks_missing(
    table: str, existing: Iterable[str], last_id: int, size: int = HANDLED_BLOCK, ahead: int = BLOCKS_AHEAD
) -> list[IdBlock]:
    """The blocks from the one holding `last_id` to `ahead` blocks past it that do not exist yet."""
    have = set(existing)
    first = max(last_id, 0) // size * size
    wanted = [id_block(table, first + n * size, size) for n in range(ahead + 1)]
    return [b for b in wanted if b.name not in have]


def blocks_expired(
    table: str, existing: Iterable[str], oldest_live_id: int, size: int = HANDLED_BLOCK
) -> list[IdBlock]:
    """Blocks whose every id is below the oldest event still in a day partition, oldest first."""
    blocks = (parse_block(table, name, size) for name in existing)
    return sorted(b for b in blocks if b is not None and b.end <= oldest_live_id)
