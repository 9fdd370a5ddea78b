"""All SQL about users and follows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic

from sqlalchemy import Boolean, Uuid, column, delete, func, or_, select, table, tuple_, update

from potluck.db.base import utcnow
from potluck.db.dialect import dialect_insert, rowcount
from potluck.db.session import AnySession, WriteSession
from potluck.kit.cursor import Cursor
from potluck.user.models import AccountToken, AuthSession, Follow, User

# The recipe table as far as a profile needs it: who wrote what. The recipe domain sits a layer above this one, so its
# model is not imported here; these columns are part of the schema (migration 0001), not of the ORM mapping.
_recipe = table("recipe", column("id", Uuid()), column("author_id", Uuid()), column("is_public", Boolean()))


class UserRepository(Generic[AnySession]):
    def __init__(self, session: AnySession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_login(self, login: str) -> User | None:
        """By username or email, case-insensitively."""
        key = login.strip().lower()
        stmt = select(User).where(or_(func.lower(User.username) == key, func.lower(User.email) == key))
        return (await self.session.execute(stmt)).scalars().first()

    async def get_by_email(self, email: str) -> User | None:
        stmt = select(User).where(func.lower(User.email) == email.strip().lower())
        return (await self.session.execute(stmt)).scalars().first()

    async def taken(self, email: str, username: str) -> tuple[bool, bool]:
        stmt = select(func.lower(User.email), func.lower(User.username)).where(
            or_(func.lower(User.email) == email.lower(), func.lower(User.username) == username.lower())
        )
        rows = (await self.session.execute(stmt)).all()
        return (
            any(r[0] == email.lower() for r in rows),
            any(r[1] == username.lower() for r in rows),
        )

    async def counts(self, user_id: uuid.UUID, *, public_recipes_only: bool) -> tuple[int, int, int]:
        """(followers, following, recipes) in one round trip."""
        recipes = select(func.count()).select_from(_recipe).where(_recipe.c.author_id == user_id)
        if public_recipes_only:
            recipes = recipes.where(_recipe.c.is_public.is_(True))
        stmt = select(
            select(func.count()).select_from(Follow).where(Follow.followee_id == user_id).scalar_subquery(),
            select(func.count()).select_from(Follow).where(Follow.follower_id == user_id).scalar_subquery(),
            recipes.scalar_subquery(),
        )
        row = (await self.session.execute(stmt)).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def authored_recipe_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Every recipe the user wrote (their cached documents embed the author's display name)."""
        rows = await self.session.execute(select(_recipe.c.id).where(_recipe.c.author_id == user_id))
        return list(rows.scalars().all())

    async def follow_partners(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Everyone who follows the user or whom the user follows."""
        followers = select(Follow.follower_id).where(Follow.followee_id == user_id)
        followees = select(Follow.followee_id).where(Follow.follower_id == user_id)
        return list((await self.session.execute(followers.union(followees))).scalars().all())

    async def lock_password_hash(self: UserRepository[WriteSession], user_id: uuid.UUID) -> str | None:
        """The account's password hash as committed now, its row locked until the transaction ends (PostgreSQL; a
        SQLite writer holds the database's write lock already): a password change or reset waits for it."""
        stmt = select(User.password_hash).where(User.id == user_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def replace_password_hash(
        self: UserRepository[WriteSession], user_id: uuid.UUID, old_hash: str, new_hash: str
    ) -> bool:
        """Store `new_hash` only if the account still has `old_hash`: a rehash at sign-in (the same password under
        other parameters) must never undo a password change or reset that committed since it read the hash.
        Whether it was stored."""
        stmt = (
            update(User)
            .where(User.id == user_id, User.password_hash == old_hash)
            .values(password_hash=new_hash)
            .execution_options(synchronize_session=False)
        )
        return rowcount(await self.session.execute(stmt)) == 1

    async def delete(self: UserRepository[WriteSession], user_id: uuid.UUID) -> None:
        """The account row; its follows, sessions, tokens and notifications go with it (ON DELETE CASCADE)."""
        await self.session.execute(delete(User).where(User.id == user_id))

    async def add(self: UserRepository[WriteSession], user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def follow(self: UserRepository[WriteSession], follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
        """True when a new follow was recorded, False when it already existed."""
        stmt = (
            dialect_insert(self.session, Follow.__table__)
            .values(follower_id=follower_id, followee_id=followee_id, created_at=utcnow())
            .on_conflict_do_nothing()
        )
        result = await self.session.execute(stmt)
        return rowcount(result) > 0

    async def unfollow(self: UserRepository[WriteSession], follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(Follow).where(Follow.follower_id == follower_id, Follow.followee_id == followee_id)
        )
        return rowcount(result) > 0

    async def list_follows(
        self, user_id: uuid.UUID, *, direction: str, cursor: Cursor | None, limit: int
    ) -> list[tuple[User, datetime]]:
        """Followers (direction="followers") or followees ("following") of a user, newest first."""
        if direction == "followers":
            mine, theirs = Follow.followee_id, Follow.follower_id
        else:
            mine, theirs = Follow.follower_id, Follow.followee_id
        stmt = (
            select(User, Follow.created_at)
            .join(Follow, theirs == User.id)
            .where(mine == user_id)
            .order_by(Follow.created_at.desc(), theirs.desc())
            .limit(limit)
        )
        if cursor is not None:
            stmt = stmt.where(tuple_(Follow.created_at, theirs) < tuple_(cursor.created_at, cursor.id))
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).all()]


class SessionRepository(Generic[AnySession]):
    """Sign-in sessions (refresh-token families)."""

    def __init__(self, session: AnySession) -> None:
        self.session = session

    async def get(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self.session.get(AuthSession, session_id)

    async def is_revoked(self, session_id: uuid.UUID) -> bool:
        """Revoked, or gone (its user was deleted)."""
        stmt = select(AuthSession.revoked_at).where(AuthSession.id == session_id)
        row = (await self.session.execute(stmt)).first()
        return row is None or row[0] is not None

    async def add(self: SessionRepository[WriteSession], auth_session: AuthSession) -> AuthSession:
        self.session.add(auth_session)
        await self.session.flush()
        return auth_session

    async def rotate(
        self: SessionRepository[WriteSession],
        session_id: uuid.UUID,
        generation: int,
        *,
        now: datetime,
        expires_at: datetime,
        user_agent: str,
    ) -> bool:
        """Move a live session from `generation` to the next one; False when it is not at that generation (or is
        revoked or expired). One conditional UPDATE: of two concurrent rotations of one token, one wins."""
        stmt = (
            update(AuthSession)
            .where(
                AuthSession.id == session_id,
                AuthSession.generation == generation,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .values(generation=generation + 1, last_used_at=now, expires_at=expires_at, user_agent=user_agent)
            .execution_options(synchronize_session=False)
        )
        return rowcount(await self.session.execute(stmt)) == 1

    async def revoke(
        self: SessionRepository[WriteSession],
        user_id: uuid.UUID,
        *,
        reason: str,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """Revoke the user's live sessions (`only` one, or all but `keep`); the ids revoked."""
        stmt = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        if only is not None:
            stmt = stmt.where(AuthSession.id == only)
        if keep is not None:
            stmt = stmt.where(AuthSession.id != keep)
        stmt = stmt.values(revoked_at=utcnow(), revoked_reason=reason).returning(AuthSession.id)
        result = await self.session.execute(stmt.execution_options(synchronize_session=False))
        return list(result.scalars().all())


class AccountTokenRepository(Generic[AnySession]):
    """Emailed single-use tokens, by the SHA-256 of their secret."""

    def __init__(self, session: AnySession) -> None:
        self.session = session

    async def add(self: AccountTokenRepository[WriteSession], token: AccountToken) -> AccountToken:
        self.session.add(token)
        await self.session.flush()
        return token

    async def consume(
        self: AccountTokenRepository[WriteSession], token_hash: str, purpose: str, now: datetime
    ) -> uuid.UUID | None:
        """Mark an unused, unexpired token used; its user, or None. One conditional UPDATE: used once, even when
        presented twice at the same moment."""
        stmt = (
            update(AccountToken)
            .where(
                AccountToken.token_hash == token_hash,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(AccountToken.user_id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def void(self: AccountTokenRepository[WriteSession], user_id: uuid.UUID, purpose: str, now: datetime) -> None:
        """Use up every outstanding token of this purpose (a reset done voids the other reset links)."""
        await self.session.execute(
            update(AccountToken)
            .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
