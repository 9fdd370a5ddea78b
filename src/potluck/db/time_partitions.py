"""Tables range-partitioned by month on a timestamp column (PostgreSQL): which months should exist, which have
expired (pure), and the statements that create and drop them (TimePartitions, the repository for it).

`notification` (by created_at) and `stats_flush` (by flushed_at) are partitioned this way since migration 0006:
`notification_p202612` holds [2026-12-01, 2027-01-01), and a DEFAULT partition takes rows no month covers (older
than every partition, or later than the months created ahead). A month past its table's retention is dropped
whole: no DELETE, no dead tuples, no index bloat (docs/scaling.md, "Partitioned tables"). SQLite keeps plain
tables: `maintain` does nothing there. The outbox is partitioned by day on the same calendar (`DAY`), with its own
maintenance (events/repository.py): it keeps the undelivered rows of a dropped day, which these tables have no
notion of.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text

from potluck.db.dialect import rowcount
from potluck.db.session import WriteSession

# Months created ahead of the current one: the hourly job has a month of slack before rows reach the default.
MONTHS_AHEAD = 1


def add_months(first: date, n: int) -> date:
    index = first.year * 12 + first.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """A partition's length: how a day rounds down to its period's first day, the period `n` later, and the
    digits of its name (`_p20261205` for a day, `_p202612` for a month)."""

    name: str
    name_format: str
    floor: Callable[[date], date]
    shift: Callable[[date, int], date]

    def digits(self) -> int:
        return len(date(2000, 1, 1).strftime(self.name_format))


DAY = Period("day", "%Y%m%d", lambda d: d, lambda d, n: d + timedelta(days=n))
MONTH = Period("month", "%Y%m", lambda d: d.replace(day=1), add_months)


@dataclass(frozen=True, order=True)
class TimePartition:
    first: date  # the period's first day
    name: str
    period: Period = field(compare=False, repr=False)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.period.shift(self.first, 1), time(), tzinfo=UTC)


def partition(period: Period, table: str, day: date) -> TimePartition:
    first = period.floor(day)
    return TimePartition(first, f"{table}_p{first:{period.name_format}}", period)


def parse(period: Period, table: str, name: str) -> TimePartition | None:
    """The period a partition's name stands for (None for the default partition or a name that is not ours)."""
    match = re.fullmatch(re.escape(table) + rf"_p(\d{{{period.digits()}}})", name)
    if match is None:
        return None
    try:
        day = datetime.strptime(match.group(1), period.name_format).date()
    except ValueError:  # _p202613, _p20261332
        return None
    return partition(period, table, day)


def wanted(period: Period, table: str, now: datetime, ahead: int) -> list[TimePartition]:
    """The current period's partition (UTC) and the next `ahead` periods'."""
    first = period.floor(now.astimezone(UTC).date())
    return [partition(period, table, period.shift(first, n)) for n in range(ahead + 1)]


def missing(period: Period, table: str, existing: Iterable[str], now: datetime, ahead: int) -> list[TimePartition]:
    have = set(existing)
    return [p for p in wanted(period, table, now, ahead) if p.name not in have]


def expired(period: Period, table: str, existing: Iterable[str], cutoff: datetime) -> list[TimePartition]:
    """Partitions whose every row is older than `cutoff` (the whole period ends at or before it), oldest first."""
    parts = (parse(period, table, name) for name in existing)
    return sorted(p for p in parts if p is not None and p.end <= cutoff)


@dataclass(frozen=True)
class TimePartitionChanges:
    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    moved: int = 0  # rows moved from the default partition into a month created late
    deleted: int = 0  # rows past retention deleted from the default partition


class TimePartitions:
    """The month partitions of one table; `table` and `column` are ours (never user input)."""

    def __init__(self, session: WriteSession, table: str, column: str) -> None:
        self.session = session
        self.table = table
        self.column = column

    async def partitioned(self) -> bool:
        if self.session.get_bind().dialect.name != "postgresql":
            return False
        kind = await self.session.scalar(
            text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": self.table}
        )
        return bool(kind == "p")

    async def names(self) -> list[str]:
        rows = await self.session.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
            ),
            {"t": self.table},
        )
        return [str(name) for name in rows.scalars()]

    async def maintain(self, now: datetime, retention: timedelta, ahead: int = MONTHS_AHEAD) -> TimePartitionChanges:
        """Create the coming months, drop the months wholly past `retention`, and delete the default partition's
        rows past it. One run at a time per table (an advisory lock); a second run finds nothing to do. Dropping
        takes a brief exclusive lock on the table at the end of the transaction."""
        if not await self.partitioned():
            return TimePartitionChanges()
        await self.session.execute(text("SET LOCAL statement_timeout = 0"))
        await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"potluck.{self.table}"})
        existing = await self.names()
        created, moved = [], 0
        for part in missing(MONTH, self.table, existing, now, ahead):
            moved += await self._create(part)
            created.append(part.name)
        cutoff = now - retention
        dropped = []
        for part in expired(MONTH, self.table, existing, cutoff):
            await self.session.execute(text(f"DROP TABLE {part.name}"))
            dropped.append(part.name)
        deleted = await self.session.execute(
            text(f"DELETE FROM {self.table}_default WHERE {self.column} < :cutoff"), {"cutoff": cutoff}
        )
        return TimePartitionChanges(tuple(created), tuple(dropped), moved, rowcount(deleted))

    async def _create(self, part: TimePartition) -> int:
        return await create_range_partition(self.session, self.table, self.column, part.name, part.start, part.end)


async def create_range_partition(
    session: WriteSession, table: str, column: str, name: str, start: datetime, end: datetime
) -> int:
    """Create partition `name` of `table` for [start, end) of `column`; returns the rows moved into it.

    ATTACH refuses a range the default partition holds rows of (the job did not run for a while): those rows move
    into the new table first. ATTACH adds the parent's indexes, unique keys and foreign keys to it."""
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    await session.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    result = await session.execute(
        text(
            f"WITH moved AS (DELETE FROM {table}_default WHERE {column} >= :start AND {column} < :end "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"start": start, "end": end},
    )
    await session.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds}"))
    return rowcount(result)
