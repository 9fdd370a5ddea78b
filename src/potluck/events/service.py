"""What an operator does with the outbox: list events, list the dead letters, replay them. Never commits."""

from __future__ import annotations

from potluck.db.base import utcnow
from potluck.db.session import ReadSession, WriteSession
from potluck.events.models import OutboxEvent
from potluck.events.repository import DEAD, OutboxRepository


class EventAdmin:
    async def events(self, session: ReadSession, status: str | None, limit: int) -> list[OutboxEvent]:
        return await OutboxRepository(session).list_events(status, limit)

    async def dead(self, session: ReadSession, limit: int) -> list[OutboxEvent]:
        return await OutboxRepository(session).list_events(DEAD, limit)

    async def replay(self, session: WriteSession, event_id: int) -> bool:
        """Send one dead event back to the relay; False when it is not dead (or does not exist)."""
        return await OutboxRepository(session).replay([event_id], utcnow()) > 0

    async def replay_dead(self, session: WriteSession) -> int:
        return await OutboxRepository(session).replay(None, utcnow())
