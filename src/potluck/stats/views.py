"""Views counted in process memory. Pure: no I/O; `stats/service.py` moves the counts on."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping


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


def chunks(items: Mapping[uuid.UUID, int], size: int) -> Iterable[list[tuple[uuid.UUID, int]]]:
    """Counts in id order (a fixed lock order for the UPDATEs), `size` at a time."""
    ordered = sorted(items.items())
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def parse_redis_counts(raw: Mapping[bytes | str, bytes | str]) -> dict[uuid.UUID, int]:
    """A Redis hash of recipe id -> count; malformed fields are skipped, counts <= 0 dropped."""
    counts: dict[uuid.UUID, int] = {}
    for field, value in raw.items():
        try:
            name = field.decode() if isinstance(field, bytes) else field
            recipe_id, n = uuid.UUID(name), int(value)
        except ValueError:
            continue
        if n > 0:
            counts[recipe_id] = counts.get(recipe_id, 0) + n
    return counts
