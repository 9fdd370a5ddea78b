"""Users: registration, login, profiles, follows. Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid

import anyio.to_thread
from sqlalchemy.exc import IntegrityError

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import USER_PROFILE
from potluck.cache.keys import recipe_key, recommend_key, user_key
from potluck.db.base import utcnow
from potluck.db.engine import Database
from potluck.db.session import ReadSession, WriteSession
from potluck.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError
from potluck.events.outbox import Outbox
from potluck.events.topics import USER_FOLLOWED
from potluck.kit.cursor import Cursor, encode_cursor
from potluck.kit.media_keys import media_url
from potluck.user.models import User
from potluck.user.repository import UserRepository
from potluck.user.schemas import (
    FollowPage,
    FollowRead,
    TokenPair,
    UserCreate,
    UserMe,
    UserRead,
    UserSummary,
    UserUpdate,
)
from potluck.user.security import InvalidTokenError, PasswordHasher, TokenService


class UserService:
    def __init__(
        self,
        database: Database,
        cache: Cache,
        hasher: PasswordHasher,
        tokens: TokenService,
        media_base_url: str,
        outbox: Outbox | None = None,
    ) -> None:
        self.database = database
        self.cache = cache
        self.hasher = hasher
        self.tokens = tokens
        self.media_base_url = media_base_url
        self.outbox = outbox or Outbox(enabled=False)

    async def register(self, session: WriteSession, data: UserCreate) -> User:
        """Create an account; 409 names the field that is taken."""
        repo = UserRepository(session)
        self._raise_if_taken(*await repo.taken(data.email, data.username))
        password_hash = await anyio.to_thread.run_sync(self.hasher.hash, data.password)
        user = User(
            email=data.email.lower(),
            username=data.username,
            password_hash=password_hash,
            display_name=data.display_name or data.username,
            bio="",
        )
        try:
            await repo.add(user)
        except IntegrityError as exc:
            # Lost a race with a concurrent registration: the unique index names the field.
            email_taken = "email_lower" in str(exc.orig)
            self._raise_if_taken(email_taken, not email_taken)
        return user

    @staticmethod
    def _raise_if_taken(email_taken: bool, username_taken: bool) -> None:
        if email_taken or username_taken:
            field = "email" if email_taken else "username"
            raise ConflictError(f"this {field} is already registered", extra={"field": field})

    async def authenticate(self, session: ReadSession, login: str, password: str) -> User:
        """The user for these credentials; one vague 401 whether the login or the password was wrong."""
        user = await UserRepository(session).get_by_login(login)
        ok = await anyio.to_thread.run_sync(self.hasher.verify, user.password_hash if user else None, password)
        if not ok or user is None:
            raise UnauthorizedError("incorrect login or password")
        return user

    def issue_tokens(self, user_id: uuid.UUID) -> TokenPair:
        now = utcnow()
        access = self.tokens.issue(user_id, "access", now)
        refresh = self.tokens.issue(user_id, "refresh", now)
        return TokenPair(
            access_token=access.token,
            expires_in=int((access.expires_at - now).total_seconds()),
            refresh_token=refresh.token,
            refresh_expires_in=int((refresh.expires_at - now).total_seconds()),
        )

    async def refresh(self, session: ReadSession, refresh_token: str) -> TokenPair:
        """A new token pair for a valid refresh token of a user who still exists."""
        try:
            user_id = self.tokens.verify(refresh_token, "refresh")
        except InvalidTokenError as exc:
            raise UnauthorizedError("the refresh token is invalid or expired") from exc
        if await UserRepository(session).get(user_id) is None:
            raise UnauthorizedError("the refresh token is invalid or expired")
        return self.issue_tokens(user_id)

    async def get_profile(self, user_id: uuid.UUID, viewer_id: uuid.UUID | None) -> bytes:
        """A public profile as JSON bytes, through the user_profile cache (the owner's own view is not cached)."""
        if viewer_id == user_id:
            async with self.database.read_session(primary=True) as session:
                return (await self.get_me(session, user_id)).model_dump_json().encode()
        loaded = await self.cache.get_or_fill(USER_PROFILE, user_key(user_id), lambda: self._load_profile(user_id))
        if loaded.payload is None:
            raise NotFoundError("no such user")
        return loaded.payload

    async def _load_profile(self, user_id: uuid.UUID) -> Loaded:
        async with self.database.read_session(primary=True) as session:
            repo = UserRepository(session)
            user = await repo.get(user_id)
            if user is None:
                return Loaded(None)
            profile = await self._profile(repo, user, me=False)
        return Loaded(profile.model_dump_json().encode())

    async def get_me(self, session: ReadSession, user_id: uuid.UUID) -> UserMe:
        repo = UserRepository(session)
        user = await repo.get(user_id)
        if user is None:
            raise UnauthorizedError("the account no longer exists")
        profile = await self._profile(repo, user, me=True)
        return UserMe(**profile.model_dump(), email=user.email)

    async def _profile(self, repo: UserRepository[ReadSession], user: User, *, me: bool) -> UserRead:
        followers, following, recipes = await repo.counts(user.id, public_recipes_only=not me)
        return UserRead(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            bio=user.bio,
            avatar_url=media_url(self.media_base_url, user.avatar_image_key),
            created_at=user.created_at,
            follower_count=followers,
            following_count=following,
            recipe_count=recipes,
        )

    async def update_me(self, session: WriteSession, user_id: uuid.UUID, data: UserUpdate) -> UserMe:
        user = await UserRepository(session).get(user_id)
        if user is None:
            raise UnauthorizedError("the account no longer exists")
        if data.display_name is not None:
            user.display_name = data.display_name
        if data.bio is not None:
            user.bio = data.bio
        if data.password is not None:
            user.password_hash = await anyio.to_thread.run_sync(self.hasher.hash, data.password)
        user.version += 1
        user.updated_at = utcnow()
        await session.flush()
        keys = [user_key(user_id)]
        if data.display_name is not None:
            # Recipes embed their author's display name.
            keys += [recipe_key(rid) for rid in await UserRepository(session).authored_recipe_ids(user_id)]
        self.cache.invalidate_after_commit(session, *keys)
        return await self.get_me(session, user_id)

    async def follow(self, session: WriteSession, follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
        """Follow a user; idempotent. True when the follow is new."""
        if follower_id == followee_id:
            raise BadRequestError("you cannot follow yourself")
        repo = UserRepository(session)
        if await repo.get(followee_id) is None:
            raise NotFoundError("no such user")
        created = await repo.follow(follower_id, followee_id)
        if created:
            self.cache.invalidate_after_commit(
                session, user_key(follower_id), user_key(followee_id), recommend_key(follower_id)
            )
            await self.outbox.record(session, USER_FOLLOWED, followee_id, {"follower_id": str(follower_id)})
        return created

    async def unfollow(self, session: WriteSession, follower_id: uuid.UUID, followee_id: uuid.UUID) -> None:
        repo = UserRepository(session)
        if await repo.get(followee_id) is None:
            raise NotFoundError("no such user")
        if await repo.unfollow(follower_id, followee_id):
            self.cache.invalidate_after_commit(
                session, user_key(follower_id), user_key(followee_id), recommend_key(follower_id)
            )

    async def list_follows(
        self, session: ReadSession, user_id: uuid.UUID, direction: str, cursor: Cursor | None, limit: int
    ) -> FollowPage:
        repo = UserRepository(session)
        if await repo.get(user_id) is None:
            raise NotFoundError("no such user")
        rows = await repo.list_follows(user_id, direction=direction, cursor=cursor, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        items = [
            FollowRead(user=UserSummary(id=u.id, username=u.username, display_name=u.display_name), followed_at=at)
            for u, at in page
        ]
        next_cursor = encode_cursor(page[-1][1], page[-1][0].id) if more and page else None
        return FollowPage(items=items, next_cursor=next_cursor)
