from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from potluck.db.dependencies import ReadSessionDep, WriteSessionDep
from potluck.kit.links import next_link
from potluck.kit.pagination import Page
from potluck.kit.responses import json_response
from potluck.notification.dependencies import NotificationServiceDep
from potluck.notification.schemas import NotificationPage, UnreadCount
from potluck.user.dependencies import CurrentUserId

router = APIRouter(prefix="/notifications", tags=["notifications"])

PRIVATE = "private, no-store"


@router.get("", response_model=NotificationPage)
async def list_notifications(
    user_id: CurrentUserId, session: ReadSessionDep, notifications: NotificationServiceDep, page: Page, request: Request
) -> Response:
    """The caller's notifications, newest first, cursor-paginated."""
    result = await notifications.list_page(session, user_id, page.cursor, page.limit)
    headers = {"Cache-Control": PRIVATE, **next_link(request, result.next_cursor)}
    return json_response(result.model_dump(mode="json"), headers=headers)


@router.get("/unread-count", response_model=UnreadCount)
async def unread_count(
    user_id: CurrentUserId, session: ReadSessionDep, notifications: NotificationServiceDep, response: Response
) -> UnreadCount:
    response.headers["Cache-Control"] = PRIVATE
    return UnreadCount(unread=await notifications.unread_count(session, user_id))


@router.post("/read-all", status_code=status.HTTP_204_NO_CONTENT)
async def read_all(user_id: CurrentUserId, session: WriteSessionDep, notifications: NotificationServiceDep) -> None:
    """Mark every notification of the caller read."""
    await notifications.mark_all_read(session, user_id)


@router.post("/{notification_id}/read", status_code=status.HTTP_204_NO_CONTENT)
async def read_one(
    notification_id: uuid.UUID, user_id: CurrentUserId, session: WriteSessionDep, notifications: NotificationServiceDep
) -> None:
    """Mark one notification read (idempotent); 404 if it is not the caller's."""
    await notifications.mark_read(session, user_id, notification_id)
