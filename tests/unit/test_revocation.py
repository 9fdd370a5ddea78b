"""The revoked-session check: remembered answers, the recheck interval, and the database when the store fails."""

from __future__ import annotations

import uuid

from potluck.user.revocation import MemoryRevocationStore, RevocationStoreError, SessionRevocations
from tests.unit.clock import FakeClock


class CountingStore(MemoryRevocationStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.reads = 0
        self.failing = False

    async def contains(self, session_id: uuid.UUID) -> bool:
        self.reads += 1
        if self.failing:
            raise RevocationStoreError("down")
        return await super().contains(session_id)


def _revocations(clock: FakeClock, store: CountingStore, revoked_in_db: set[uuid.UUID]) -> SessionRevocations:
    async def ask_database(sid: uuid.UUID) -> bool:
        return sid in revoked_in_db

    return SessionRevocations(store, ttl=960, fallback=ask_database, recheck_seconds=1.0, clock=clock)


async def test_a_live_session_is_asked_about_once_per_recheck_interval() -> None:
    clock = FakeClock()
    store = CountingStore(clock)
    revocations = _revocations(clock, store, set())
    sid = uuid.uuid4()
    assert [await revocations.is_revoked(sid) for _ in range(100)] == [False] * 100
    assert store.reads == 1
    clock.advance(1.01)
    assert not await revocations.is_revoked(sid)
    assert store.reads == 2


async def test_another_process_s_revocation_is_seen_within_the_recheck_interval() -> None:
    clock = FakeClock()
    store = CountingStore(clock)
    here, there = _revocations(clock, store, set()), _revocations(clock, store, set())
    sid = uuid.uuid4()
    assert not await here.is_revoked(sid)
    await there.revoke([sid])
    assert await there.is_revoked(sid)  # at once in the revoking process
    clock.advance(1.01)
    assert await here.is_revoked(sid)


async def test_the_database_answers_while_the_store_fails() -> None:
    clock = FakeClock()
    store = CountingStore(clock)
    revoked, live = uuid.uuid4(), uuid.uuid4()
    revocations = _revocations(clock, store, {revoked})
    store.failing = True
    assert await revocations.is_revoked(revoked)
    assert not await revocations.is_revoked(live)
    assert revocations.known(live) is None  # not remembered: the store is asked again once it is back


async def test_entries_expire_with_the_access_token_lifetime() -> None:
    clock = FakeClock()
    store = MemoryRevocationStore(clock)
    sid = uuid.uuid4()
    await store.add([sid], ttl=10)
    assert await store.contains(sid)
    clock.advance(10.5)
    assert not await store.contains(sid)
