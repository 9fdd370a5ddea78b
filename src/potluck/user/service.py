"""Users: registration, login, profiles, follows. Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from potluck.cache.cache import Cache, Loaded
from potluck.cache.families import USER_PROFILE
from potluck.cache.keys import recipe_key, recommend_key, user_key
from potluck.db.base import utcnow
from potluck.db.engine import Database
from potluck.db.session import ReadSession, WriteSession
from potluck.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableContentError,
)
from potluck.events.outbox import Outbox
from potluck.events.topics import (
    USER_FOLLOWED,
    USER_PASSWORD_RESET_REQUESTED,
    USER_REGISTERED,
    USER_REGISTRATION_REPEATED,
)
from potluck.kit.cursor import Cursor, encode_cursor
from potluck.kit.media_keys import media_url
from potluck.kit.throttle import Policy, Throttles
from potluck.user.account_mail import RESET_PASSWORD, VERIFY_EMAIL, token_digest
from potluck.user.audit import SecurityEvents, login_digest
from potluck.user.models import AuthSession, User
from potluck.user.passwords import password_problem
from potluck.user.repository import AccountTokenRepository, SessionRepository, UserRepository
from potluck.user.revocation import SessionRevocations
from potluck.user.schemas import (
    FollowPage,
    FollowRead,
    Tastes,
    TokenPair,
    UserCreate,
    UserMe,
    UserRead,
    UserSummary,
    UserUpdate,
)
from potluck.user.security import InvalidTokenError, PasswordHasher, TokenClaims, TokenService

LOCKED_OUT = "too many failed sign-ins; try again later"

# What a higher layer must do before an account row goes (the recipe domain deletes the account's recipes and
# withdraws its ratings): registered in bootstrap, so this layer needs no import of theirs.
AccountDeletionHook = Callable[[WriteSession, uuid.UUID], Awaitable[object]]


class UserService:
    def __init__(
        self,
        database: Database,
        cache: Cache,
        hasher: PasswordHasher,
        tokens: TokenService,
        media_base_url: str,
        *,
        revocations: SessionRevocations,
        throttles: Throttles,
        audit: SecurityEvents,
        outbox: Outbox | None = None,
    ) -> None:
        self.database = database
        self.cache = cache
        self.hasher = hasher
        self.tokens = tokens
        self.media_base_url = media_base_url
        self.revocations = revocations
        self.throttles = throttles
        self.audit = audit
        self.outbox = outbox or Outbox(enabled=False)
        self.deletion_hooks: list[AccountDeletionHook] = []

    async def register(self, session: WriteSession, data: UserCreate) -> User | None:
        """Create an account and have a verification link sent; None when the email already has an account (its
        owner is sent a note instead, so the caller learns nothing). 409 when the username is taken: usernames are
        public anyway."""
        repo = UserRepository(session)
        email_taken, username_taken = await repo.taken(data.email, data.username)
        self._raise_if_taken(False, username_taken)
        if email_taken:
            existing = await repo.get_by_email(data.email)
            if existing is not None:
                await self.outbox.record(session, USER_REGISTRATION_REPEATED, existing.id, {})
            # The same work as a registration: the answer's timing tells no more than its body.
            await self.hasher.hash_async(data.password)
            return None
        password_hash = await self.hasher.hash_async(data.password)
        user = User(
            email=data.email.lower(),
            username=data.username,
            password_hash=password_hash,
            display_name=data.display_name or data.username,
            bio="",
            tastes=data.tastes.model_dump() if data.tastes is not None else None,
        )
        try:
            await repo.add(user)
        except IntegrityError as exc:
            # Lost a race with a concurrent registration: the unique index names the field.
            email_taken = "email_lower" in str(exc.orig)
            self._raise_if_taken(email_taken, not email_taken)
        await self.outbox.record(session, USER_REGISTERED, user.id, {})
        return user

    @staticmethod
    def _raise_if_taken(email_taken: bool, username_taken: bool) -> None:
        if email_taken or username_taken:
            field = "email" if email_taken else "username"
            raise ConflictError(f"this {field} is already registered", extra={"field": field})

    async def verify_email(self, session: WriteSession, token: str) -> None:
        """Mark the address of the token's account verified; 400 for an unknown, used or expired token."""
        user_id = await AccountTokenRepository(session).consume(token_digest(token), VERIFY_EMAIL, utcnow())
        user = await UserRepository(session).get(user_id) if user_id is not None else None
        if user is None:
            raise BadRequestError("the token is invalid, expired or already used", extra={"field": "token"})
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
            await session.flush()

    async def request_password_reset(self, session: WriteSession, email: str, client: str) -> None:
        """Have a reset link sent if the address has an account; the same answer either way (429 past the
        per-address limit)."""
        await self.throttles.enforce(
            self.throttles.password_reset, client, "too many password-reset requests; try again later"
        )
        user = await UserRepository(session).get_by_email(email)
        if user is not None:
            await self.outbox.record(session, USER_PASSWORD_RESET_REQUESTED, user.id, {})

    async def reset_password(self, session: WriteSession, token: str, password: str) -> None:
        """Set a new password with an emailed token (once); every session of the account ends."""
        now = utcnow()
        tokens = AccountTokenRepository(session)
        user_id = await tokens.consume(token_digest(token), RESET_PASSWORD, now)
        user = await UserRepository(session).get(user_id) if user_id is not None else None
        if user is None:
            raise BadRequestError("the token is invalid, expired or already used", extra={"field": "token"})
        if (problem := password_problem(password, user_inputs=(user.username, user.email))) is not None:
            raise UnprocessableContentError(problem, extra={"field": "password"})
        await tokens.void(user.id, RESET_PASSWORD, now)
        user.password_hash = await self.hasher.hash_async(password)
        # The link reached the mailbox: the address is the owner's.
        user.email_verified_at = user.email_verified_at or now
        user.version += 1
        revoked = await SessionRepository(session).revoke(user.id, reason="password_reset")
        self._revoke_after_commit(session, revoked)
        await self.throttles.reset(self.throttles.login_account, str(user.id))
        self.audit.record("password_reset", user_id=str(user.id), sessions_revoked=len(revoked))

    async def check_registration(self, client: str) -> None:
        """429 when this address registered too often."""
        await self.throttles.enforce(
            self.throttles.register, client, "too many registrations from this address; try again later"
        )

    async def authenticate(self, session: WriteSession, login: str, password: str, client: str) -> User:
        """The user for these credentials; one vague 401 whether the login or the password was wrong.

        Throttled per account and per client address (failures only; exponential back-off past the limit), checked
        before the password is hashed, so a locked-out guesser costs no argon2 time.

        The hash is verified off the database, then read again under a row lock: a password change or reset that
        committed meanwhile makes it a 401 (the old password no longer signs in), and one that comes later waits for
        this sign-in and then revokes its session with the others.

        A hash made with other parameters than today's (`auth.argon2_*` changed since) is replaced after a
        successful verification, the one moment the password is known: a change of parameters reaches every
        account that signs in, not only new passwords (docs/security.md).
        """
        repo = UserRepository(session)
        user = await repo.get_by_login(login)
        account = str(user.id) if user is not None else "login:" + login_digest(login)
        await self._refuse_if_locked(account, client, login)
        ok = await self.hasher.verify_async(user.password_hash if user else None, password)
        if not ok or user is None:
            await self._failed(account, client, login, user.id if user else None)
            raise UnauthorizedError("incorrect login or password")
        if await repo.lock_password_hash(user.id) != user.password_hash:
            raise UnauthorizedError("incorrect login or password")  # changed since it was verified
        await self.throttles.reset(self.throttles.login_account, account)
        if self.hasher.needs_rehash(user.password_hash):
            rehashed = await self.hasher.hash_async(password)
            if await repo.replace_password_hash(user.id, user.password_hash, rehashed):
                self.audit.record("password_rehashed", user_id=str(user.id))
        return user

    def _login_throttles(self, account: str, client: str) -> tuple[tuple[Policy, str], ...]:
        return ((self.throttles.login_address, client), (self.throttles.login_account, account))

    async def _refuse_if_locked(self, account: str, client: str, login: str) -> None:
        for policy, key in self._login_throttles(account, client):
            refusal = await self.throttles.check(policy, key)
            if refusal is not None:
                self.audit.record("lockout", policy=policy.name, login=login_digest(login), client=client, refused=True)
                raise refusal.error(LOCKED_OUT)

    async def _failed(self, account: str, client: str, login: str, user_id: uuid.UUID | None) -> None:
        fields = {"login": login_digest(login), "client": client, "user_id": str(user_id) if user_id else None}
        self.audit.record("failed_login", **fields)
        for policy, key in self._login_throttles(account, client):
            if await self.throttles.failed(policy, key) is not None:
                self.audit.record("lockout", policy=policy.name, refused=False, **fields)

    async def start_session(self, session: WriteSession, user_id: uuid.UUID, user_agent: str) -> TokenPair:
        """A new sign-in session and its first token pair."""
        now = utcnow()
        auth_session = AuthSession(
            user_id=user_id,
            generation=0,
            user_agent=user_agent[:255],
            created_at=now,
            last_used_at=now,
            expires_at=now + self.tokens.refresh_ttl,
        )
        await SessionRepository(session).add(auth_session)
        return self._token_pair(user_id, auth_session.id, 0, now)

    def _token_pair(self, user_id: uuid.UUID, session_id: uuid.UUID, generation: int, now: datetime) -> TokenPair:
        access = self.tokens.issue(user_id, "access", now, session_id=session_id)
        refresh = self.tokens.issue(user_id, "refresh", now, session_id=session_id, generation=generation)
        return TokenPair(
            access_token=access.token,
            expires_in=int((access.expires_at - now).total_seconds()),
            refresh_token=refresh.token,
            refresh_expires_in=int((refresh.expires_at - now).total_seconds()),
        )

    async def refresh(self, session: WriteSession, refresh_token: str, user_agent: str) -> TokenPair | None:
        """A new token pair for the newest refresh token of a live session, which it replaces (rotation).

        None when refused. A token older than its session's newest is reuse (RFC 9700 §4.14.2: it was stolen, or
        the client leaked it): the whole session is revoked, access tokens included, and logged. The caller must
        commit even when refused, so the revocation sticks.
        """
        try:
            claims = self.tokens.verify(refresh_token, "refresh")
        except InvalidTokenError:
            return None
        repo = SessionRepository(session)
        now = utcnow()
        rotated = await repo.rotate(
            claims.session_id,
            claims.generation,
            now=now,
            expires_at=now + self.tokens.refresh_ttl,
            user_agent=user_agent[:255],
        )
        if rotated:
            return self._token_pair(claims.user_id, claims.session_id, claims.generation + 1, now)
        current = await repo.get(claims.session_id)
        if current is not None and current.revoked_at is None and current.generation > claims.generation:
            revoked = await repo.revoke(current.user_id, reason="token_reuse", only=current.id)
            self._revoke_after_commit(session, revoked)
            self.audit.record(
                "token_reuse",
                user_id=str(current.user_id),
                session_id=str(current.id),
                presented_generation=claims.generation,
                current_generation=current.generation,
            )
        return None

    async def logout(self, session: WriteSession, claims: TokenClaims) -> None:
        """End the caller's session: its refresh token stops working, and its access tokens too."""
        revoked = await SessionRepository(session).revoke(claims.user_id, reason="logout", only=claims.session_id)
        self._revoke_after_commit(session, revoked)
        self.audit.record("logout", user_id=str(claims.user_id), session_id=str(claims.session_id))

    async def logout_all(self, session: WriteSession, user_id: uuid.UUID) -> int:
        """End every session of the user, the caller's included; how many were live."""
        revoked = await SessionRepository(session).revoke(user_id, reason="logout_all")
        self._revoke_after_commit(session, revoked)
        self.audit.record("logout_all", user_id=str(user_id), sessions=len(revoked))
        return len(revoked)

    def _revoke_after_commit(self, session: WriteSession, session_ids: list[uuid.UUID]) -> None:
        if session_ids:
            session.after_commit(lambda: self.revocations.revoke(session_ids))

    async def is_session_revoked(self, session_id: uuid.UUID) -> bool:
        """The database's answer (the revocation set's fallback when its store fails)."""
        async with self.database.read_session(primary=True) as session:
            return await SessionRepository(session).is_revoked(session_id)

    async def get_profile(self, user_id: uuid.UUID, viewer_id: uuid.UUID | None) -> bytes:
        """A public profile as JSON bytes, through the user_profile cache (the owner's own view is not cached)."""
        if viewer_id == user_id:
            async with self.database.read_session(primary=True) as session:
                return (await self.get_me(session, user_id)).model_dump_json().encode()
        loaded = await self.cache.get_or_fill(
            USER_PROFILE,
            user_key(user_id),
            lambda: self._load_profile(user_id),
            unstored=lambda: self._load_profile(user_id, primary=False),
        )
        if loaded.payload is None:
            raise NotFoundError("no such user")
        return loaded.payload

    async def _load_profile(self, user_id: uuid.UUID, *, primary: bool = True) -> Loaded:
        async with self.database.read_session(primary=primary) as session:
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
        return UserMe(
            **profile.model_dump(),
            email=user.email,
            email_verified=user.email_verified_at is not None,
            tastes=Tastes.model_validate(user.tastes or {}),
        )

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

    async def update_me(self, session: WriteSession, caller: TokenClaims, data: UserUpdate, client: str) -> UserMe:
        """Change the profile; a new password needs the current one and ends every other session."""
        user_id = caller.user_id
        user = await UserRepository(session).get(user_id)
        if user is None:
            raise UnauthorizedError("the account no longer exists")
        if data.password is not None:
            await self._change_password(session, user, caller, data, client)
        if data.display_name is not None:
            user.display_name = data.display_name
        if data.bio is not None:
            user.bio = data.bio
        if data.tastes is not None:
            user.tastes = data.tastes.model_dump()
        user.version += 1
        user.updated_at = utcnow()
        await session.flush()
        keys = [user_key(user_id)]
        if data.tastes is not None:
            # The list is ranked from them while the user has few likes.
            keys.append(recommend_key(user_id))
        if data.display_name is not None:
            # Recipes embed their author's display name.
            keys += [recipe_key(rid) for rid in await UserRepository(session).authored_recipe_ids(user_id)]
        self.cache.invalidate_after_commit(session, *keys)
        return await self.get_me(session, user_id)

    async def _change_password(
        self, session: WriteSession, user: User, caller: TokenClaims, data: UserUpdate, client: str
    ) -> None:
        assert data.password is not None
        if data.current_password is None:
            raise BadRequestError("changing the password needs current_password", extra={"field": "current_password"})
        if (problem := password_problem(data.password, user_inputs=(user.username, user.email))) is not None:
            raise UnprocessableContentError(problem, extra={"field": "password"})
        await self._check_current_password(user, data.current_password, client)
        user.password_hash = await self.hasher.hash_async(data.password)
        revoked = await SessionRepository(session).revoke(user.id, reason="password_changed", keep=caller.session_id)
        self._revoke_after_commit(session, revoked)
        self.audit.record("password_changed", user_id=str(user.id), sessions_revoked=len(revoked))

    async def delete_account(
        self, session: WriteSession, caller: TokenClaims, current_password: str, client: str
    ) -> None:
        """Delete the account and everything it wrote (public recipes included); its sessions end at once."""
        user = await UserRepository(session).get(caller.user_id)
        if user is None:
            raise UnauthorizedError("the account no longer exists")
        await self._check_current_password(user, current_password, client)
        revoked = await SessionRepository(session).revoke(user.id, reason="account_deleted")
        self._revoke_after_commit(session, revoked)
        for hook in self.deletion_hooks:
            await hook(session, user.id)
        repo = UserRepository(session)
        partners = await repo.follow_partners(user.id)
        await repo.delete(user.id)
        # Profiles that counted this account as a follower or followee, and their recommendations.
        keys = [user_key(user.id), recommend_key(user.id)]
        keys += [k for partner in partners for k in (user_key(partner), recommend_key(partner))]
        self.cache.invalidate_after_commit(session, *keys)
        self.audit.record("account_deleted", user_id=str(user.id), sessions_revoked=len(revoked))

    async def _check_current_password(self, user: User, current_password: str, client: str) -> None:
        """403 for a wrong current password, throttled like a sign-in (a stolen access token cannot guess it)."""
        account = str(user.id)
        await self._refuse_if_locked(account, client, user.username)
        if not await self.hasher.verify_async(user.password_hash, current_password):
            await self._failed(account, client, user.username, user.id)
            raise ForbiddenError("current_password is wrong", extra={"field": "current_password"})

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
