"""The outbox driven by hand: settings with fast retries, its rows, and a relay drained until nothing is pending."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select

from potluck.config import EventsSettings
from potluck.events.models import OutboxEvent
from potluck.events.relay import Relay
from potluck.recipe.models import Recipe
from tests.support.app import container_of
from tests.support.eventually import eventually

FAST_RETRIES = EventsSettings(
    relay_in_process=False, backoff_base_seconds=0.01, backoff_max_seconds=0.05, max_attempts=5, claim_seconds=5
)


async def outbox_rows(client: httpx.AsyncClient) -> list[OutboxEvent]:
    async with container_of(client).database.read_session(primary=True) as session:
        return list((await session.execute(select(OutboxEvent).order_by(OutboxEvent.id))).scalars().all())


async def view_count(client: httpx.AsyncClient, recipe_id: str) -> int:
    async with container_of(client).database.read_session(primary=True) as session:
        stmt = select(Recipe.view_count).where(Recipe.id == uuid.UUID(recipe_id))
        return int((await session.execute(stmt)).scalar_one())


async def drain_until_settled(relay: Relay, timeout: float = 10.0) -> None:
    """Drain, waiting out backoffs, until no event is pending."""
    pending = -1

    async def settled() -> bool:
        nonlocal pending
        await relay.drain(budget_seconds=5)
        async with relay.database.read_session(primary=True) as session:
            query = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.status == "pending")
            pending = (await session.execute(query)).scalar_one()
        return pending == 0

    await eventually(settled, timeout, interval=0.02, message=lambda: f"{pending} events still pending")
