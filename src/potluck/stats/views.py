"""Pure helpers for moving view counts (`recipe/views.py` counts them in memory; `stats/service.py` moves them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from potluck.kit.ids import id_time

# The time of a flush whose id is not a UUIDv7 (never made by ViewStats): fixed, so a retry still conflicts.
NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


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


def flush_time(flush_id: str) -> datetime:
    """A flush's time, from its UUIDv7 id: the same on every retry of the flush, so `stats_flush`'s key
    (flush_id, flushed_at) refuses a retry even though the table is partitioned by that time (migration 0006)."""
    try:
        return id_time(uuid.UUID(flush_id)) or NO_TIME
    except ValueError:
        return NO_TIME
