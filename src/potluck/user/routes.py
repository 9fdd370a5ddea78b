from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from potluck.cache.dependencies import SurrogateKeysDep
from potluck.db.dependencies import PrimaryReadSessionDep, ReadSessionDep, WriteSessionDep
from potluck.errors import problem
from potluck.kit.links import next_link
from potluck.kit.pagination import Page
from potluck.user.dependencies import ClientAddress, CurrentClaims, CurrentUserId, OptionalUserId, UserServiceDep
from potluck.user.schemas import (
    Accepted,
    AccountDelete,
    FollowPage,
    PasswordForm,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserMe,
    UserRead,
    UserUpdate,
    VerifyEmailRequest,
)

auth_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/users", tags=["users"])


UserAgent = Annotated[str, Header()]


REGISTERED = (
    "Check your email: a link to confirm the address is on its way (or, if the address already has an account, "
    "a note to its owner). You can sign in now."
)
RESET_REQUESTED = "If the address has an account, a link to reset its password is on its way."


@auth_router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={409: {"description": "The username is taken"}, 429: {"description": "Too many registrations"}},
)
async def register(
    body: UserCreate, session: WriteSessionDep, users: UserServiceDep, client: ClientAddress
) -> Accepted:
    """Create an account; a verification link is emailed. The same 202 whether or not the email already has an
    account (its owner is emailed instead). 409 when the username is taken; 429 past the per-address limit."""
    await users.check_registration(client)
    await users.register(session, body)
    return Accepted(detail=REGISTERED)


@auth_router.post("/verify-email", status_code=status.HTTP_204_NO_CONTENT)
async def verify_email(body: VerifyEmailRequest, session: WriteSessionDep, users: UserServiceDep) -> None:
    """Confirm the account's email with the emailed token (single use). 400 for a bad, used or expired token."""
    await users.verify_email(session, body.token)


@auth_router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={429: {"description": "Too many reset requests from this address"}},
)
async def request_password_reset(
    body: PasswordResetRequest, session: WriteSessionDep, users: UserServiceDep, client: ClientAddress
) -> Accepted:
    """Email a password-reset link if the address has an account; the same 202 either way. 429 past the
    per-address limit."""
    await users.request_password_reset(session, body.email, client)
    return Accepted(detail=RESET_REQUESTED)


@auth_router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT)
async def confirm_password_reset(body: PasswordResetConfirm, session: WriteSessionDep, users: UserServiceDep) -> None:
    """Set a new password with the emailed token (single use); every session of the account ends."""
    await users.reset_password(session, body.token, body.password)


@auth_router.post(
    "/token",
    response_model=TokenPair,
    responses={401: {"description": "Wrong credentials"}, 429: {"description": "Sign-ins throttled"}},
)
async def token(
    form: Annotated[PasswordForm, Depends()],
    session: WriteSessionDep,
    users: UserServiceDep,
    response: Response,
    client: ClientAddress,
    user_agent: UserAgent = "",
) -> TokenPair:
    """OAuth2 password flow: `username` (or email) and `password` as a form. 401 on any wrong credential, 429
    while the account or the address is throttled. Starts a session (one refresh-token family)."""
    response.headers["Cache-Control"] = "no-store"
    user = await users.authenticate(session, form.username, form.password, client)
    return await users.start_session(session, user.id, user_agent)


@auth_router.post("/refresh", response_model=TokenPair, responses={401: {"description": "Invalid refresh token"}})
async def refresh(
    body: RefreshRequest,
    session: WriteSessionDep,
    users: UserServiceDep,
    response: Response,
    user_agent: UserAgent = "",
) -> Response | TokenPair:
    """Trade the session's newest refresh token for a new pair; the old one stops working (rotation). Presenting
    a refresh token that was already traded ends the whole session."""
    pair = await users.refresh(session, body.refresh_token, user_agent)
    if pair is None:
        # Returned, not raised: a reuse's revocation must commit with this response.
        return problem(
            401,
            "Unauthorized",
            "the refresh token is invalid, expired or already used",
            slug="unauthorized",
            headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
        )
    response.headers["Cache-Control"] = "no-store"
    return pair


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(claims: CurrentClaims, session: WriteSessionDep, users: UserServiceDep) -> None:
    """End this session: its refresh token and its access tokens stop working."""
    await users.logout(session, claims)


@auth_router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(claims: CurrentClaims, session: WriteSessionDep, users: UserServiceDep) -> None:
    """End every session of this account, this one included."""
    await users.logout_all(session, claims.user_id)


@router.get("/me", response_model=UserMe)
async def get_me(
    user_id: CurrentUserId, session: PrimaryReadSessionDep, users: UserServiceDep, response: Response
) -> UserMe:
    response.headers["Cache-Control"] = "private, no-store"
    return await users.get_me(session, user_id)


@router.patch(
    "/me",
    response_model=UserMe,
    responses={
        403: {"description": "`current_password` is wrong (a password change)"},
        429: {"description": "Too many wrong current passwords"},
    },
)
async def update_me(
    body: UserUpdate, claims: CurrentClaims, session: WriteSessionDep, users: UserServiceDep, client: ClientAddress
) -> UserMe:
    """Change the profile. A new `password` needs `current_password` and ends every other session."""
    return await users.update_me(session, claims, body, client)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"description": "`current_password` is wrong"},
        429: {"description": "Too many wrong current passwords"},
    },
)
async def delete_me(
    body: AccountDelete, claims: CurrentClaims, session: WriteSessionDep, users: UserServiceDep, client: ClientAddress
) -> None:
    """Delete your account (`current_password` in the body): every recipe you wrote, public ones included, your
    ratings, favorites, follows and sessions. Cannot be undone."""
    await users.delete_account(session, claims, body.current_password, client)


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
    response.headers.update(next_link(request, result.next_cursor))
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
    response.headers.update(next_link(request, result.next_cursor))
    return result
