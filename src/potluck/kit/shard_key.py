"""A stable shard key: blake2b of the id, then jump consistent hash (docs/scaling.md, "The shard key").

The design's `hash(user_id) % NUM_SHARDS` is wrong twice: Python's `hash()` of a str is salted per process
(PYTHONHASHSEED), so two API processes send one user to different shards; and `% N` moves almost every key when
N grows (N/(N+1) of them). blake2b gives every process the same 64-bit key, and jump consistent hash
(Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm", 2014) moves only the keys that must move
to the new shard when N grows to N+1: 1/(N+1) of them on average, and none between old shards.
"""

from __future__ import annotations

import hashlib
import uuid

_MASK64 = (1 << 64) - 1
_LCG = 2862933555777941757  # the paper's 64-bit linear congruential multiplier


def stable_key(value: uuid.UUID | str | bytes) -> int:
    """A 64-bit key that is the same in every process, on every machine, across restarts."""
    if isinstance(value, uuid.UUID):
        raw = value.bytes
    elif isinstance(value, str):
        raw = value.encode()
    else:
        raw = value
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def jump_consistent_hash(key: int, buckets: int) -> int:
    """The bucket in [0, buckets) of a 64-bit key (Lamping & Veach's algorithm, exactly)."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _LCG + 1) & _MASK64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_for(value: uuid.UUID | str | bytes, shards: int) -> int:
    """The shard of an id among `shards`: stable across processes, and minimal movement when shards grow."""
    return jump_consistent_hash(stable_key(value), shards)
