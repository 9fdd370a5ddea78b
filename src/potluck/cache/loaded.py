"""What a cache read loads (`Loaded`, `Loader`) and the test hooks that pause a reader (`FaultInjection`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a loader found: the serialized value (None: it does not exist) and small metadata for the caller."""

    payload: bytes | None
    meta: bytes = b""


Loader = Callable[[], Awaitable[Loaded]]


async def not_stored() -> Loaded:
    """A loader that finds nothing: for a caller that reads the value itself when the cache cannot fill it."""
    return Loaded(None)


@dataclass
class FaultInjection:
    """Test hooks, off in production: pause a reader between its database read and its fill."""

    pause_before_fill: dict[str, float] = field(default_factory=dict)
    # Keys whose reader is paused right now (loaded, lease held, fill not yet sent): what a test waits for.
    paused: set[str] = field(default_factory=set)

    async def pause_if_asked(self, key: str) -> None:
        """A reader of `key` between its database read and its fill: sleep there if a test asked for it."""
        pause = self.pause_before_fill.pop(key, None)
        if pause:
            self.paused.add(key)
            try:
                await asyncio.sleep(pause)
            finally:
                self.paused.discard(key)

    async def wait_paused(self, key: str, timeout: float = 10.0) -> None:
        """Until a reader of `key` sits in its pause (no guessing with sleeps on a busy machine)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while key not in self.paused:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no reader of {key} paused within {timeout} s")
            await asyncio.sleep(0.005)
