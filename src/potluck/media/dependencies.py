"""The media domain's services, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from potluck.kit.wiring import provided
from potluck.media.service import MediaService

MediaServiceDep = Annotated[MediaService, Depends(provided(MediaService))]
