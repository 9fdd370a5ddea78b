"""Pure helpers for moving view counts (`recipe/views.py` counts them in memory; `stats/service.py` moves them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping


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
