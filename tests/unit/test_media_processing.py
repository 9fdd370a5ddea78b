"""Image processing on its own: images built in memory, no I/O."""

from __future__ import annotations

import io
import uuid
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from potluck.kit.media_keys import (
    DEFAULT_VARIANT,
    VARIANTS,
    image_prefix,
    image_urls,
    recipe_prefix,
    variant_key,
    variant_keys,
)
from potluck.media.processing import (
    WEBP_MAX_SIDE,
    CorruptImageError,
    ImageLimits,
    ImageTooLargeError,
    ImageTooManyPixelsError,
    ProcessedImage,
    UnsupportedImageError,
    VariantSpec,
    process_image,
)

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)
SPECS = (VariantSpec("thumb", 320), VariantSpec("medium", 960), VariantSpec("large", 1920))
RED, BLUE = (220, 20, 20), (20, 20, 220)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def two_halves(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: where the red half ends up shows how the image was turned."""
    image = Image.new(mode, size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1]))
    return image


def run(data: bytes, limits: ImageLimits = LIMITS) -> ProcessedImage:
    return process_image(data, limits, SPECS, quality=80)


def decoded(processed: ProcessedImage, name: str) -> Image.Image:
    variant = next(v for v in processed.variants if v.name == name)
    image = Image.open(io.BytesIO(variant.data))
    image.load()
    assert image.format == "WEBP"
    assert image.size == (variant.width, variant.height)
    return image


def near(pixel: tuple[int, ...], color: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=False))


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height`: a decompression bomb, as far as a decoder can tell."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC
    return bytes(data)


# --- what comes out ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_each_accepted_format_becomes_webp_variants(fmt: str) -> None:
    processed = run(encode(two_halves((2400, 1600)), fmt))
    assert processed.source_format == fmt
    sizes = {v.name: (v.width, v.height) for v in processed.variants}
    assert sizes == {"thumb": (320, 213), "medium": (960, 640), "large": (1920, 1280)}
    for name in sizes:
        assert decoded(processed, name).mode == "RGB"


def test_variants_are_never_upscaled() -> None:
    processed = run(encode(two_halves((500, 300)), "PNG"))
    sizes = {v.name: (v.width, v.height) for v in processed.variants}
    assert sizes == {"thumb": (320, 192), "medium": (500, 300), "large": (500, 300)}


def test_a_large_jpeg_is_decoded_at_reduced_scale_but_no_variant_is_narrower_than_asked() -> None:
    processed = run(encode(two_halves((7680, 4320)), "JPEG", quality=85))
    assert processed.source_width >= 1920  # DCT scaling stops while the picture is still as wide as `large`
    assert processed.source_width < 7680
    assert {v.name: v.width for v in processed.variants} == {"thumb": 320, "medium": 960, "large": 1920}


def test_a_very_tall_image_fits_webp_limits() -> None:
    processed = run(encode(Image.new("RGB", (20, 40_000), RED), "PNG"))
    for variant in processed.variants:
        assert variant.height <= WEBP_MAX_SIDE
        assert variant.width >= 1


@pytest.mark.parametrize(
    ("orientation", "size", "red_at"),
    [
        (1, (320, 160), "left"),
        (3, (320, 160), "right"),  # upside down
        (6, (200, 400), "top"),  # stored on its side: turned 90 degrees clockwise for display
        (8, (200, 400), "bottom"),  # turned 90 degrees counter-clockwise
    ],
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int], red_at: str) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    processed = run(encode(two_halves((400, 200)), "JPEG", quality=95, exif=exif.tobytes()))
    image = decoded(processed, "thumb").convert("RGB")
    assert image.size == size
    w, h = image.size
    probes = {
        "left": (w // 8, h // 2),
        "right": (w - w // 8, h // 2),
        "top": (w // 2, h // 8),
        "bottom": (w // 2, h - h // 8),
    }
    assert near(image.getpixel(probes[red_at]), RED)  # type: ignore[arg-type]
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[red_at]
    assert near(image.getpixel(probes[opposite]), BLUE)  # type: ignore[arg-type]


def test_all_metadata_is_stripped() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Orientation] = 1
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    jpeg = encode(two_halves((640, 480)), "JPEG", exif=exif.tobytes(), icc_profile=icc, comment=b"SecretComment")
    info = PngInfo()
    info.add_text("Author", "SecretAuthor")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>SecretXmp</x:xmpmeta>")
    png = encode(two_halves((640, 480)), "PNG", pnginfo=info, exif=exif.tobytes(), icc_profile=icc)
    for data in (jpeg, png):
        assert b"Secret" in data
        for variant in run(data).variants:
            assert b"Secret" not in variant.data
            assert b"EXIF" not in variant.data
            assert b"ICCP" not in variant.data
            assert b"XMP " not in variant.data
            image = Image.open(io.BytesIO(variant.data))
            assert not image.getexif()
            assert not {"exif", "icc_profile", "xmp", "comment"} & set(image.info)


def test_transparency_is_kept_and_an_opaque_alpha_channel_dropped() -> None:
    transparent = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    transparent.paste((*RED, 255), (0, 0, 200, 400))
    image = decoded(run(encode(transparent, "PNG")), "thumb")
    assert image.mode == "RGBA"
    assert image.getpixel((310, 160))[3] == 0  # type: ignore[index]
    opaque = Image.new("RGBA", (400, 400), (*BLUE, 255))
    assert decoded(run(encode(opaque, "PNG")), "thumb").mode == "RGB"
    palette = two_halves((400, 400)).convert("P")
    assert decoded(run(encode(palette, "PNG")), "thumb").mode == "RGB"


def test_cmyk_and_greyscale_become_rgb() -> None:
    cmyk = two_halves((400, 200)).convert("CMYK")
    image = decoded(run(encode(cmyk, "JPEG", quality=95)), "thumb")
    assert image.mode == "RGB"
    assert near(image.getpixel((50, 100)), RED, tolerance=60)  # type: ignore[arg-type]
    grey16 = Image.new("I;16", (64, 64), 30_000)  # 16-bit: about 46% grey, not white
    image = decoded(run(encode(grey16, "PNG")), "thumb")
    assert 100 <= image.getpixel((10, 10))[0] <= 135  # type: ignore[index]


def test_the_digest_follows_the_output() -> None:
    a = encode(two_halves((800, 600)), "PNG")
    b = encode(two_halves((600, 800)), "PNG")
    assert run(a).digest == run(a).digest
    assert run(a).digest != run(b).digest
    assert len(run(a).digest) == 64


# --- what is refused -----------------------------------------------------------------------------------------


def test_too_many_bytes_is_413() -> None:
    data = encode(two_halves((400, 400)), "PNG")
    with pytest.raises(ImageTooLargeError) as caught:
        run(data, ImageLimits(max_bytes=len(data) - 1, max_pixels=LIMITS.max_pixels))
    assert caught.value.status_code == 413


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (8_000, 8_000),  # 64 MP: over our limit, under Pillow's own
        (10_000, 9_000),  # 90 MP: Pillow warns (DecompressionBombWarning)
        (20_000, 20_000),  # 400 MP: Pillow refuses (DecompressionBombError)
        (1, 2**31 - 1),
    ],
)
def test_a_decompression_bomb_is_refused_from_its_header(width: int, height: int) -> None:
    data = png_header_claiming(width, height)
    assert len(data) < 100
    with pytest.raises(ImageTooManyPixelsError) as caught:
        run(data)
    assert caught.value.status_code == 413
    assert caught.value.extra["max_pixels"] == LIMITS.max_pixels


def test_the_pixel_limit_is_the_configured_one() -> None:
    data = encode(two_halves((200, 100)), "PNG")
    with pytest.raises(ImageTooManyPixelsError):
        run(data, ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=200 * 100 - 1))
    assert run(data, ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=200 * 100)).source_width == 200


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"GIF89a" + b"\x00" * 64,
        encode(two_halves((40, 40)), "GIF"),
        encode(two_halves((40, 40)), "BMP"),
        encode(two_halves((40, 40)), "TIFF"),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["empty", "text", "gif-header", "gif", "bmp", "tiff", "svg"],
)
def test_anything_but_jpeg_png_webp_is_415(data: bytes) -> None:
    with pytest.raises(UnsupportedImageError) as caught:
        run(data)
    assert caught.value.status_code == 415
    assert caught.value.extra["accepted"] == ["image/jpeg", "image/png", "image/webp"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_truncated_image_is_422(fmt: str) -> None:
    data = encode(two_halves((800, 600)), fmt)
    with pytest.raises(CorruptImageError) as caught:
        run(data[: len(data) // 2])
    assert caught.value.status_code == 422


def test_a_corrupt_body_after_a_valid_header_is_422() -> None:
    data = bytearray(encode(two_halves((800, 600)), "PNG"))
    data[60:200] = b"\xff" * 140  # inside the compressed pixel data
    with pytest.raises(CorruptImageError):
        run(bytes(data))


# --- keys ----------------------------------------------------------------------------------------------------


def test_keys_and_urls() -> None:
    recipe_id = uuid.UUID("0190a0e0-0000-7000-8000-000000000001")
    keys = variant_keys(recipe_id, "ab" * 32)
    assert keys[DEFAULT_VARIANT] == f"recipes/{recipe_id}/abababababababab/medium.webp"
    assert all(k.startswith(recipe_prefix(recipe_id)) for k in keys.values())
    urls = image_urls("https://cdn.example.com/", keys["thumb"])
    assert urls == {v: f"https://cdn.example.com/recipes/{recipe_id}/abababababababab/{v}.webp" for v in VARIANTS}
    assert image_urls("/media", None) is None
    assert image_urls("/media", "avatars/legacy.jpg") is None  # a key this module did not make


@given(st.uuids(), st.text(alphabet="0123456789abcdef", min_size=16, max_size=64), st.sampled_from(VARIANTS))
def test_every_variant_key_names_its_image_prefix(recipe_id: uuid.UUID, digest: str, variant: str) -> None:
    key = variant_key(recipe_id, digest, variant)
    prefix = image_prefix(key)
    assert prefix is not None
    assert prefix == f"{recipe_prefix(recipe_id)}{digest[:16]}/"
    assert key == f"{prefix}{variant}.webp"
