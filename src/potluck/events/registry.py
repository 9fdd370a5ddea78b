"""Which handlers an event goes to. Other packages register theirs (search fills the `search.index` hook)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from potluck.db.session import WriteSession
from potluck.events.repository import Event

# Opens its own sessions; safe to run twice by its nature (ON CONFLICT DO NOTHING, a cache delete, a cache fill).
Handler = Callable[[Event], Awaitable[None]]
# Runs inside a transaction the relay opens, with handled_event(event_id, handler) written in the same
# transaction: a second delivery skips it.
TransactionalHandler = Callable[[WriteSession, Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Registered:
    name: str
    handler: Handler | None = None
    transactional: TransactionalHandler | None = None


async def _noop(_event: Event) -> None:
    return None


class HandlerRegistry:
    def __init__(self) -> None:
        self._by_topic: dict[str, list[Registered]] = {}

    def register(self, topic: str, name: str, handler: Handler, *, replace: bool = False) -> None:
        """Deliver `topic` to `handler` (which must be idempotent by itself); `replace` swaps a same-named one."""
        self._add(topic, Registered(name, handler=handler), replace=replace)

    def register_transactional(
        self, topic: str, name: str, handler: TransactionalHandler, *, replace: bool = False
    ) -> None:
        """Deliver `topic` to `handler` inside a transaction that also records the delivery (exactly-once effect)."""
        self._add(topic, Registered(name, transactional=handler), replace=replace)

    def register_hook(self, topic: str, name: str) -> None:
        """A named slot that does nothing until a capability replaces it (register(..., replace=True))."""
        self._add(topic, Registered(name, handler=_noop), replace=False)

    def _add(self, topic: str, entry: Registered, *, replace: bool) -> None:
        handlers = self._by_topic.setdefault(topic, [])
        for i, existing in enumerate(handlers):
            if existing.name == entry.name:
                if not replace:
                    raise ValueError(f"{topic} already has a handler named {entry.name}")
                handlers[i] = entry
                return
        handlers.append(entry)

    def handlers(self, topic: str) -> list[Registered]:
        return list(self._by_topic.get(topic, ()))

    def topics(self) -> list[str]:
        return sorted(self._by_topic)
