"""Recording events: a row in the same transaction as the change, so a rollback records nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from potluck.db.base import utcnow
from potluck.db.session import WriteSession
from potluck.events.repository import OutboxRepository, new_row
from potluck.events.topics import AGGREGATE_OF_TOPIC


class Outbox:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        # Called after a commit that recorded events (the in-process relay wakes up on it).
        self._listeners: list[Callable[[], None]] = []

    def on_commit(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def record(
        self, session: WriteSession, topic: str, aggregate_id: uuid.UUID, payload: Mapping[str, Any]
    ) -> int | None:
        """Record `topic` about `aggregate_id` in `session`'s transaction; delivered only if it commits.

        Returns the event's id (None when recording is off)."""
        if not self.enabled:
            return None
        aggregate_type = AGGREGATE_OF_TOPIC[topic]
        event_id = await OutboxRepository(session).add(topic, aggregate_type, aggregate_id, payload, utcnow())
        for listener in self._listeners:
            session.after_commit(listener)
        return event_id

    def record_at_commit(
        self, session: WriteSession, topic: str, aggregate_id: uuid.UUID, payload: Mapping[str, Any]
    ) -> None:
        """`record`, for callers that cannot await: the row goes in with the transaction's commit, or not at all."""
        if not self.enabled:
            return
        row = new_row(topic, AGGREGATE_OF_TOPIC[topic], aggregate_id, payload, utcnow())
        OutboxRepository(session).add_at_flush(row)
        for listener in self._listeners:
            session.after_commit(listener)
