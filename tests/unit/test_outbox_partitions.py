"""The outbox's partition calendar (events/partitions.py): which days should exist, which have expired."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from potluck.db import time_partitions as tp
from potluck.db.time_partitions import DAY, parse, partition, wanted
from potluck.events import partitions

T = "outbox_event"


def test_names_and_bounds_are_utc_days() -> None:
    part = partition(DAY, T, date(2026, 12, 5))
    assert part.name == "outbox_event_p20261205"
    assert part.start == datetime(2026, 12, 5, tzinfo=UTC)
    assert part.end - part.start == timedelta(days=1)
    assert parse(DAY, T, part.name) == part
    assert parse(DAY, T, "outbox_event_default") is None
    assert parse(DAY, T, "recipe_p20261205") is None
    assert parse(DAY, T, "outbox_event_p20261332") is None  # not a date: not ours, no ValueError


def test_today_in_utc_and_the_days_ahead() -> None:
    # 23:30 at UTC-5 is already the next day in UTC
    late = datetime(2026, 12, 5, 23, 30, tzinfo=UTC) + timedelta(hours=5)
    days = [p.first for p in wanted(DAY, T, late, 2)]
    assert days == [date(2026, 12, 6), date(2026, 12, 7), date(2026, 12, 8)]


def test_a_day_expires_only_when_all_of_it_is_past_the_cutoff() -> None:
    names = [partition(DAY, T, date(2026, 12, d)).name for d in (1, 2, 3)] + ["outbox_event_default"]
    cutoff = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    assert [p.first.day for p in tp.expired(DAY, T, names, cutoff)] == [1, 2]
    assert [p.first.day for p in tp.expired(DAY, T, names, cutoff - timedelta(seconds=1))] == [1]


@given(
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    have=st.sets(st.integers(min_value=-10, max_value=10), max_size=15),
    retention_days=st.integers(min_value=1, max_value=30),
)
def test_missing_and_expired_never_overlap_and_cover_what_is_wanted(
    now: datetime, have: set[int], retention_days: int
) -> None:
    existing = [partition(DAY, T, now.date() + timedelta(days=d)).name for d in have]
    missing = tp.missing(DAY, T, existing, now, partitions.DAYS_AHEAD)
    assert {p.name for p in missing} | set(existing) >= {p.name for p in wanted(DAY, T, now, partitions.DAYS_AHEAD)}
    assert not {p.name for p in missing} & set(existing)
    expired = tp.expired(DAY, T, existing, now - timedelta(days=retention_days))
    assert all(p.end <= now - timedelta(days=retention_days) for p in expired)
    # today and the days ahead never expire
    assert not {p.name for p in expired} & {p.name for p in wanted(DAY, T, now, partitions.DAYS_AHEAD)}


def test_handled_blocks_follow_the_sequence_and_expire_below_the_oldest_live_event() -> None:
    h = partitions.HANDLED_TABLE
    missing = partitions.blocks_missing(h, ["handled_event_b0"], last_id=1_500_000, size=1_000_000, ahead=2)
    assert [b.name for b in missing] == ["handled_event_b1000000", "handled_event_b2000000", "handled_event_b3000000"]
    names = ["handled_event_b0", "handled_event_b1000000", "handled_event_default"]
    assert [b.start for b in partitions.blocks_expired(h, names, oldest_live_id=1_000_000)] == [0]
    assert partitions.blocks_expired(h, names, oldest_live_id=999_999) == []
    assert partitions.parse_block(h, "handled_event_default") is None


@given(st.dates(min_value=date(1971, 1, 1), max_value=date(9000, 1, 1)))
def test_a_day_partition_name_parses_back(day: date) -> None:
    part = partition(DAY, T, day)
    assert parse(DAY, T, part.name) == part
    assert part.end == partition(DAY, T, day + timedelta(days=1)).start
