from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from potluck.db.base import Base, CreatedAtMixin, IdMixin, utcnow


class User(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "user_account"
    __table_args__ = (
        # Case-insensitive uniqueness, the same on PostgreSQL and SQLite.
        Index("uq_user_account_email_lower", text("lower(email)"), unique=True),
        Index("uq_user_account_username_lower", text("lower(username)"), unique=True),
    )

    email: Mapped[str] = mapped_column(String(254))
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    avatar_image_key: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)
    email_verified_at: Mapped[datetime | None]
    # Declared tastes {"cuisines": [...], "tags": [...]} (schemas.Tastes); None until the user declares any.
    tastes: Mapped[dict[str, list[str]] | None] = mapped_column(JSON(none_as_null=True))


class Follow(Base):
    __tablename__ = "follow"
    __table_args__ = (
        CheckConstraint("follower_id <> followee_id", name="not_self"),
        Index("idx_follow_followee_created", "followee_id", "created_at", "follower_id"),
        Index("idx_follow_follower_created", "follower_id", "created_at", "followee_id"),
    )

    follower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    followee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthSession(IdMixin, CreatedAtMixin, Base):
    """One sign-in: a family of refresh tokens, of which only the newest (`generation`) may be used.

    The id is the session id carried by every access token of the family (`sid`), and the family id of its refresh
    tokens; presenting an older generation is reuse, and revokes the family.
    """

    __tablename__ = "auth_session"
    __table_args__ = (Index("idx_auth_session_user", "user_id", "revoked_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(default=0)
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class AccountToken(IdMixin, CreatedAtMixin, Base):
    """A single-use token sent by email (verify the address, reset the password); only its SHA-256 is stored."""

    __tablename__ = "account_token"
    __table_args__ = (
        Index("uq_account_token_hash", "token_hash", unique=True),
        Index("idx_account_token_user", "user_id", "purpose"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
