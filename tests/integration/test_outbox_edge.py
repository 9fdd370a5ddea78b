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

from potluck.cache.keys import SEARCH_GENERATION_KEY, lists_generation_key, search_scope_key
from potluck.config import EdgeSettings, Settings
from potluck.events.topics import EDGE_PURGE
from potluck.recipe.schemas import RecipeUpdate
from potluck_ops.ports import free_port
from potluck_ops.varnish import purge_url, start_varnish, stop_varnish
from tests.harness import RedisServer
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


async def test_a_redelivered_purge_first_does_the_search_bump_the_write_owed_once(
    settings: Settings, edge_node: tuple[str, Path], audited_redis: RedisServer
) -> None:
    """A title edit owes a `gen:search` bump. When it did not happen after commit (the store unreachable, or the
    process gone), the `edge.purge` delivery does it before purging, else an edge refill in between could take the
    old results under the old generation and keep them until their TTL; once per event: the search handler's own
    repeat then finds it done."""
    # The process's own recovery (which would deliver its deferred bump) is kept out of the way: as if it died.
    cache = settings.cache.model_copy(update={"recover_interval_ms": 600_000})
    update = {"edge": EdgeSettings(purge_urls=[edge_node[0]]), "events": FAST_RETRIES, "cache": cache}
    async with running_app(settings.model_copy(update=update)) as http:
        await _search_bump_redelivered(http, audited_redis)


async def _search_bump_redelivered(http: httpx.AsyncClient, audited_redis: RedisServer) -> None:
    api = Api(http)
    author = await api.register()
    recipe = await api.create_recipe(author)
    container = container_of(http)
    await drain_until_settled(container.events.relay)
    store = container.cache.store
    before = await store.get_int(SEARCH_GENERATION_KEY) or 0
    url = f"/api/v1/recipes/{recipe['id']}"
    audited_redis.pause()  # SIGSTOP: the write's bump after commit times out and waits in `pending_generations`
    try:
        assert (await http.patch(url, json={"title": "Renamed"}, headers=author["headers"])).status_code == 200
    finally:
        audited_redis.resume()
    # `gen:search`, and the generations of the lexemes of the old title and the new (search/scope.py).
    lexemes = [search_scope_key("renam"), search_scope_key(recipe["title"].split()[0].lower())]
    assert container.cache.pending_generations >= {SEARCH_GENERATION_KEY, *lexemes}
    assert await store.get_int(SEARCH_GENERATION_KEY) == before
    counted = [SEARCH_GENERATION_KEY, *lexemes]
    lexemes_before = [await store.get_int(key) for key in lexemes]
    rows = await outbox_rows(http)
    owed = [row for row in rows if row.topic == EDGE_PURGE and row.status != "delivered"]
    assert len(owed) == 1, [r.payload for r in owed]
    owed_keys = [key for key, _ in owed[0].payload["bumps"]]
    assert owed_keys[0] == SEARCH_GENERATION_KEY
    assert set(lexemes) <= set(owed_keys)
    assert container.cache.edge is not None
    await container.cache.edge.deliver(owed[0])  # ahead of the search handler's delivery of the same write
    once = [before + 1, *(n + 1 for n in lexemes_before)]
    assert [await store.get_int(key) for key in counted] == once
    await drain_until_settled(container.events.relay)
    assert [await store.get_int(key) for key in counted] == once  # the handler's bumps were the same, done once


async def test_while_a_node_is_down_each_retry_purges_again_but_the_tiers_are_redone_once(
    settings: Settings, audited_redis: RedisServer
) -> None:
    """A creation owes list bumps (recipe/relevance.py) with no event of their own. With an edge node down, its
    `edge.purge` row is retried until it gives up; each attempt purges again, but the tiers (keys and bumps) are
    redone at most once: not at all when the write's own invalidation landed, once when it waited (Redis paused),
    so a node's outage does not empty the write's list pages on every retry."""
    down = purge_url(free_port())  # nothing listens there: every purge fails
    cache = settings.cache.model_copy(update={"recover_interval_ms": 600_000})  # the write's deferral stays owed
    update = {"edge": EdgeSettings(purge_urls=[down]), "events": FAST_RETRIES, "cache": cache}
    scope = lists_generation_key("cuisine", "laotian")
    async with running_app(settings.model_copy(update=update)) as http:
        container = container_of(http)
        store = container.cache.store
        api = Api(http)
        author = await api.register()

        async def attempts_after(paused: bool) -> tuple[int, int]:
            """The scope's generation before and after a creation in it, once its row was retried to the end."""
            before = await store.get_int(scope) or 0
            if paused:
                audited_redis.pause()  # SIGSTOP: the write's bumps after commit time out and wait
            try:
                await api.create_recipe(author, cuisine="laotian")
            finally:
                audited_redis.resume()
            if paused:
                assert scope in container.cache.pending_generations
                assert await store.get_int(scope) == before
            await drain_until_settled(container.events.relay)  # every attempt fails on the node, then gives up
            rows = [r for r in await outbox_rows(http) if r.topic == EDGE_PURGE and r.status != "delivered"]
            assert rows
            assert rows[-1].attempts >= FAST_RETRIES.max_attempts, [(r.status, r.attempts) for r in rows]
            return before, await store.get_int(scope) or 0

        before, after = await attempts_after(paused=False)
        assert after == before + 1  # the write's own bump; no attempt redid it
        before, after = await attempts_after(paused=True)
        assert after == before + 1  # the first attempt's redo; none of the later ones
