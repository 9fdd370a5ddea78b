"""Fan-out batching (keyset ranges), view-count plumbing, the handler registry, the beat schedule: pure parts."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potluck.config import EventsSettings, Settings, WorkerSettings
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.notification.fanout import keyset_ranges
from potluck.recipe.views import ViewCounter
from potluck.schedule import (
    BACKUP_FULL_TASK,
    BACKUP_INCR_TASK,
    BACKUP_REDIS_TASK,
    EDGE_ROTATE_TASK,
    EDGE_VIEWS_TASK,
    FLUSH_VIEWS_TASK,
    PARTITIONS_TASK,
    PURGE_TASK,
    RECOMMEND_TRAIN_TASK,
    RELAY_TASK,
    SEARCH_ROLLUP_TASK,
    TRENDING_TASK,
    WARM_TASK,
    beat_schedule,
)
from potluck.stats.views import chunks, parse_redis_counts


def test_no_boundaries_is_one_range_over_everything() -> None:
    assert keyset_ranges([]) == [(None, None)]


def test_ranges_are_split_at_the_boundaries_and_open_at_both_ends() -> None:
    assert keyset_ranges([5, 10]) == [(None, 5), (5, 10), (10, None)]


def _in_range(key: int, after: int | None, upto: int | None) -> bool:
    return (after is None or key > after) and (upto is None or key <= upto)


@given(
    keys=st.lists(st.integers(min_value=0, max_value=10_000), unique=True, max_size=300).map(sorted),
    size=st.integers(min_value=1, max_value=50),
)
def test_every_key_falls_in_exactly_one_range_of_at_most_size_keys(keys: list[int], size: int) -> None:
    # What the repository computes: every size-th key in order.
    boundaries = keys[size - 1 :: size]
    ranges = keyset_ranges(boundaries)
    for key in [*keys, 10_001]:  # 10_001: a follower who arrived after the boundaries were read
        assert sum(_in_range(key, a, u) for a, u in ranges) == 1
    for after, upto in ranges[:-1]:
        assert len([k for k in keys if _in_range(k, after, upto)]) == size
    assert len(ranges) == len(keys) // size + 1


def test_a_hundred_thousand_followers_in_batches_of_5000_is_21_statements() -> None:
    boundaries = list(range(5000, 100_001, 5000))
    assert len(keyset_ranges(boundaries)) == 21  # 20 full batches and the (empty) open end


def test_view_counter_takes_and_restores() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    counter = ViewCounter()
    for _ in range(3):
        counter.record(a)
    counter.record(b, 2)
    taken = counter.take()
    assert taken == {a: 3, b: 2}
    assert counter.take() == {}
    counter.record(a)
    counter.restore(taken)
    assert counter.take() == {a: 4, b: 2}


def test_chunks_are_in_id_order_and_cover_everything() -> None:
    counts = {uuid.uuid4(): i for i in range(1, 26)}
    parts = list(chunks(counts, 10))
    assert [len(p) for p in parts] == [10, 10, 5]
    flat = [item for p in parts for item in p]
    assert flat == sorted(counts.items())


def test_redis_counts_are_parsed_and_junk_is_skipped() -> None:
    rid = uuid.uuid4()
    raw: dict[bytes | str, bytes | str] = {str(rid).encode(): b"7", b"junk": b"1", str(uuid.uuid4()): b"0"}
    assert parse_redis_counts(raw) == {rid: 7}


async def _noop(_event: Event) -> None:
    return None


def test_a_hook_is_filled_by_replacing_it_and_names_are_unique() -> None:
    registry = HandlerRegistry()
    registry.register_hook("recipe.created", "search.index")
    registry.register("recipe.created", "cache.warm", _noop)
    with pytest.raises(ValueError, match="already has"):
        registry.register("recipe.created", "search.index", _noop)
    registry.register("recipe.created", "search.index", _noop, replace=True)
    handlers = registry.handlers("recipe.created")
    assert [h.name for h in handlers] == ["search.index", "cache.warm"]  # the hook keeps its place
    assert handlers[0].handler is _noop
    assert registry.handlers("nothing.happened") == []


def test_beat_schedule_names_every_task_once_with_expiring_sends() -> None:
    settings = Settings(
        events=EventsSettings(views_flush_seconds=10), worker=WorkerSettings(relay_interval_seconds=0.5)
    )
    schedule = beat_schedule(settings)
    jobs = {RELAY_TASK, FLUSH_VIEWS_TASK, PARTITIONS_TASK, PURGE_TASK, WARM_TASK, TRENDING_TASK, SEARCH_ROLLUP_TASK}
    assert set(schedule) == jobs | {
        BACKUP_FULL_TASK,
        BACKUP_INCR_TASK,
        BACKUP_REDIS_TASK,
        RECOMMEND_TRAIN_TASK,
        EDGE_VIEWS_TASK,
        EDGE_ROTATE_TASK,
    }
    assert schedule[RECOMMEND_TRAIN_TASK]["schedule"] == 86_400  # the recommendation model: nightly
    # The design's backup policy: a full backup daily, an incremental hourly.
    assert schedule[BACKUP_FULL_TASK]["schedule"] == 86_400
    assert schedule[BACKUP_INCR_TASK]["schedule"] == 3_600
    assert schedule[RELAY_TASK]["schedule"] == 0.5
    # The trending lists live 600 s: recomputed well within that; the warm job and the rollup at their defaults.
    assert schedule[TRENDING_TASK]["schedule"] < 600
    assert schedule[WARM_TASK]["schedule"] == 300
    assert schedule[SEARCH_ROLLUP_TASK]["schedule"] == 60
    assert schedule[FLUSH_VIEWS_TASK]["schedule"] == 10
    for entry in schedule.values():
        assert entry["options"]["expires"] >= entry["schedule"]
