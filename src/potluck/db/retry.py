"""Which reads a request may run again: the failover middleware (db/failover.py) opens a marker for each safe
request, and the database layer notes on it when a read lost its server mid-statement (a switchover's fast
shutdown ends the primary's sessions; a replica stopped answering). Outside a request (the worker, the relay, the
CLI) there is no marker.

The loss is also remembered process-wide for a moment: a request that joined another's cache fill (single flight)
gets that fill's failure without having read anything itself, and may run again as well.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

# How long after a lost connection another request's 503 is taken for the same loss.
RECENT_LOSS_SECONDS = 1.0


@dataclass
class RetryMarker:
    retryable: bool = False


CURRENT: ContextVar[RetryMarker | None] = ContextVar("potluck_retry_marker", default=None)
_last_loss = [float("-inf")]


def note_retryable() -> None:
    """A read lost its server before its answer: running the request again is safe."""
    _last_loss[0] = time.monotonic()
    marker = CURRENT.get()
    if marker is not None:
        marker.retryable = True


def may_retry(marker: RetryMarker) -> bool:
    """This request's read lost its server, or one did in this process a moment ago (a fill it waited on)."""
    return marker.retryable or time.monotonic() - _last_loss[0] < RECENT_LOSS_SECONDS
