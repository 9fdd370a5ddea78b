from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Form
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from potluck.kit.inputs import NO_CONTROLS, SafeStr

Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"),
    NO_CONTROLS,
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256), NO_CONTROLS]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), NO_CONTROLS]
Bio = Annotated[str, StringConstraints(max_length=2000), NO_CONTROLS]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    username: Username
    password: Password
    display_name: DisplayName = ""


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    bio: Bio | None = None
    password: Password | None = None


class UserSummary(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str


class UserRead(UserSummary):
    """A public profile."""

    bio: str
    avatar_url: str | None
    created_at: datetime
    follower_count: int
    following_count: int
    recipe_count: int


class UserMe(UserRead):
    """The caller's own profile: adds what only they may see."""

    email: str


class FollowRead(BaseModel):
    user: UserSummary
    followed_at: datetime


class FollowPage(BaseModel):
    items: list[FollowRead]
    next_cursor: str | None


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: SafeStr = Field(min_length=1, max_length=4096)


class PasswordForm(OAuth2PasswordRequestForm):
    """The OAuth2 password form, with the fields held to the same string rules as every other input."""

    def __init__(
        self,
        *,
        username: Annotated[SafeStr, Form(min_length=1, max_length=254)],
        password: Annotated[SafeStr, Form(min_length=1, max_length=256)],
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        scope: Annotated[SafeStr, Form(max_length=1000)] = "",
        client_id: Annotated[SafeStr | None, Form(max_length=200)] = None,
        client_secret: Annotated[SafeStr | None, Form(max_length=200)] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )
