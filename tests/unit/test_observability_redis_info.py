"""RedisInfoPoller: the scrape reads a snapshot polled in the background, never Redis itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError

from potluck.observability.redis_info import RedisInfoPoller
from tests.support.eventually import eventually

INFO = {"used_memory": 1_048_576, "maxmemory": 268_435_456, "evicted_keys": 42, "redis_version": "7.0.15"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRedis:
    def __init__(self) -> None:
        self.info_reply: dict[str, Any] = dict(INFO)
        self.error: Exception | None = None
        self.delay = 0.0
        self.calls = 0
        self.closed = False
        self.swallow_cancel = False

    async def aclose(self) -> None:
        self.closed = True

    async def info(self) -> dict[str, Any]:
        self.calls += 1
        if self.delay:
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                if not self.swallow_cancel:
                    raise
        if self.error is not None:
            raise self.error
        return self.info_reply


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def poller(redis: FakeRedis, registry: CollectorRegistry, clock: FakeClock) -> RedisInfoPoller:
    return RedisInfoPoller(redis, registry, interval=5.0, timeout=0.05, clock=clock)


def value(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def test_nothing_is_claimed_before_the_first_poll(poller: RedisInfoPoller, registry: CollectorRegistry) -> None:
    assert b"potluck_redis" not in generate_latest(registry)


async def test_a_poll_exposes_up_memory_and_evictions(
    poller: RedisInfoPoller, registry: CollectorRegistry, redis: FakeRedis
) -> None:
    await poller.poll()
    assert value(registry, "potluck_redis_up") == 1
    assert value(registry, "potluck_redis_used_memory_bytes") == 1_048_576
    assert value(registry, "potluck_redis_maxmemory_bytes") == 268_435_456
    assert value(registry, "potluck_redis_evicted_keys_total") == 42
    text = generate_latest(registry).decode()
    assert "# TYPE potluck_redis_evicted_keys_total counter" in text
    assert "# TYPE potluck_redis_used_memory_bytes gauge" in text
    # Scrapes read the snapshot: they never call Redis.
    for _ in range(10):
        generate_latest(registry)
    assert redis.calls == 1


@pytest.mark.parametrize(
    "error", [RedisConnectionError("refused"), OSError("unreachable"), TimeoutError()], ids=["redis", "os", "timeout"]
)
async def test_errors_report_down_and_drop_the_other_gauges(
    poller: RedisInfoPoller, registry: CollectorRegistry, redis: FakeRedis, error: Exception
) -> None:
    await poller.poll()
    redis.error = error
    await poller.poll()
    assert value(registry, "potluck_redis_up") == 0
    assert value(registry, "potluck_redis_used_memory_bytes") is None
    assert value(registry, "potluck_redis_evicted_keys_total") is None
    redis.error = None
    await poller.poll()
    assert value(registry, "potluck_redis_up") == 1


async def test_a_hanging_redis_times_out_as_down(
    poller: RedisInfoPoller, registry: CollectorRegistry, redis: FakeRedis
) -> None:
    redis.delay = 1.0  # far past the poller's 50 ms timeout
    snapshot = await asyncio.wait_for(poller.poll(), 0.5)
    assert not snapshot.up
    assert value(registry, "potluck_redis_up") == 0


async def test_a_stale_snapshot_reports_down(
    poller: RedisInfoPoller, registry: CollectorRegistry, clock: FakeClock
) -> None:
    await poller.poll()
    clock.now += poller.stale_after - 0.01
    assert value(registry, "potluck_redis_up") == 1
    clock.now += 0.02  # the poller stopped polling (or hangs): do not keep claiming the last good state
    assert value(registry, "potluck_redis_up") == 0
    assert value(registry, "potluck_redis_used_memory_bytes") is None


async def test_missing_or_odd_fields_are_left_out(
    poller: RedisInfoPoller, registry: CollectorRegistry, redis: FakeRedis
) -> None:
    redis.info_reply = {"used_memory": "not a number"}
    await poller.poll()
    assert value(registry, "potluck_redis_up") == 1
    assert value(registry, "potluck_redis_used_memory_bytes") is None
    assert value(registry, "potluck_redis_maxmemory_bytes") is None


async def test_start_polls_in_the_background_until_stopped(redis: FakeRedis, registry: CollectorRegistry) -> None:
    poller = RedisInfoPoller(redis, registry, interval=0.01, timeout=0.05)
    poller.start()
    poller.start()  # idempotent: still one task
    try:
        await eventually(lambda: redis.calls >= 3, 2, interval=0.01)
        assert value(registry, "potluck_redis_up") == 1
    finally:
        await poller.stop()
    calls = redis.calls
    await asyncio.sleep(0.05)
    assert redis.calls == calls
    await poller.stop()  # stopping twice is fine


async def test_an_unexpected_reply_keeps_the_loop_alive(
    redis: FakeRedis, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    redis.info_reply = None  # type: ignore[assignment]  # not a mapping: from_info raises AttributeError
    poller = RedisInfoPoller(redis, registry, interval=0.01, timeout=0.05)
    poller.start()
    try:
        await eventually(lambda: redis.calls >= 2, 2, interval=0.01)
    finally:
        await poller.stop()
    assert value(registry, "potluck_redis_up") == 0
    assert "redis.info_failed" in caplog.messages


def test_a_second_collector_of_the_same_names_is_refused(poller: RedisInfoPoller, registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        RedisInfoPoller(FakeRedis(), registry)


@pytest.mark.parametrize("owns_client", [True, False])
async def test_aclose_stops_and_closes_an_owned_client(registry: CollectorRegistry, owns_client: bool) -> None:
    client = FakeRedis()
    poller = RedisInfoPoller(client, registry, interval=0.01, owns_client=owns_client)
    poller.start()
    await poller.aclose()
    calls = client.calls
    await asyncio.sleep(0.03)
    assert client.calls == calls
    assert client.closed is owns_client


async def test_stop_returns_even_if_the_client_swallows_the_cancellation(registry: CollectorRegistry) -> None:
    """Some client code eats CancelledError (Python 3.11's wait_for can): shutdown must not hang on it."""
    client = FakeRedis()
    client.delay, client.swallow_cancel = 10.0, True
    poller = RedisInfoPoller(client, registry, interval=0.01, timeout=30.0)
    poller.start()
    await eventually(lambda: client.calls > 0, 2, interval=0.005)
    await asyncio.wait_for(poller.stop(), 2.0)
    calls = client.calls
    await asyncio.sleep(0.05)
    assert client.calls == calls  # the loop ended: it does not poll again


async def test_stop_is_bounded_when_the_task_will_not_end(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    client = FakeRedis()
    poller = RedisInfoPoller(client, registry, timeout=0.05)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores every cancellation

    stuck = asyncio.create_task(stubborn())
    poller._task = stuck
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await poller.stop()
    assert asyncio.get_running_loop().time() - started < 2.0
    assert "redis.poller_stuck" in caplog.messages
    release.set()
    await stuck
