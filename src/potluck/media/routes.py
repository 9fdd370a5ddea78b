"""Recipe image upload and removal under /api/v1, and the embedded default's file server at /media."""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Query, Response, UploadFile, status
from fastapi import Path as Path_
from fastapi.responses import FileResponse, RedirectResponse

from potluck.config import Settings
from potluck.db.dependencies import PrimaryReadSessionDep, WriteSessionDep
from potluck.errors import ForbiddenError, NotFoundError
from potluck.kit.media_keys import CACHE_CONTROL, PRIVATE_CACHE_CONTROL, VARIANTS, is_private_key
from potluck.media.dependencies import MediaServiceDep, Uploader
from potluck.media.processing import ACCEPTED_MEDIA_TYPES
from potluck.media.schemas import RecipeImageRead
from potluck.media.service import MediaService
from potluck.recipe.http import full_document_etag
from potluck.user.dependencies import CurrentUserId, OptionalUserId

router = APIRouter(prefix="/recipes", tags=["media"])
files_router = APIRouter(tags=["media"])

# The upload route's own body limit (BodySizeLimitMiddleware): the image's limit plus room for the multipart
# framing; the image's own bytes are held to media.max_upload_bytes while the part is read.
UPLOAD_PATH = re.compile(r"^/api/v1/recipes/[^/]+/image$")
MULTIPART_SLACK_BYTES = 64 * 1024
_READ_CHUNK = 256 * 1024

_REJECTIONS: dict[int | str, dict[str, Any]] = {
    status.HTTP_403_FORBIDDEN: {"description": "Not the recipe's author"},
    status.HTTP_404_NOT_FOUND: {"description": "No such recipe (or private to someone else)"},
    status.HTTP_412_PRECONDITION_FAILED: {"description": "`If-Match` names another version"},
}


def upload_body_limits(settings: Settings) -> list[tuple[re.Pattern[str], int]]:
    """Paths allowed a larger body than api.max_body_bytes, and how large (for BodySizeLimitMiddleware)."""
    return [(UPLOAD_PATH, settings.media.max_upload_bytes + MULTIPART_SLACK_BYTES)]


async def _read_limited(file: UploadFile, media: MediaService) -> bytes:
    """The part's bytes, counted while read: 413 as soon as they pass the limit, before any decoding."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(_READ_CHUNK):
        size += len(chunk)
        media.check_size(size)
        chunks.append(chunk)
    return b"".join(chunks)


@router.put(
    "/{recipe_id}/image",
    response_model=RecipeImageRead,
    responses={
        **_REJECTIONS,
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "More bytes or pixels than allowed"},
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"description": "Not a JPEG, PNG or WebP image"},
        status.HTTP_422_UNPROCESSABLE_CONTENT: {"description": "Truncated or corrupt image, or no `image` part"},
        status.HTTP_429_TOO_MANY_REQUESTS: {"description": "Past the per-user upload limit (`Retry-After`)"},
    },
)
async def put_recipe_image(
    recipe_id: uuid.UUID,
    image: Annotated[
        UploadFile,
        File(description=f"The image ({', '.join(ACCEPTED_MEDIA_TYPES)}; recognised by its bytes, not its name)."),
    ],
    user_id: Uploader,
    session: WriteSessionDep,
    media: MediaServiceDep,
    if_match: Annotated[str | None, Header(max_length=2000)] = None,
) -> Response:
    """Set the recipe's image (author only): multipart/form-data with the file in the `image` field.

    The image is re-encoded as WebP variants (thumb, medium, large; never upscaled), upright and without metadata.
    The image it replaces is deleted shortly after. `If-Match` with the recipe's ETag gives 412 on a lost update.
    """
    data = await _read_limited(image, media)
    read = await media.replace_image(session, recipe_id, user_id, data, if_match)
    headers = {"ETag": full_document_etag(recipe_id, read.version), "Cache-Control": "no-store"}
    return Response(read.model_dump_json(), media_type="application/json", headers=headers)


@router.delete("/{recipe_id}/image", status_code=status.HTTP_204_NO_CONTENT, responses=_REJECTIONS)
async def delete_recipe_image(
    recipe_id: uuid.UUID,
    user_id: CurrentUserId,
    session: WriteSessionDep,
    media: MediaServiceDep,
    if_match: Annotated[str | None, Header(max_length=2000)] = None,
) -> None:
    """Remove the recipe's image (author only; 204 also when it has none). Its files are deleted shortly after."""
    await media.remove_image(session, recipe_id, user_id, if_match)


@router.get(
    "/{recipe_id}/image/{variant}",
    status_code=status.HTTP_307_TEMPORARY_REDIRECT,
    response_class=RedirectResponse,
    responses={
        status.HTTP_307_TEMPORARY_REDIRECT: {"description": "To the variant: a short-lived signed URL if private"},
        status.HTTP_404_NOT_FOUND: {"description": "No such recipe or image (or the recipe is private to another)"},
    },
)
async def get_recipe_image(
    recipe_id: uuid.UUID,
    variant: Annotated[str, Path_(pattern=f"^({'|'.join(VARIANTS)})$")],
    user_id: OptionalUserId,
    session: PrimaryReadSessionDep,
    media: MediaServiceDep,
) -> RedirectResponse:
    """Where a variant of the recipe's image is: a private recipe's document links here, and its author is sent
    on to a signed URL that works for media.signed_url_seconds (the image has no public URL while private)."""
    url = await media.variant_url(session, recipe_id, user_id, variant)
    # The primary: a replica may still name a key that a visibility change just moved.
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "private, no-store"})


@files_router.api_route("/media/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def media_file(
    key: str,
    media: MediaServiceDep,
    expires: Annotated[str | None, Query(max_length=20)] = None,
    signature: Annotated[str | None, Query(max_length=128)] = None,
) -> FileResponse:
    """A stored variant, when the app stores images on its own disk (the embedded default; S3 has a CDN).

    A private recipe's image only with a valid, unexpired signature (media/signing.py), and never `public`."""
    local = media.local_files
    path = local.path_for(key) if local is not None else None
    if path is None or local is None:
        raise NotFoundError("no such file")
    if is_private_key(key):
        if local.signer is None or not local.signer.verify(key, expires, signature, time.time()):
            raise ForbiddenError("a private image needs a valid, unexpired signed URL")
        cache_control = PRIVATE_CACHE_CONTROL
    else:
        # Keys are content-addressed: the bytes behind a URL never change, so every cache may keep them a year.
        cache_control = CACHE_CONTROL
    headers = {"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=_media_type(key), headers=headers)


def _media_type(key: str) -> str:
    return "image/webp" if key.endswith(".webp") else "application/octet-stream"
