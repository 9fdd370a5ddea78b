"""The caller (from the bearer token) and the user domain's services, as FastAPI dependencies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from potluck.errors import UnauthorizedError
from potluck.kit.wiring import provided
from potluck.user.security import InvalidTokenError, TokenService
from potluck.user.service import UserService

UserServiceDep = Annotated[UserService, Depends(provided(UserService))]
TokenServiceDep = Annotated[TokenService, Depends(provided(TokenService))]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def _optional_user_id(
    tokens: TokenServiceDep, token: Annotated[str | None, Depends(_bearer)]
) -> uuid.UUID | None:
    if token is None:
        return None
    try:
        # recipe/fast_path.py makes the same call before routing: a new refusal (a revoked session) belongs in
        # TokenService.claims so that both paths apply it.
        return tokens.verify(token, "access")
    except InvalidTokenError as exc:
        raise UnauthorizedError("the access token is invalid or expired") from exc


async def _required_user_id(user_id: Annotated[uuid.UUID | None, Depends(_optional_user_id)]) -> uuid.UUID:
    if user_id is None:
        raise UnauthorizedError("authentication required")
    return user_id


OptionalUserId = Annotated[uuid.UUID | None, Depends(_optional_user_id)]
CurrentUserId = Annotated[uuid.UUID, Depends(_required_user_id)]
