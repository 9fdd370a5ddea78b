from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.db.consistency import ConsistencyToken, has_write, read_token
from potluck.db.lag import PrimaryHistory, format_lsn, parse_lsn


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lsn_round_trip(position: int) -> None:
    assert parse_lsn(format_lsn(position)) == position


def test_parse_lsn_matches_postgres_arithmetic() -> None:
    # pg_wal_lsn_diff('16/B374D848', '16/B374D000') = 2120
    assert parse_lsn("16/B374D848") - parse_lsn("16/B374D000") == 2120
    assert parse_lsn("1/0") == 2**32
    with pytest.raises(ValueError, match="LSN"):
        parse_lsn("garbage")


def test_idle_primary_means_zero_lag_for_a_caught_up_replica() -> None:
    history = PrimaryHistory()
    history.record(0.0, 1000)
    history.record(5.0, 1000)  # idle: no new position
    assert history.lag_seconds(1000, now=60.0) == 0.0


def test_lag_is_the_time_since_the_primary_passed_the_replayed_position() -> None:
    history = PrimaryHistory()
    history.record(10.0, 100)
    history.record(11.0, 200)
    history.record(12.0, 300)
    assert history.lag_seconds(300, now=12.5) == 0.0
    assert history.lag_seconds(250, now=12.5) == pytest.approx(0.5)  # primary passed 250 at 12.0
    assert history.lag_seconds(150, now=12.5) == pytest.approx(1.5)
    assert history.lag_seconds(0, now=12.5) == pytest.approx(2.5)


def test_lag_keeps_growing_while_a_replica_is_stuck() -> None:
    history = PrimaryHistory()
    history.record(0.0, 100)
    history.record(1.0, 200)
    assert history.lag_seconds(100, now=1.2) == pytest.approx(0.2)
    assert history.lag_seconds(100, now=9.0) == pytest.approx(8.0)


def test_history_is_bounded() -> None:
    history = PrimaryHistory(max_samples=3)
    for i in range(10):
        history.record(float(i), i)
    assert len(history.samples) == 3
    assert history.latest == 9


def test_consistency_token_from_header_or_cookie() -> None:
    assert read_token(None, None) is None
    assert read_token("0/16B3748", None) == ConsistencyToken(None, parse_lsn("0/16B3748"))
    assert read_token("3:0/16B3748", None) == ConsistencyToken(3, parse_lsn("0/16B3748"))
    assert read_token(None, "a=b; potluck_lsn=2:1/0; c=d") == ConsistencyToken(2, 2**32)
    # The later of the two positions wins; a later timeline wins over a later position.
    assert read_token("1:0/10", "potluck_lsn=1:0/20") == ConsistencyToken(1, 0x20)
    assert read_token("2:0/10", "potluck_lsn=1:0/20") == ConsistencyToken(2, 0x10)
    for bad in ("", "x/y", "1/2/3", "12345678901/0", "0/16B3748 drop", "x:0/10", "1:2:0/10"):
        assert read_token(bad, f"potluck_lsn={bad}") is None
    assert read_token("0/16B3748; drop", None) is None


def test_a_token_is_served_by_a_replica_only_on_its_own_timeline() -> None:
    token = ConsistencyToken(2, 0x100)
    assert has_write(token, primary_timeline=2, replica_timeline=2, replayed_lsn=0x100)
    assert not has_write(token, primary_timeline=2, replica_timeline=2, replayed_lsn=0xFF)
    # From before a promotion: the old primary may have written past the fork, so no replica will do.
    assert not has_write(token, primary_timeline=3, replica_timeline=3, replayed_lsn=0x1000)
    # A replica still on the old timeline (not yet following the new leader).
    assert not has_write(ConsistencyToken(3, 0x10), primary_timeline=3, replica_timeline=2, replayed_lsn=0x1000)
    # A token without a timeline (issued before tokens carried one).
    assert not has_write(ConsistencyToken(None, 0x10), primary_timeline=1, replica_timeline=1, replayed_lsn=0x1000)
