"""The media domain's services, as FastAPI dependencies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from potluck.kit.throttle import Throttles
from potluck.kit.wiring import provided
from potluck.media.service import MediaService
from potluck.user.dependencies import CurrentUserId

MediaServiceDep = Annotated[MediaService, Depends(provided(MediaService))]
ThrottlesDep = Annotated[Throttles, Depends(provided(Throttles))]


async def _uploader(user_id: CurrentUserId, throttles: ThrottlesDep) -> uuid.UUID:
    """The caller, within their image-upload allowance (image processing is the most CPU a request can cost)."""
    await throttles.enforce(throttles.upload, str(user_id), "too many image uploads; try again later")
    return user_id


Uploader = Annotated[uuid.UUID, Depends(_uploader)]
