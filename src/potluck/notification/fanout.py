"""Splitting a fan-out into keyset ranges. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

K = TypeVar("K")


def keyset_ranges(boundaries: Sequence[K]) -> list[tuple[K | None, K | None]]:
    """Ranges (after, upto] covering every key, split at `boundaries` (sorted; every batch_size-th key).

    The first range has no lower bound and the last none above, so keys added after the boundaries were read
    still fall into the last range. No boundaries: one range over everything.
    """
    bounds: list[K | None] = [None, *boundaries, None]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
