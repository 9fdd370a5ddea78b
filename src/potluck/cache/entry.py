"""What a cache key holds, encoded as bytes: a lease, a value, or a negative entry. Pure functions.

    lease     b"L|" + token + b"|" + deadline_ms         (no Redis TTL: the deadline is inside, see cache.conf)
    value     b"V" + fill_id(8) + expires_at_ms(8) + delta_ms(4) + meta_len(2) + meta + payload
    negative  b"N" + fill_id(8) + expires_at_ms(8) + delta_ms(4) + meta_len(2)

`fill_id` identifies one fill, so an early refresh can replace exactly the value it saw (compare-and-set).
`delta_ms` is how long the fill took: the time a hit saves, and the weight of XFetch's early refresh.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

LEASE_PREFIX = b"L|"
_HEADER = struct.Struct(">8sqiH")
HEADER_SIZE = 1 + _HEADER.size
FILL_ID_PREFIX_SIZE = 9


@dataclass(frozen=True, slots=True)
class Entry:
    """A value or a negative entry (payload None) as stored."""

    fill_id: bytes
    expires_at_ms: int
    delta_ms: int
    meta: bytes
    payload: bytes | None

    @property
    def identity(self) -> bytes:
        """The prefix that a refresh compares against (kind + fill id)."""
        return (b"N" if self.payload is None else b"V") + self.fill_id


def new_token() -> bytes:
    return os.urandom(8).hex().encode()


def lease_prefix(token: bytes) -> bytes:
    return LEASE_PREFIX + token + b"|"


def is_lease(raw: bytes) -> bool:
    return raw.startswith(LEASE_PREFIX)


def encode(payload: bytes | None, meta: bytes, expires_at_ms: int, delta_ms: int) -> bytes:
    kind = b"N" if payload is None else b"V"
    header = _HEADER.pack(os.urandom(8), expires_at_ms, max(0, min(delta_ms, 2**31 - 1)), len(meta))
    return kind + header + meta + (payload or b"")


def decode(raw: bytes) -> Entry | None:
    """The entry in `raw`, or None for a lease or anything unreadable (treated as a miss)."""
    if len(raw) < HEADER_SIZE or raw[:1] not in (b"V", b"N"):
        return None
    fill_id, expires_at_ms, delta_ms, meta_len = _HEADER.unpack_from(raw, 1)
    meta_end = HEADER_SIZE + meta_len
    if len(raw) < meta_end:
        return None
    payload = raw[meta_end:] if raw[:1] == b"V" else None
    return Entry(fill_id, expires_at_ms, delta_ms, raw[HEADER_SIZE:meta_end], payload)


def should_refresh_early(now_ms: int, entry: Entry, beta: float, rand: float) -> bool:
    """XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh before expiry with a probability that
    grows as expiry nears and with the cost of recomputing, so a hot key is refreshed once, just in time.

    `rand` is uniform in (0, 1]; the test is now - delta * beta * ln(rand) >= expiry.
    """
    if entry.delta_ms <= 0 or rand <= 0.0:
        return now_ms >= entry.expires_at_ms
    return now_ms - entry.delta_ms * beta * math.log(rand) >= entry.expires_at_ms
