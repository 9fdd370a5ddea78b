"""Private image keys, their re-keying, and the local signed URLs (pure)."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

from potluck.kit.media_keys import (
    PRIVATE_IMAGE_PATH,
    VARIANTS,
    default_image_url,
    image_urls,
    is_image_key,
    is_private_key,
    rekeyed,
    variant_key,
)
from potluck.media.signing import UrlSigner

RECIPE = uuid.UUID("01900000-0000-7000-8000-000000000001")


def test_private_keys_are_image_keys_whose_urls_are_the_api_s() -> None:
    key = variant_key(RECIPE, "ab" * 32, "medium", private=True)
    assert key == f"private/recipes/{RECIPE}/{'ab' * 8}/medium.webp"
    assert is_image_key(key)
    assert is_private_key(key)
    assert not is_private_key(variant_key(RECIPE, "ab" * 32, "medium"))
    urls = image_urls("https://cdn.example.com", key)
    assert urls == {v: PRIVATE_IMAGE_PATH.format(recipe_id=RECIPE, variant=v) for v in VARIANTS}
    assert default_image_url("https://cdn.example.com", key) == f"/api/v1/recipes/{RECIPE}/image/medium"
    public = variant_key(RECIPE, "cd" * 32, "thumb")
    assert (
        default_image_url("https://cdn.example.com", public)
        == f"https://cdn.example.com/recipes/{RECIPE}/{'cd' * 8}/medium.webp"
    )


def test_rekeying_moves_every_variant_to_the_other_root_under_the_new_token() -> None:
    public = variant_key(RECIPE, "ab" * 32, "medium")
    moves = rekeyed(public, "0123456789abcdef", private=True)
    assert set(moves) == {variant_key(RECIPE, "ab" * 32, v) for v in VARIANTS}
    assert set(moves.values()) == {variant_key(RECIPE, "0123456789abcdef", v, private=True) for v in VARIANTS}
    back = rekeyed(moves[public], "fedcba9876543210", private=False)
    assert all(not is_private_key(k) for k in back.values())


def test_a_signature_covers_the_key_and_the_expiry() -> None:
    signer = UrlSigner(b"k" * 32, "/media")
    key = variant_key(RECIPE, "ab" * 32, "thumb", private=True)
    url = signer.url(key, 2_000)
    assert urlsplit(url).path == f"/media/{key}"
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert signer.verify(key, query["expires"], query["signature"], now=1_999)
    assert not signer.verify(key, query["expires"], query["signature"], now=2_000)  # expired
    assert not signer.verify(key, "2001", query["signature"], now=1_000)  # another expiry
    other = variant_key(RECIPE, "ab" * 32, "large", private=True)
    assert not signer.verify(other, query["expires"], query["signature"], now=1_000)  # another key
    assert not UrlSigner(b"x" * 32, "/media").verify(key, query["expires"], query["signature"], now=1_000)
    assert not signer.verify(key, None, query["signature"], now=1_000)
    assert not signer.verify(key, "-5", query["signature"], now=1_000)
    assert not signer.verify(key, query["expires"], "0" * 64, now=1_000)
