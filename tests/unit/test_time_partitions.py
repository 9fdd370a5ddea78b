"""Which month partitions should exist and which have expired (db/time_partitions.py), and a flush's time from
its UUIDv7 id (the partition key that stays the same on a retry)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from potluck.db import time_partitions as tp
from potluck.kit.ids import id_time, new_id
from potluck.stats.views import NO_TIME, flush_time


def test_months_wanted_cross_the_year() -> None:
    parts = tp.wanted(tp.MONTH, "notification", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), 2)
    assert [p.name for p in parts] == ["notification_p202612", "notification_p202701", "notification_p202702"]
    assert parts[0].start == datetime(2026, 12, 1, tzinfo=UTC)
    assert parts[0].end == parts[1].start == datetime(2027, 1, 1, tzinfo=UTC)


def test_months_are_utc() -> None:
    # 00:30 on Dec 1 in UTC+2 is still November in UTC
    east = datetime(2026, 12, 1, 0, 30, tzinfo=UTC) - timedelta(hours=2)
    assert tp.wanted(tp.MONTH, "t", east.astimezone(), 0)[0].name == "t_p202611"


def test_expired_only_whole_months_before_the_cutoff() -> None:
    names = ["t_default", "t_p202609", "t_p202610", "t_p202611", "other_p202601", "t_p202613"]
    cutoff = datetime(2026, 11, 1, tzinfo=UTC)
    assert [p.name for p in tp.expired(tp.MONTH, "t", names, cutoff)] == ["t_p202609", "t_p202610"]
    assert [p.name for p in tp.expired(tp.MONTH, "t", names, cutoff - timedelta(microseconds=1))] == ["t_p202609"]


def test_missing_skips_existing() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    assert [p.name for p in tp.missing(tp.MONTH, "t", ["t_p202612"], now, tp.MONTHS_AHEAD)] == ["t_p202701"]


@given(st.dates(min_value=date(1971, 1, 1), max_value=date(9000, 1, 1)), st.integers(-1200, 1200))
def test_add_months_is_the_calendar(day: date, n: int) -> None:
    first = day.replace(day=1)
    shifted = tp.add_months(first, n)
    assert shifted.day == 1
    assert (shifted.year * 12 + shifted.month) - (first.year * 12 + first.month) == n
    assert tp.parse(tp.MONTH, "t", tp.partition(tp.MONTH, "t", day).name) == tp.partition(tp.MONTH, "t", day)


def test_a_flush_time_is_its_ids_time_on_every_try() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    flush_id = str(new_id())
    assert flush_time(flush_id) == flush_time(flush_id)
    assert before <= flush_time(flush_id) <= datetime.now(UTC)
    assert id_time(uuid.UUID("0190a1b2-c3d4-7e5f-8000-000000000000")) == datetime.fromtimestamp(
        0x0190A1B2C3D4 / 1000, tz=UTC
    )


def test_an_id_that_is_not_a_uuid7_has_a_fixed_time() -> None:
    assert id_time(uuid.uuid4()) is None
    assert flush_time(str(uuid.uuid4())) == NO_TIME
    assert flush_time("not a uuid") == NO_TIME
