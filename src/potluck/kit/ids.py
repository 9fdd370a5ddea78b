"""Time-ordered identifiers, so that ids and cursors sort by creation."""

from __future__ import annotations

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    """A UUIDv7: 48 bits of milliseconds, then randomness; monotonic within a process."""
    return compat.uuid7()
