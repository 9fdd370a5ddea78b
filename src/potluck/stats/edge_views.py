"""Views the edge answered: each edge node's hit log (varnishncsa, one recipe path per line) counted by recipe.

Pure: `count_views` takes the bytes appended since the last shipped offset and returns the counts and how many
bytes it consumed (complete lines only; a line still being written waits for the next run).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter

_RECIPE_PATH = re.compile(rb"^/api/v1/recipes/([0-9a-fA-F-]{36})$")


def count_views(chunk: bytes) -> tuple[dict[uuid.UUID, int], int]:
    """Views per recipe in the complete lines of `chunk`, and the number of bytes those lines take."""
    end = chunk.rfind(b"\n") + 1
    counts: Counter[uuid.UUID] = Counter()
    for line in chunk[:end].splitlines():
        match = _RECIPE_PATH.match(line.strip())
        if match is None:
            continue
        try:
            counts[uuid.UUID(match.group(1).decode())] += 1
        except ValueError:
            continue
    return dict(counts), end
