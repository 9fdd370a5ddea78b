"""Where an image's variants live and the URLs they are served at. Pure string arithmetic.

A recipe's image is a set of variants under one content-addressed prefix::

    recipes/{recipe_id}/{digest}/{variant}.webp      digest: the first 16 hex digits of a SHA-256 of the variants

The recipe row's `image_key` names the default variant; the others are found by swapping the file name. A key's
bytes never change (another image gets another digest), so every key may be cached forever.
"""

from __future__ import annotations

import re
import uuid

VARIANTS = ("thumb", "medium", "large")
DEFAULT_VARIANT = "medium"
EXTENSION = "webp"
CONTENT_TYPE = "image/webp"
# Immutable keys: a year in every cache, and no revalidation (RFC 8246).
CACHE_CONTROL = "public, max-age=31536000, immutable"
DIGEST_LENGTH = 16

_IMAGE_KEY = re.compile(
    rf"^recipes/(?P<recipe>[0-9a-f-]{{36}})/(?P<digest>[0-9a-f]{{{DIGEST_LENGTH}}})/(?P<variant>[a-z]+)\.{EXTENSION}$"
)


def recipe_prefix(recipe_id: uuid.UUID) -> str:
    """Everything stored for one recipe's images (every upload, current or not) is under this prefix."""
    return f"recipes/{recipe_id}/"


def variant_key(recipe_id: uuid.UUID, digest: str, variant: str) -> str:
    """`digest` is a hex SHA-256 (or any hex string at least DIGEST_LENGTH long); its prefix names the image."""
    return f"{recipe_prefix(recipe_id)}{digest[:DIGEST_LENGTH]}/{variant}.{EXTENSION}"


def variant_keys(recipe_id: uuid.UUID, digest: str) -> dict[str, str]:
    return {variant: variant_key(recipe_id, digest, variant) for variant in VARIANTS}


def is_image_key(key: str) -> bool:
    """A key this module makes (what the /media route may serve): nothing else under the media root."""
    return _IMAGE_KEY.match(key) is not None


def image_prefix(image_key: str) -> str | None:
    """`recipes/{id}/{digest}/` for a key this module made, else None."""
    match = _IMAGE_KEY.match(image_key)
    return image_key[: match.start("variant")] if match else None


def public_url(base_url: str, key: str) -> str:
    return f"{base_url.rstrip('/')}/{key}"


def media_url(base_url: str, key: str | None) -> str | None:
    """The public URL of a stored file (an avatar, an image variant), or None without one."""
    return public_url(base_url, key) if key else None


def image_urls(base_url: str, image_key: str | None) -> dict[str, str] | None:
    """The URL of every variant of the image `image_key` names; None without an image or for a foreign key."""
    prefix = image_prefix(image_key) if image_key else None
    if prefix is None:
        return None
    return {variant: public_url(base_url, f"{prefix}{variant}.{EXTENSION}") for variant in VARIANTS}
