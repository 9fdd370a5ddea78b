from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Form
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationInfo, field_validator

from potluck.kit.inputs import NO_CONTROLS, SafeStr
from potluck.user.passwords import MAX_LENGTH, MIN_LENGTH, password_problem

Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"),
    NO_CONTROLS,
]
Password = Annotated[str, StringConstraints(min_length=MIN_LENGTH, max_length=MAX_LENGTH), NO_CONTROLS]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), NO_CONTROLS]
Bio = Annotated[str, StringConstraints(max_length=2000), NO_CONTROLS]
# A cuisine or tag name as recipes spell them (recipe/schemas.py: Cuisine, TagName), lower-cased.
TasteName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50, pattern=r"^[^\W_][\w '&-]*$"),
    NO_CONTROLS,
]
MAX_DECLARED_CUISINES = 10
MAX_DECLARED_TAGS = 20


class Tastes(BaseModel):
    """Cuisines and tags the user says they like: what their recommendations start from before any favorite."""

    model_config = ConfigDict(extra="forbid")

    cuisines: Annotated[list[TasteName], Field(max_length=MAX_DECLARED_CUISINES)] = []
    tags: Annotated[list[TasteName], Field(max_length=MAX_DECLARED_TAGS)] = []

    @field_validator("cuisines", "tags")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    username: Username
    password: Password
    display_name: DisplayName = ""
    tastes: Tastes | None = None

    @field_validator("password")
    @classmethod
    def _strong(cls, value: str, info: ValidationInfo) -> str:
        inputs = tuple(str(info.data[f]) for f in ("username", "email") if f in info.data)
        if (problem := password_problem(value, user_inputs=inputs)) is not None:
            raise ValueError(problem)
        return value


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    bio: Bio | None = None
    tastes: Tastes | None = None
    password: Password | None = None
    # Required with `password`: a stolen access token alone cannot take the account over.
    current_password: SafeStr | None = Field(default=None, max_length=MAX_LENGTH)

    @field_validator("password")
    @classmethod
    def _strong(cls, value: str | None) -> str | None:
        if value is not None and (problem := password_problem(value)) is not None:
            raise ValueError(problem)
        return value


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
    email_verified: bool = False
    tastes: Tastes = Field(default_factory=Tastes)


class Accepted(BaseModel):
    """The same answer whatever the outcome (registration, password reset): it reveals no account."""

    detail: str


class VerifyEmailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SafeStr = Field(min_length=1, max_length=200)


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)


class PasswordResetConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SafeStr = Field(min_length=1, max_length=200)
    password: Password

    @field_validator("password")
    @classmethod
    def _strong(cls, value: str) -> str:
        if (problem := password_problem(value)) is not None:
            raise ValueError(problem)
        return value


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
        password: Annotated[SafeStr, Form(min_length=1, max_length=MAX_LENGTH)],
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


class AccountDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: SafeStr = Field(min_length=1, max_length=MAX_LENGTH)
