"""Digests that are the same in every process and across restarts (never Python's salted hash())."""

from __future__ import annotations

import hashlib

import orjson


def stable_digest(value: object, size: int = 16) -> str:
    """blake2b of `value`'s canonical JSON (sorted keys): PYTHONHASHSEED does not touch it."""
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=size).hexdigest()
