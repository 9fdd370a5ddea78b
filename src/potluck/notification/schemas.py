from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from potluck.user.schemas import UserSummary


class NotificationRecipe(BaseModel):
    id: uuid.UUID
    title: str


class NotificationRead(BaseModel):
    id: uuid.UUID
    kind: str
    actor: UserSummary
    recipe: NotificationRecipe | None
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationRead]
    next_cursor: str | None


class UnreadCount(BaseModel):
    unread: int
