"""Uploaded image → WebP variants. Pure functions over bytes: no I/O, no settings, no clock (unit-tested).

The order is the defence: the byte count is checked first (the caller also stops reading past the limit), then
the header is parsed by a decoder restricted to JPEG, PNG and WebP and its pixel count checked, and only then is
anything decoded. Every way an upload can be wrong ends in an ImageRejectedError (a 4xx problem), never a 500.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from potluck.errors import PotluckError

# Pillow's format names; the decoder tries no other plugin (fewer parsers exposed to untrusted bytes).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPTED_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
_SIXTEEN_BIT = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
WEBP_MAX_SIDE = 16383  # the WebP format's largest width or height


class ImageRejectedError(PotluckError):
    """The upload cannot become an image; the subclass says why (and picks the status)."""

    status_code, title, slug = 422, "Unprocessable Content", "image-rejected"


class ImageTooLargeError(ImageRejectedError):
    status_code, title, slug = 413, "Content Too Large", "image-too-large"


class ImageTooManyPixelsError(ImageRejectedError):
    status_code, title, slug = 413, "Content Too Large", "image-too-many-pixels"


class UnsupportedImageError(ImageRejectedError):
    status_code, title, slug = 415, "Unsupported Media Type", "unsupported-image"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, extra={"accepted": list(ACCEPTED_MEDIA_TYPES)})


class CorruptImageError(ImageRejectedError):
    status_code, title, slug = 422, "Unprocessable Content", "corrupt-image"


class ImageTooSlowError(ImageRejectedError):
    """Processing took longer than its budget (media.processing_timeout_seconds): the image is too costly."""

    status_code, title, slug = 422, "Unprocessable Content", "image-too-costly"


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True, slots=True)
class VariantSpec:
    name: str
    width: int  # the widest it may be; narrower originals keep their width (never upscaled)


@dataclass(frozen=True, slots=True)
class EncodedVariant:
    name: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    source_format: str  # JPEG, PNG or WEBP: what the bytes were, whatever the client said
    source_width: int  # after EXIF orientation
    source_height: int
    digest: str  # hex SHA-256 of the variants (names and bytes): the same output, the same keys
    variants: tuple[EncodedVariant, ...]


def warm_up() -> None:
    """Load Pillow's decoders and the WebP encoder (a media pool process runs this before its first image, so an
    image's time budget is spent on the image, not on imports)."""
    Image.init()
    Image.new("RGB", (1, 1)).save(io.BytesIO(), "WEBP")


def check_size(size: int, limits: ImageLimits) -> None:
    """413 for more bytes than allowed (the caller counts while reading, so it never holds much more)."""
    if size > limits.max_bytes:
        raise ImageTooLargeError(
            f"the image is larger than {limits.max_bytes} bytes", extra={"max_bytes": limits.max_bytes}
        )


def process_image(data: bytes, limits: ImageLimits, variants: Sequence[VariantSpec], quality: int) -> ProcessedImage:
    """Validate `data`, apply its EXIF orientation, drop its metadata, and encode each variant as WebP."""
    check_size(len(data), limits)
    if not data:
        raise UnsupportedImageError("the upload is empty")
    widest = max((spec.width for spec in variants), default=1)
    with _open(data, limits) as image:
        source_format = str(image.format)
        picture = _decode(image, widest)
    encoded = tuple(_encode(_resized(picture, spec.width), spec.name, quality) for spec in variants)
    digest = hashlib.sha256()
    for variant in encoded:
        digest.update(f"{variant.name}:{len(variant.data)}:".encode())
        digest.update(variant.data)
    return ProcessedImage(source_format, picture.width, picture.height, digest.hexdigest(), encoded)


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    """Parse the header only (Image.open is lazy) and check the pixel count before any decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (MAX_IMAGE_PIXELS) fired first: far beyond any sane limit.
        raise _too_many_pixels(limits, None) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError("not a JPEG, PNG or WebP image") from exc
    except Exception as exc:  # a known format whose header is broken: Pillow raises many kinds
        raise CorruptImageError("the image header cannot be read") from exc
    width, height = image.size
    if width < 1 or height < 1 or width * height > limits.max_pixels:
        image.close()
        raise _too_many_pixels(limits, (width, height))
    return image


def _too_many_pixels(limits: ImageLimits, size: tuple[int, int] | None) -> ImageTooManyPixelsError:
    extra: dict[str, object] = {"max_pixels": limits.max_pixels}
    if size is not None:
        extra.update(width=size[0], height=size[1])
    return ImageTooManyPixelsError(f"the image has more than {limits.max_pixels} pixels", extra=extra)


def _decode(image: Image.Image, widest: int) -> Image.Image:
    """The upright picture in sRGB, as RGB (or RGBA when it has real transparency), with no metadata at all."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        if image.format == "JPEG":
            # DCT scaling: decode at 1/2, 1/4 or 1/8 size while still at least as wide as the widest variant.
            image.draft(None, (1, widest) if orientation in _SWAPS_AXES else (widest, 1))
        image.load()
        upright = ImageOps.exif_transpose(image)
        picture = _to_srgb(upright)
    except ImageRejectedError:
        raise
    except Exception as exc:  # truncated data, a broken chunk, a decoder error: Pillow raises many kinds
        raise CorruptImageError("the image data is truncated or corrupt") from exc
    picture.info.clear()  # EXIF, ICC, XMP, comments: nothing of the upload's metadata travels on
    return picture


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _to_srgb(image: Image.Image) -> Image.Image:
    alpha = _has_alpha(image)
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGBA" if image.mode == "RGBA" else "RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # a broken or unusual profile: use the pixels as they are
        if converted is not None:
            image = converted
    if image.mode in _SIXTEEN_BIT:
        # 16-bit greyscale: scale to 8 bits (a plain convert would clip everything above 255 to white).
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    picture = image.convert("RGBA" if alpha else "RGB")
    if alpha and picture.getchannel("A").getextrema() == (255, 255):
        picture = picture.convert("RGB")  # an alpha channel that is opaque everywhere
    return picture


def _resized(picture: Image.Image, max_width: int) -> Image.Image:
    """At most `max_width` wide (and within WebP's height limit), never upscaled, aspect ratio kept."""
    scale = min(max_width / picture.width, WEBP_MAX_SIDE / picture.height)
    if scale >= 1:
        return picture
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(picture: Image.Image, name: str, quality: int) -> EncodedVariant:
    out = io.BytesIO()
    try:
        # No exif/icc_profile/xmp arguments: the WebP encoder then writes none.
        picture.save(out, "WEBP", quality=quality, method=4)
    except (OSError, ValueError) as exc:
        raise CorruptImageError("the image cannot be converted to WebP") from exc
    return EncodedVariant(name, picture.width, picture.height, out.getvalue())
