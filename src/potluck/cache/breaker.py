"""A circuit breaker for the cache store: after repeated failures, requests stop calling it.

Requests never probe: while the breaker is open they go straight to the database, and a background task
(`Cache._recover_loop`) probes the store once `probe_due()` and closes the breaker when it answers, so no
request ever waits on a dead store once the breaker has opened. Pure, with an injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        # Told every time the breaker opens (True) or closes (False), whoever caused it: the metric's one source.
        self._on_change = on_change
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        """May a request call the store now?"""
        return self._opened_at is None

    def probe_due(self) -> bool:
        """Open long enough that the background prober should try the store again."""
        return self._opened_at is not None and self._clock() - self._opened_at >= self.reset_after

    def record_success(self) -> None:
        was_open = self._opened_at is not None
        self._failures = 0
        self._opened_at = None
        if was_open and self._on_change is not None:
            self._on_change(False)

    def record_failure(self) -> None:
        was_open = self._opened_at is not None
        self._failures += 1
        if was_open or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            if not was_open and self._on_change is not None:
                self._on_change(True)
