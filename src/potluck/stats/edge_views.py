"""What the edge answered: each edge node's request log (varnishncsa, `<handling> <method> <path>` per line).

Pure: `count_edge_log` takes the bytes appended since the last shipped offset and returns the recipe views among
them (GET hits of a recipe document: the API never saw those), the requests per route family and cache handling
(the edge hit ratio by family), and how many bytes it consumed (complete lines only; a line still being written
waits for the next run).
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

# varnishncsa -F '%{Varnish:handling}x %m %U' (potluck_ops/varnish.py): hit, miss, pass, pipe or synth.
_LINE = re.compile(rb"^(hit|miss|pass|pipe|synth) ([A-Z]+) (/\S*)$")
_RECIPE_PATH = re.compile(rb"^/api/v1/recipes/([0-9a-fA-F-]{36})$")
# The route families of cacheable reads (what carries surrogate keys, cache/surrogate.py); the rest is "other".
_FAMILIES = (
    (_RECIPE_PATH, "recipe_detail"),
    (re.compile(rb"^/api/v1/recipes/?$"), "recipe_list"),
    (re.compile(rb"^/api/v1/search(/trending)?/?$"), "search"),
    (re.compile(rb"^/api/v1/trending/?$"), "trending"),
    (re.compile(rb"^/api/v1/users/[0-9a-fA-F-]{36}$"), "profile"),
)
FAMILIES = (*(name for _, name in _FAMILIES), "other")
HANDLINGS = ("hit", "miss", "pass", "pipe", "synth")


def route_family(path: bytes) -> str:
    for pattern, name in _FAMILIES:
        if pattern.match(path):
            return name
    return "other"


class Shipped(Protocol):
    """What a log parser returns: at least how many bytes of complete lines it consumed."""

    @property
    def consumed(self) -> int: ...


@dataclass
class EdgeLogCounts:
    views: dict[uuid.UUID, int] = field(default_factory=dict)
    # (route family, handling) -> requests
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    consumed: int = 0


def count_edge_log(chunk: bytes) -> EdgeLogCounts:
    """Views per recipe and requests per (family, handling) in the complete lines of `chunk`."""
    end = chunk.rfind(b"\n") + 1
    views: Counter[uuid.UUID] = Counter()
    counts = EdgeLogCounts(consumed=end)
    for line in chunk[:end].splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        handling, method, path = match.group(1).decode(), match.group(2), match.group(3)
        counts.requests[route_family(path), handling] += 1
        recipe = _RECIPE_PATH.match(path)
        if handling != "hit" or method != b"GET" or recipe is None:
            continue
        try:
            views[uuid.UUID(recipe.group(1).decode())] += 1
        except ValueError:
            continue
    counts.views = dict(views)
    return counts


# logrotate's first generation: where a rotated log is finished from the position shipped last.
ROTATED_SUFFIX = ".1"


@dataclass(frozen=True)
class LogPosition:
    """How far a log has been shipped: the file (its inode) and the byte offset in it."""

    inode: int | None
    offset: int

    def encode(self) -> str:
        return f"{self.inode or 0}:{self.offset}"

    @classmethod
    def decode(cls, raw: bytes | str | None) -> LogPosition:
        text = raw.decode() if isinstance(raw, bytes) else (raw or "")
        inode, _, offset = text.rpartition(":")
        try:
            return cls(int(inode) or None if inode else None, int(offset or 0))
        except ValueError:
            return cls(None, 0)


# A renamed log's writers reopen the path on a signal, each in its own time (nginx's workers after their master):
# a line can still land in `.1` just after the rename. The shipper leaves `.1` once it has been quiet this long.
ROTATED_QUIET_SECONDS = 2.0


def where_to_read(
    shipped: LogPosition, current: os.stat_result | None, rotated: os.stat_result | None, now: float
) -> tuple[bool, LogPosition] | None:
    """(read the rotated file?, from where), or None when there is nothing to read.

    A log renamed away (`path.1`, then its writers reopen `path` on a signal) is finished from the shipped offset
    first, then the new file starts at 0, once `.1` has had no write for ROTATED_QUIET_SECONDS (`now`: the clock
    of the files' mtimes); a log truncated in place starts again at 0."""
    if current is not None and shipped.inode in (None, current.st_ino):
        offset = shipped.offset if shipped.offset <= current.st_size else 0
        return False, LogPosition(current.st_ino, offset)
    if rotated is not None and rotated.st_ino == shipped.inode:
        if rotated.st_size > shipped.offset:
            return True, shipped
        if now - rotated.st_mtime < ROTATED_QUIET_SECONDS:
            return None  # finished for now, but a writer that has not reopened yet may still add to it
    if current is None:
        return None
    return False, LogPosition(current.st_ino, 0)


def rotation_due(
    shipped: LogPosition, current: os.stat_result | None, age_seconds: float, max_bytes: int, max_seconds: float
) -> bool:
    """Rotate the log whose file is `current` now? Only once the shipper has finished the previous generation (its
    position is on `current`): renaming again before would replace a `.1` not yet shipped. Then when it holds
    `max_bytes` or more, or something at all after `max_seconds` (a bound of 0 is off)."""
    if current is None or current.st_size == 0 or shipped.inode != current.st_ino:
        return False
    return bool(max_bytes and current.st_size >= max_bytes) or bool(max_seconds and age_seconds >= max_seconds)


# nginx's error log when limit_req / limit_conn refuse a request (at limit_*_log_level warn; delays, one level
# lower, are not written at warn): `limiting requests, excess: 12.345 by zone "per_address", client: ...`.
_REJECTED = re.compile(rb'limiting (?:requests|connections)(?:, excess: [0-9.]+)? by zone "([A-Za-z0-9_]+)"')
# The gateway's zones (deploy/nginx/nginx.conf.template): per client address, per token, connections per address.
LIMITS = ("per_address", "per_token", "conn_per_address")


@dataclass
class Rejections:
    by_limit: Counter[str] = field(default_factory=Counter)
    consumed: int = 0


def count_rejections(chunk: bytes) -> Rejections:
    """The requests each limit refused, in the complete lines of a gateway error log chunk."""
    end = chunk.rfind(b"\n") + 1
    counts = Rejections(consumed=end)
    for line in chunk[:end].splitlines():
        match = _REJECTED.search(line)
        if match is not None:
            counts.by_limit[match.group(1).decode()] += 1
    return counts
