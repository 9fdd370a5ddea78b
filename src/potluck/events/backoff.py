"""When a failed delivery is tried again: exponential backoff with full jitter, capped. Pure."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, base: float, cap: float, *, jitter: float | None = None) -> float:
    """The delay before retry number `attempt` (1 after the first failure): base * 2^(attempt-1), at most `cap`.

    `jitter` in [0, 1) spreads retries of many failing events over [delay/2, delay) so they do not return
    in lockstep; None leaves the delay exact.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    delay = min(cap, base * 2.0 ** min(attempt - 1, 62))
    if jitter is None:
        return delay
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    return delay / 2 + delay / 2 * jitter


def retry_schedule(max_attempts: int, base: float, cap: float) -> list[float]:
    """The delays between the attempts of an event that always fails (max_attempts - 1 of them)."""
    return [backoff_seconds(n, base, cap) for n in range(1, max_attempts)]


def next_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    return backoff_seconds(attempt, base, cap, jitter=(rng or random).random())
