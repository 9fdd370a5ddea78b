"""Waiting in tests: one polling loop with a deadline, failing with what it last saw instead of hanging or passing.

`eventually` is for async tests and takes a sync or an async condition; `eventually_sync` is for sync code
(fixtures that start processes). A falsy result means "not yet"; an exception from the condition is not retried,
so an invariant asserted inside a condition fails at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")
Message = str | Callable[[], str]


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]], timeout: float, *, interval: float = ..., message: Message = ...
) -> T: ...
@overload
async def eventually(
    condition: Callable[[], T], timeout: float, *, interval: float = ..., message: Message = ...
) -> T: ...
async def eventually(
    condition: Callable[[], object], timeout: float, *, interval: float = 0.05, message: Message = ""
) -> object:
    """Call `condition` every `interval` seconds until it returns something truthy, and return that.

    After `timeout` seconds, raise AssertionError with the last result and `message` (a callable message, such
    as the tail of a log, is only built on failure)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(condition, timeout, result, message))
        await asyncio.sleep(interval)


def eventually_sync(condition: Callable[[], T], timeout: float, *, interval: float = 0.05, message: Message = "") -> T:
    """`eventually` for sync code: blocks the thread between calls."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(condition, timeout, result, message))
        time.sleep(interval)


def _failure(condition: Callable[[], object], timeout: float, last: object, message: Message) -> str:
    seen = repr(last)
    if len(seen) > 500:
        seen = seen[:500] + "..."
    name = getattr(condition, "__qualname__", repr(condition))
    text = f"{name} not met within {timeout:g} s; last returned {seen}"
    extra = message() if callable(message) else message
    return f"{text}\n{extra}" if extra else text
