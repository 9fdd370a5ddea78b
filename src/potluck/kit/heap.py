"""The cyclic garbage collector and a long-lived server process.

A full (generation 2) collection walks every container object the process holds: in an API process that is
mostly what startup built and never frees (modules, the app and its routes, SQLAlchemy's and pydantic's
structures), and each such collection stopped the event loop for 90-260 ms under the load test (docs/
benchmarks.md, part 11): every request in flight waited for it, which was the mix's p99. `gc.freeze()` moves
every object tracked now into a permanent generation that collections skip (an O(1) move); what is created later
is collected as before. `thaw` gives them back at shutdown, so a process that builds many apps (the tests) does
not keep cyclic garbage of the ones it closed.
"""

from __future__ import annotations

import gc

_frozen_by = 0  # apps of this process whose startup froze the heap (the tests run several at once)


def freeze() -> int:
    """Leave everything the process holds now out of future collections; how many objects that is."""
    global _frozen_by
    _frozen_by += 1
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Give the frozen objects back to the collector once no app that froze them is running (their garbage is
    collected by a later full collection)."""
    global _frozen_by
    _frozen_by = max(0, _frozen_by - 1)
    if _frozen_by == 0:
        gc.unfreeze()
