"""The embedded default (SQLite, no Redis): the same outbox and handlers, drained by a loop inside the app."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from potluck.schedule import (
    BACKUP_FULL_TASK,
    BACKUP_INCR_TASK,
    BACKUP_REDIS_TASK,
    EDGE_ROTATE_TASK,
    EDGE_VIEWS_TASK,
    RELAY_TASK,
    SCHEDULE,
)
from tests.integration.conftest import Api
from tests.support.app import METRICS_URL, container_of
from tests.support.eventually import eventually
from tests.support.outbox import outbox_rows, view_count

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_the_in_process_relay_delivers_without_being_asked(client: httpx.AsyncClient, api: Api) -> None:
    container = container_of(client)
    assert container.events.in_process
    assert container.events.coord is None
    author, fan = await api.register(), await api.register()
    await client.put(f"/api/v1/users/{author['id']}/follow", headers=fan["headers"])
    recipe = await api.create_recipe(author, title="Embedded soup")

    async def notified() -> bool:
        resp = await client.get("/api/v1/notifications", headers=fan["headers"])
        return [n["recipe"]["title"] for n in resp.json()["items"]] == ["Embedded soup"]

    await eventually(notified, 10)

    async def all_delivered() -> bool:
        return {r.status for r in await outbox_rows(client)} == {"delivered"}

    await eventually(all_delivered, 10)
    # user.registered twice (each one's verification email, written under the data dir), user.followed, recipe.created
    assert len(await outbox_rows(client)) == 4

    # Views: counted in memory, flushed by the same loop (here: asked to flush now).
    for _ in range(3):
        await client.get(f"/api/v1/recipes/{recipe['id']}")
    await container.stats.flush()
    assert await view_count(client, recipe["id"]) == 3
    metrics = (await client.get(METRICS_URL)).text
    assert 'potluck_outbox_deliveries_total{outcome="delivered",topic="recipe.created"} 1.0' in metrics
    assert "potluck_outbox_backlog" in metrics
    assert 'potluck_task_duration_seconds_count{task="events.relay"}' in metrics


async def test_the_embedded_default_runs_the_declared_schedule_itself(client: httpx.AsyncClient) -> None:
    """One schedule: every job beat would send runs in the app's own loop, the relay as its commit-woken loop."""
    container_of(client)  # the app is up
    running = {task.get_name() for task in asyncio.all_tasks() if not task.done()}
    in_process = {f"potluck-{job.name}" for job in SCHEDULE if job.in_process}
    assert in_process <= running
    # Not in process: the relay (commit-woken instead), the backups (pgBackRest runs beside PostgreSQL) and the
    # edge's view logs, shipped and rotated (no edge without the full topology).
    assert {job.name for job in SCHEDULE if not job.in_process} == {
        RELAY_TASK,
        BACKUP_FULL_TASK,
        BACKUP_INCR_TASK,
        BACKUP_REDIS_TASK,
        EDGE_VIEWS_TASK,
        EDGE_ROTATE_TASK,
    }
    assert "potluck-relay" in running
