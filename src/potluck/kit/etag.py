"""Entity tags from a resource's version: stable digests only, so every process and every restart agrees."""

from __future__ import annotations

import hashlib


def make_etag(resource_id: object, version: int, variant: str = "") -> str:
    digest = hashlib.blake2b(f"{resource_id}|{version}|{variant}".encode(), digest_size=8).hexdigest()
    return f'"{version}-{digest}"'


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def etag_version(tag: str) -> int | None:
    """The version an ETag we issued was made from, or None for a tag we did not issue (or a weak one)."""
    if tag.startswith("W/") or len(tag) < 3 or tag[0] != '"' or tag[-1] != '"':
        return None
    version, _, _ = tag[1:-1].partition("-")
    return int(version) if version.isdigit() and len(version) < 12 else None


def if_match_satisfied(header: str | None, current_version: int) -> bool:
    """RFC 9110 If-Match with strong comparison, judged on the resource's version."""
    if header is None:
        return True
    tags = _tags(header)
    return "*" in tags or any(etag_version(t) == current_version for t in tags)


def if_none_match_hit(header: str | None, current_etag: str) -> bool:
    """RFC 9110 If-None-Match with weak comparison (proxies that gzip weaken our tags)."""
    if header is None:
        return False
    tags = _tags(header)
    return "*" in tags or any(t.removeprefix("W/") == current_etag for t in tags)
