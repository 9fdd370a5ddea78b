from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from potluck.cache.dependencies import SurrogateKeysDep
from potluck.db.dependencies import PrimaryReadSessionDep, ReadSessionDep, WriteSessionDep
from potluck.kit.links import next_link
from potluck.kit.pagination import Page
from potluck.user.dependencies import CurrentUserId, OptionalUserId, UserServiceDep
from potluck.user.schemas import (
    FollowPage,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserMe,
    UserRead,
    UserUpdate,
)

auth_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/users", tags=["users"])


@auth_router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserMe)
async def register(body: UserCreate, session: WriteSessionDep, users: UserServiceDep) -> UserMe:
    """Create an account. 409 when the email or username is taken."""
    user = await users.register(session, body)
    return await users.get_me(session, user.id)


@auth_router.post("/token", response_model=TokenPair)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: PrimaryReadSessionDep,
    users: UserServiceDep,
    response: Response,
) -> TokenPair:
    """OAuth2 password flow: `username` (or email) and `password` as a form. 401 on any wrong credential."""
    response.headers["Cache-Control"] = "no-store"
    user = await users.authenticate(session, form.username, form.password)
    return users.issue_tokens(user.id)


@auth_router.post("/refresh", response_model=TokenPair)
async def refresh(
    body: RefreshRequest, session: PrimaryReadSessionDep, users: UserServiceDep, response: Response
) -> TokenPair:
    """Trade a refresh token for a new token pair."""
    response.headers["Cache-Control"] = "no-store"
    return await users.refresh(session, body.refresh_token)


@router.get("/me", response_model=UserMe)
async def get_me(
    user_id: CurrentUserId, session: PrimaryReadSessionDep, users: UserServiceDep, response: Response
) -> UserMe:
    response.headers["Cache-Control"] = "private, no-store"
    return await users.get_me(session, user_id)


@router.patch("/me", response_model=UserMe)
async def update_me(
    body: UserUpdate, user_id: CurrentUserId, session: WriteSessionDep, users: UserServiceDep
) -> UserMe:
    return await users.update_me(session, user_id, body)


@router.get("/{user_id}", response_model=UserRead)
async def get_user(
    user_id: uuid.UUID, viewer: OptionalUserId, users: UserServiceDep, edge: SurrogateKeysDep
) -> Response:
    """A user's public profile (your own, with private counts, when it is you)."""
    payload = await users.get_profile(user_id, viewer)
    cache_control = (
        "public, max-age=60, s-maxage=120, stale-while-revalidate=60" if viewer is None else "private, no-cache"
    )
    headers = {"Cache-Control": cache_control, "Vary": "Authorization"}
    if viewer is None:
        headers.update(edge.profile(user_id))
    return Response(payload, media_type="application/json", headers=headers)


@router.put("/{user_id}/follow", status_code=status.HTTP_204_NO_CONTENT)
async def follow(user_id: uuid.UUID, me: CurrentUserId, session: WriteSessionDep, users: UserServiceDep) -> None:
    """Follow a user (idempotent)."""
    await users.follow(session, me, user_id)


@router.delete("/{user_id}/follow", status_code=status.HTTP_204_NO_CONTENT)
async def unfollow(user_id: uuid.UUID, me: CurrentUserId, session: WriteSessionDep, users: UserServiceDep) -> None:
    """Stop following a user (idempotent)."""
    await users.unfollow(session, me, user_id)


@router.get("/{user_id}/followers", response_model=FollowPage)
async def followers(
    user_id: uuid.UUID,
    page: Page,
    session: ReadSessionDep,
    users: UserServiceDep,
    request: Request,
    response: Response,
) -> FollowPage:
    result = await users.list_follows(session, user_id, "followers", page.cursor, page.limit)
    response.headers.update(next_link(request.url, result.next_cursor))
    return result


@router.get("/{user_id}/following", response_model=FollowPage)
async def following(
    user_id: uuid.UUID,
    page: Page,
    session: ReadSessionDep,
    users: UserServiceDep,
    request: Request,
    response: Response,
) -> FollowPage:
    result = await users.list_follows(session, user_id, "following", page.cursor, page.limit)
    response.headers.update(next_link(request.url, result.next_cursor))
    return result
