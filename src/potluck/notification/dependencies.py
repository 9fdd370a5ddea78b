"""The notification domain's services, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from potluck.kit.wiring import provided
from potluck.notification.service import NotificationService

NotificationServiceDep = Annotated[NotificationService, Depends(provided(NotificationService))]
