"""Views of recipes, counted in process memory. Pure: no I/O; the stats domain (`stats/service.py`) moves the
counts on to Redis and the database."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping


class ViewCounter:
    """Per-process view counts since the last push; the read path only increments a dict entry."""

    def __init__(self) -> None:
        self._counts: Counter[uuid.UUID] = Counter()

    def record(self, recipe_id: uuid.UUID, n: int = 1) -> None:
        self._counts[recipe_id] += n

    def take(self) -> dict[uuid.UUID, int]:
        """Everything counted so far; the counter starts again from zero."""
        counts, self._counts = self._counts, Counter()
        return dict(counts)

    def restore(self, counts: Mapping[uuid.UUID, int]) -> None:
        """Give back counts that could not be pushed, so the next push carries them."""
        self._counts.update(counts)

    def __len__(self) -> int:
        return len(self._counts)
