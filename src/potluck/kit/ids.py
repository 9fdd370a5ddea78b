"""Time-ordered identifiers, so that ids and cursors sort by creation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from uuid_utils import compat


def new_id() -> uuid.UUID:
    """A UUIDv7: 48 bits of milliseconds, then randomness; monotonic within a process."""
    return compat.uuid7()


def id_time(value: uuid.UUID) -> datetime | None:
    """The millisecond a UUIDv7 was made (its first 48 bits); None for any other version."""
    if value.version != 7:
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)
