"""tests.support.eventually: the one polling loop of the suite returns what it waited for, or says what it saw."""

from __future__ import annotations

import time

import pytest

from tests.support.eventually import eventually, eventually_sync


class Countdown:
    """Falsy until called `calls` times, then returns `value`."""

    def __init__(self, calls: int, value: object = "ready") -> None:
        self.left, self.value, self.seen = calls, value, 0

    def __call__(self) -> object:
        self.seen += 1
        self.left -= 1
        return self.value if self.left <= 0 else []


async def test_returns_the_first_truthy_value_of_a_sync_condition() -> None:
    condition = Countdown(3, value={"id": 7})
    assert await eventually(condition, 5, interval=0.001) == {"id": 7}
    assert condition.seen == 3  # stops polling once it holds


async def test_awaits_an_async_condition() -> None:
    condition = Countdown(2, value=42)

    async def check() -> object:
        return condition()

    assert await eventually(check, 5, interval=0.001) == 42
    assert condition.seen == 2


async def test_a_condition_that_holds_at_once_is_called_once_even_with_no_time() -> None:
    condition = Countdown(1)
    assert await eventually(condition, 0) == "ready"
    assert condition.seen == 1


async def test_times_out_with_the_last_value_seen_and_the_message() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not met within 0\.05 s; last returned \[\]\nstill waiting") as failed:
        await eventually(Countdown(10**6), 0.05, interval=0.01, message="still waiting")
    assert 0.05 <= time.monotonic() - started < 2
    assert "Countdown" in str(failed.value)


async def test_a_callable_message_is_built_only_on_failure() -> None:
    built: list[str] = []

    def message() -> str:
        built.append("log tail")
        return "log tail"

    assert await eventually(Countdown(2), 1, interval=0.001, message=message) == "ready"
    assert built == []
    with pytest.raises(AssertionError, match="log tail"):
        await eventually(lambda: 0, 0.01, interval=0.001, message=message)
    assert built == ["log tail"]


async def test_an_exception_from_the_condition_is_not_retried() -> None:
    calls = 0

    def broken() -> bool:
        nonlocal calls
        calls += 1
        raise AssertionError("an invariant broke")

    with pytest.raises(AssertionError, match="an invariant broke"):
        await eventually(broken, 5)
    assert calls == 1


class Nothing:
    """Falsy, with a very long repr (a big empty result set, say)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "x" * 10_000


async def test_a_long_last_value_is_cut_short() -> None:
    with pytest.raises(AssertionError) as failed:
        await eventually(Nothing, 0)
    assert "last returned xxx" in str(failed.value)
    assert len(str(failed.value)) < 1000


def test_the_sync_variant_polls_and_times_out_the_same_way() -> None:
    condition = Countdown(3, value=1.5)
    assert eventually_sync(condition, 5, interval=0.001) == 1.5
    assert condition.seen == 3
    with pytest.raises(AssertionError, match=r"last returned None\nserver log"):
        eventually_sync(lambda: None, 0.02, interval=0.005, message=lambda: "server log")
