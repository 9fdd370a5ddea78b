"""Overload: past `api.max_in_flight` a process answers 503 + Retry-After at once, before any database work,
and is back to normal as soon as its requests in flight finish. Probes are never refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import event

from potluck.cache.keys import recipe_key
from potluck.config import Settings
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.outbox import drain_until_settled

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def test_excess_requests_are_shed_at_once_and_admitted_ones_finish(settings: Settings) -> None:
    settings = settings.model_copy(update={"api": settings.api.model_copy(update={"max_in_flight": 2})})
    async with running_app(settings) as a, running_app(settings) as b:
        api = Api(b)
        author = await api.register()
        recipes = [await api.create_recipe(author, title=f"Soup {i}") for i in range(3)]
        cached_url = f"/api/v1/recipes/{(await api.create_recipe(author, title='Cached'))['id']}"
        await drain_until_settled(container_of(b).relay)  # recipe.created's warming must not fill them later
        assert (await a.get(cached_url)).status_code == 200  # now in a's first tier: the fast path's to answer
        cache = container_of(a).cache
        keys = [recipe_key(r["id"]) for r in recipes]
        await cache.invalidate_strict(keys)
        faults = container_of(a).faults
        for key in keys[:2]:
            faults.pause_before_fill[key] = 1.5
        # Two slow reads fill process a: each has loaded its recipe and holds its lease, paused before the fill.
        slow = [asyncio.create_task(a.get(f"/api/v1/recipes/{r['id']}")) for r in recipes[:2]]
        for key in keys[:2]:
            await faults.wait_paused(key)

        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        database = container_of(a).database
        engines = {database.primary, database.primary_reader, *database.replicas}
        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            started = time.monotonic()
            shed = await a.get(f"/api/v1/recipes/{recipes[2]['id']}")
            shed_seconds = time.monotonic() - started
        finally:
            for engine in engines:
                event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert shed.status_code == 503
        assert shed.headers["content-type"] == "application/problem+json"
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["status"] == 503
        assert statements == []  # refused before any database work
        # The fast path, which answers before the shedding middleware, counts against the same bound: a cached
        # read is refused like any other (and routed answers and fast ones never exceed it together).
        cached = await a.get(cached_url)
        assert (cached.status_code, cached.headers["retry-after"]) == (503, "1")
        assert all(key in faults.paused for key in keys[:2]), "the 503 waited for the requests in flight"
        assert shed_seconds < 1.0
        assert (await a.get("/healthz")).status_code == 200  # probes are exempt: a busy process is alive
        # Another process (the load balancer's retry) serves it meanwhile.
        assert (await b.get(f"/api/v1/recipes/{recipes[2]['id']}")).status_code == 200

        # The admitted requests finish normally, and the process takes requests again at once.
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
        again = await asyncio.gather(*(a.get(f"/api/v1/recipes/{r['id']}") for r in recipes[:2]))
        assert [r.status_code for r in again] == [200, 200]
        assert (await a.get(f"/api/v1/recipes/{recipes[2]['id']}")).status_code == 200
        assert (await a.get(cached_url)).status_code == 200
