"""The `edge.purge` outbox row against real PostgreSQL and a real Varnish node: it is recorded in the write's own
transaction, so a write that rolls back records none and purges nothing, while a committed one records one row
and purges the node once (its after-commit purge; the relay's delivery then finds it done)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from potluck.config import EdgeSettings, Settings
from potluck.events.topics import EDGE_PURGE
from potluck.recipe.schemas import RecipeUpdate
from potluck_ops.ports import free_port
from potluck_ops.varnish import purge_url, start_varnish, stop_varnish
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.edge import purges_at
from tests.support.outbox import FAST_RETRIES, drain_until_settled, outbox_rows

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

REPO = Path(__file__).resolve().parents[2]
NODE = "edge-1"


@pytest.fixture
def edge_node(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real varnishd (its backend unused here): its purge URL and its work dir (for varnishlog)."""
    root, port = tmp_path / "varnish", free_port()
    proc = start_varnish(REPO / "deploy", root, NODE, port, [free_port()], os.environ)
    try:
        yield purge_url(port), root / NODE
    finally:
        stop_varnish(root, NODE)
        proc.wait(10)


@pytest.fixture
async def http(settings: Settings, edge_node: tuple[str, Path]) -> AsyncIterator[httpx.AsyncClient]:
    update = {"edge": EdgeSettings(purge_urls=[edge_node[0]]), "events": FAST_RETRIES}
    async with running_app(settings.model_copy(update=update)) as client:
        yield client


async def _edge_rows_with(http: httpx.AsyncClient, key: str) -> int:
    return sum(1 for row in await outbox_rows(http) if row.topic == EDGE_PURGE and key in row.payload["keys"])


async def _purges(workdir: Path, key: str) -> int:
    await asyncio.sleep(0.3)  # varnishd logs a request as it answers it: leave it a moment
    return await asyncio.to_thread(purges_at, workdir, key)


async def test_a_rolled_back_write_records_no_edge_purge_and_purges_nothing(
    http: httpx.AsyncClient, edge_node: tuple[str, Path]
) -> None:
    workdir = edge_node[1]
    api = Api(http)
    author = await api.register()
    recipe = await api.create_recipe(author)
    key = f"recipe:{recipe['id']}"
    # The committed creation: one row, one purge.
    assert await _edge_rows_with(http, key) == 1
    assert await _purges(workdir, key) == 1
    container = container_of(http)

    async def update_then_fail() -> None:
        async with container.database.write_session() as session:
            locked = await container.recipes.lock_for_edit(session, uuid.UUID(recipe["id"]), uuid.UUID(author["id"]))
            await container.recipes.update(session, locked, RecipeUpdate(title="Never"), None)
            raise RuntimeError("something failed after the update")

    with pytest.raises(RuntimeError, match="after the update"):
        await update_then_fail()
    assert await _edge_rows_with(http, key) == 1
    assert await _purges(workdir, key) == 1
    # The relay delivers the creation's row (already purged: nothing sent) and has nothing of the rolled-back one.
    await drain_until_settled(container.events.relay)
    assert await _purges(workdir, key) == 1
    assert {row.status for row in await outbox_rows(http) if row.topic == EDGE_PURGE} == {"delivered"}
    assert (await http.get(f"/api/v1/recipes/{recipe['id']}")).json()["title"] == recipe["title"]


async def test_a_write_whose_tier_invalidation_waited_is_purged_again_once_the_relay_redid_it(
    http: httpx.AsyncClient, edge_node: tuple[str, Path]
) -> None:
    """While this process's cache breaker is open, a write's invalidation waits in `pending` (other processes may
    still hold the old version, and an edge fill could take it from them): its purge after commit is not marked
    done, so the relay's delivery invalidates the tiers strictly, then purges the edge once more."""
    workdir = edge_node[1]
    api = Api(http)
    author = await api.register()
    recipe = await api.create_recipe(author)
    key = f"recipe:{recipe['id']}"
    container = container_of(http)
    await drain_until_settled(container.events.relay)
    assert await _purges(workdir, key) == 1
    for _ in range(container.cache.settings.breaker_failures):
        container.cache.breaker.record_failure()
    assert not container.cache.breaker.allow()
    url = f"/api/v1/recipes/{recipe['id']}"
    assert (await http.patch(url, json={"title": "Waited"}, headers=author["headers"])).status_code == 200
    assert await _purges(workdir, key) == 2  # the purge after commit: acknowledged, not marked done
    await drain_until_settled(container.events.relay)
    assert await _purges(workdir, key) == 3
    assert {row.status for row in await outbox_rows(http) if row.topic == EDGE_PURGE} == {"delivered"}
