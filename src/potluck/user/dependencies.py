"""The caller (from the bearer token, its session not revoked) and the user domain's services, as dependencies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from potluck.errors import UnauthorizedError
from potluck.kit.wiring import provided
from potluck.user.revocation import SessionEndedError, SessionRevocations, live_claims
from potluck.user.security import InvalidTokenError, TokenClaims, TokenService
from potluck.user.service import UserService

UserServiceDep = Annotated[UserService, Depends(provided(UserService))]
TokenServiceDep = Annotated[TokenService, Depends(provided(TokenService))]
SessionRevocationsDep = Annotated[SessionRevocations, Depends(provided(SessionRevocations))]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def _optional_claims(
    tokens: TokenServiceDep, revocations: SessionRevocationsDep, token: Annotated[str | None, Depends(_bearer)]
) -> TokenClaims | None:
    if token is None:
        return None
    try:
        return await live_claims(tokens, revocations, token)
    except SessionEndedError as exc:
        raise UnauthorizedError("the session has ended; sign in again") from exc
    except InvalidTokenError as exc:
        raise UnauthorizedError("the access token is invalid or expired") from exc


async def _required_claims(claims: Annotated[TokenClaims | None, Depends(_optional_claims)]) -> TokenClaims:
    if claims is None:
        raise UnauthorizedError("authentication required")
    return claims


async def _optional_user_id(claims: Annotated[TokenClaims | None, Depends(_optional_claims)]) -> uuid.UUID | None:
    return claims.user_id if claims is not None else None


async def _required_user_id(claims: Annotated[TokenClaims, Depends(_required_claims)]) -> uuid.UUID:
    return claims.user_id


async def _client_address(request: Request) -> str:
    # The peer as the server sees it: behind nginx, uvicorn's --proxy-headers / --forwarded-allow-ips make it the
    # client's (docs/security.md, "Throttles").
    return request.client.host if request.client is not None else "unknown"


OptionalUserId = Annotated[uuid.UUID | None, Depends(_optional_user_id)]
CurrentUserId = Annotated[uuid.UUID, Depends(_required_user_id)]
CurrentClaims = Annotated[TokenClaims, Depends(_required_claims)]
ClientAddress = Annotated[str, Depends(_client_address)]
