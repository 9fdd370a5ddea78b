"""Where an image's variants live and the URLs they are served at. Pure string arithmetic.

A recipe's image is a set of variants under one content-addressed prefix::

    recipes/{recipe_id}/{digest}/{variant}.webp      digest: the first 16 hex digits of a SHA-256 of the variants

The recipe row's `image_key` names the default variant; the others are found by swapping the file name. A key's
bytes never change (another image gets another digest), so every key may be cached forever.

A private recipe's image lives under `private/recipes/{recipe_id}/{token}/`: no public URL reaches that prefix (the
bucket policy grants anonymous reads of `recipes/*` only; the app's /media wants a signature there), its document
links the API's `/api/v1/recipes/{id}/image/{variant}`, which checks the viewer and redirects to a short-lived
signed URL. When the recipe changes visibility its variants are copied under a fresh random token (re-keyed) and
the old ones deleted, so a URL learned before never works after.
"""

from __future__ import annotations

import re
import uuid

VARIANTS = ("thumb", "medium", "large")
DEFAULT_VARIANT = "medium"
EXTENSION = "webp"
CONTENT_TYPE = "image/webp"
# Immutable keys: a year in every cache, and no revalidation (RFC 8246). Public images only.
CACHE_CONTROL = "public, max-age=31536000, immutable"
# A private image: only the browser that fetched it keeps it, briefly (never a shared cache).
PRIVATE_CACHE_CONTROL = "private, max-age=300"
DIGEST_LENGTH = 16
PRIVATE_ROOT = "private/"
# Where a private image's variants are linked from (the API checks the viewer, then redirects to a signed URL).
PRIVATE_IMAGE_PATH = "/api/v1/recipes/{recipe_id}/image/{variant}"

_IMAGE_KEY = re.compile(
    rf"^(?P<private>{PRIVATE_ROOT})?recipes/(?P<recipe>[0-9a-f-]{{36}})/(?P<digest>[0-9a-f]{{{DIGEST_LENGTH}}})/"
    rf"(?P<variant>[a-z]+)\.{EXTENSION}$"
)


def recipe_prefix(recipe_id: uuid.UUID, *, private: bool = False) -> str:
    """Everything stored for one recipe's public (or private) images, current or not, is under this prefix."""
    return f"{PRIVATE_ROOT if private else ''}recipes/{recipe_id}/"


def variant_key(recipe_id: uuid.UUID, digest: str, variant: str, *, private: bool = False) -> str:
    """`digest` is a hex SHA-256 (or any hex string at least DIGEST_LENGTH long); its prefix names the image."""
    return f"{recipe_prefix(recipe_id, private=private)}{digest[:DIGEST_LENGTH]}/{variant}.{EXTENSION}"


def variant_keys(recipe_id: uuid.UUID, digest: str, *, private: bool = False) -> dict[str, str]:
    return {variant: variant_key(recipe_id, digest, variant, private=private) for variant in VARIANTS}


def is_private_key(key: str) -> bool:
    """An image key under the private root: served only through signed URLs."""
    match = _IMAGE_KEY.match(key)
    return match is not None and match.group("private") is not None


def rekeyed(image_key: str, token: str, *, private: bool) -> dict[str, str]:
    """Every variant of `image_key`'s image (which must be one this module made) moved under a new token and root:
    {old key: new key}."""
    match = _IMAGE_KEY.match(image_key)
    if match is None:
        raise ValueError(f"not an image key: {image_key!r}")
    recipe_id = uuid.UUID(match.group("recipe"))
    prefix = image_key[: match.start("variant")]
    new = variant_keys(recipe_id, token, private=private)
    return {f"{prefix}{variant}.{EXTENSION}": new[variant] for variant in VARIANTS}


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
    """The URL of every variant of the image `image_key` names; None without an image or for a foreign key.

    A private image's URLs are the API's, which redirect a viewer who may see the recipe to a signed URL."""
    match = _IMAGE_KEY.match(image_key) if image_key else None
    if match is None or image_key is None:
        return None
    if match.group("private"):
        recipe_id = match.group("recipe")
        return {variant: PRIVATE_IMAGE_PATH.format(recipe_id=recipe_id, variant=variant) for variant in VARIANTS}
    prefix = image_key[: match.start("variant")]
    return {variant: public_url(base_url, f"{prefix}{variant}.{EXTENSION}") for variant in VARIANTS}


def default_image_url(base_url: str, image_key: str | None) -> str | None:
    """The URL a document gives as `image_url`: the default variant's (the API's for a private image)."""
    urls = image_urls(base_url, image_key)
    return urls[DEFAULT_VARIANT] if urls else None
