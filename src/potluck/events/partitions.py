"""The outbox's partition scheme: daily partitions on db/time_partitions.py's calendar (`DAY`), and handled_event's
blocks of event ids: which should exist, which have expired; pure, no I/O.

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

OUTBOX_TABLE = "outbox_event"
DEFAULT_SUFFIX = "_default"
# Days created ahead of today: a missed run or two (the job is hourly) never leaves today's rows without a
# partition (they would go to the default partition, and creating the day later has to move them).
DAYS_AHEAD = 3


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
