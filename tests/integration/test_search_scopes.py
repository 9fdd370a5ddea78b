"""Search pages namespaced by their words' generations (search/scope.py) against real PostgreSQL and Redis: a
write leaves the cached pages of the searches it cannot change, and every write that changes a search shows on
its next read (exact matches, `or`, filters, the typo fallback, type-ahead, private recipes)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from potluck.cache.keys import SEARCH_EPOCH_KEY, SEARCH_GENERATION_KEY, search_scope_key
from potluck.config import Settings
from potluck.recipe.relevance import MAX_SEARCH_SCOPES
from tests.harness import RedisServer
from tests.integration.conftest import Api, running_app
from tests.support.app import container_of
from tests.support.outbox import FAST_RETRIES, drain_until_settled

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

SEARCH = "/api/v1/search"
# Stemming leaves these alone (no vowel, no suffix), and no other test's recipes hold them.
_LETTERS = "bcdfghjklmnpqrtvwxz"


def _word() -> str:
    return "zq" + "".join(random.choices(_LETTERS, k=8))


def _recipe(title: str, **extra: Any) -> dict[str, Any]:
    return {"description": "Nothing much to say.", "ingredients": [{"name": "water"}], "tags": [], **extra} | {
        "title": title
    }


async def _ids(client: httpx.AsyncClient, q: str, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    resp = await client.get(SEARCH, params={"q": q, **params}, headers=headers or {})
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


def _searched(statements: list[str]) -> list[str]:
    return [s for s in statements if "websearch_to_tsquery" in s or "word_similarity" in s]


async def test_a_write_leaves_the_cached_pages_of_searches_it_cannot_change(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """A creation and a title edit elsewhere bump `gen:search` but not the words of a cached exact match: its page
    is served with no search statement (with one generation for all searches both emptied it)."""
    author = await api.register()
    word, other = _word(), _word()
    mine = await api.create_recipe(author, **_recipe(f"{word} pie"))
    elsewhere = await api.create_recipe(author, **_recipe(f"{other} tart"))
    await drain_until_settled(container_of(client).relay)
    assert await _ids(client, word) == [mine["id"]]
    generation = await container_of(client).cache.generation(SEARCH_GENERATION_KEY)

    await api.create_recipe(author, **_recipe(f"{other} cake"))
    url = f"/api/v1/recipes/{elsewhere['id']}"
    assert (await client.patch(url, json={"title": f"{other} flan"}, headers=author["headers"])).status_code == 200
    await drain_until_settled(container_of(client).relay)
    assert await container_of(client).cache.generation(SEARCH_GENERATION_KEY) == (generation or 0) + 2
    statements.clear()
    assert await _ids(client, word) == [mine["id"]]
    assert _searched(statements) == []


async def test_every_write_that_changes_a_search_shows_on_its_next_read(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """Each search is read (so cached) before each write and compared after it with the same search queried by a
    viewer with a private recipe (never cached): a write that forgot a generation leaves a cached page that differs."""
    author = await api.register()
    reader = await api.register()
    word, pear = _word(), _word()
    own = await api.create_recipe(reader, **_recipe(f"{word} reader's own"), is_public=False)  # the oldest
    first = await api.create_recipe(author, **_recipe(f"{word} jam", cuisine="thai", tags=["sweet"]))
    second = await api.create_recipe(author, **_recipe(f"{word} paste", cuisine="italian"))
    searches: list[dict[str, Any]] = [
        {"q": word},
        {"q": f"{word} jam"},
        {"q": f"{pear} or {word}"},
        {"q": f"{word} -jam"},
        {"q": pear},
        {"q": word, "cuisine": "thai"},
        {"q": word, "tag": "sweet"},
        {"q": word, "sort": "newest", "limit": 1},
    ]

    async def same_as_queried() -> None:
        for params in searches:
            cached = await _ids(client, **params)
            queried = await _ids(client, **params, headers=reader["headers"])
            assert cached == [i for i in queried if i != own["id"]], params

    async def after(method: str, url: str, body: Any) -> None:
        for params in searches:  # cached before the write
            await _ids(client, **params)
        resp = await client.request(method, url, json=body, headers=author["headers"])
        assert resp.status_code in (200, 201, 204), resp.text
        await same_as_queried()

    await same_as_queried()
    statements.clear()
    for params in searches:
        await _ids(client, **params)
    assert _searched(statements) == []  # every anonymous page cached (the reader's are never)
    recipes = "/api/v1/recipes"
    await after("POST", recipes, _recipe(f"{word} jelly", cuisine="thai"))
    await after("PATCH", f"{recipes}/{second['id']}", {"title": f"{pear} paste"})  # leaves `word`, joins `pear`
    await after("PATCH", f"{recipes}/{second['id']}", {"title": f"{word} {pear} paste"})  # in both
    await after("PATCH", f"{recipes}/{second['id']}", {"cuisine": "thai"})
    await after("PATCH", f"{recipes}/{first['id']}", {"tags": []})
    await after("PATCH", f"{recipes}/{first['id']}", {"is_public": False})
    await after("PATCH", f"{recipes}/{first['id']}", {"is_public": True})
    await after("DELETE", f"{recipes}/{second['id']}", None)


async def test_the_typo_fallback_and_type_ahead_follow_creations_anywhere(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """A search the exact match cannot answer is cached as the fallback's page, under `gen:search` too: a new title
    like its words shows at once although it holds none of them; a new recipe holding them turns it into an exact
    match at once. Type-ahead (a prefix, no complete word) stays on `gen:search`."""
    author = await api.register()
    stem = "zq" + "".join(random.choices(_LETTERS, k=6))
    typo = stem + "xx"  # no recipe holds it; titles starting with `stem` are like it
    near = await api.create_recipe(author, **_recipe(f"{stem}xa soup"))
    await drain_until_settled(container_of(client).relay)
    assert await _ids(client, typo) == [near["id"]]
    assert await _ids(client, typo) == [near["id"]]  # cached

    nearer = await api.create_recipe(author, **_recipe(f"{stem}xb stew"))
    assert sorted(await _ids(client, typo)) == sorted([near["id"], nearer["id"]])
    exact = await api.create_recipe(author, **_recipe(f"{typo} stew"))
    assert await _ids(client, typo) == [exact["id"]]

    prefix = stem[:5]
    assert sorted(await _ids(client, prefix, prefix="true")) == sorted([near["id"], nearer["id"], exact["id"]])
    newest = await api.create_recipe(author, **_recipe(f"{stem}zz pie"))
    assert newest["id"] in await _ids(client, prefix, prefix="true")


async def test_a_recipe_private_throughout_moves_no_search_generation(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """Nobody else can find it: anonymous pages stay cached, and its author, whose searches skip the shared pages
    from then on (their author scope moved), finds it at once."""
    author = await api.register()
    word = _word()
    public = await api.create_recipe(author, **_recipe(f"{word} pie"))
    await drain_until_settled(container_of(client).relay)
    assert await _ids(client, word) == [public["id"]]
    assert await _ids(client, word, headers=author["headers"]) == [public["id"]]
    cache = container_of(client).cache
    before = [await cache.generation(key) for key in (SEARCH_GENERATION_KEY, search_scope_key(word))]
    secret = await api.create_recipe(author, **_recipe(f"{word} secret"), is_public=False)
    await drain_until_settled(container_of(client).relay)
    assert [await cache.generation(key) for key in (SEARCH_GENERATION_KEY, search_scope_key(word))] == before
    statements.clear()
    assert await _ids(client, word) == [public["id"]]
    assert _searched(statements) == []
    assert sorted(await _ids(client, word, headers=author["headers"])) == sorted([public["id"], secret["id"]])


@contextlib.asynccontextmanager
async def _dead_writer_and_reader(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two processes on one database and Redis; the writer never delivers a bump it could not make (as if it died
    right after): only the outbox's handlers can."""
    cache = settings.cache.model_copy(update={"recover_interval_ms": 600_000})
    writer_settings = settings.model_copy(update={"cache": cache, "events": FAST_RETRIES})
    async with running_app(writer_settings) as writer, running_app(settings) as reader:
        yield writer, reader


async def _created_while_paused(
    api: Api, redis_server: RedisServer, author: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """A recipe created while Redis is SIGSTOPped: its bumps after commit time out and wait."""
    redis_server.pause()
    try:
        return await api.create_recipe(author, **body)
    finally:
        redis_server.resume()


async def test_a_process_that_dies_before_its_bumps_leaves_them_to_the_outbox(
    settings: Settings, audited_redis: RedisServer
) -> None:
    """The writer's bumps after commit wait (Redis SIGSTOPped) and it never recovers them (as if it died): another
    process's cached page of an exact match is refreshed once the outbox delivers the event, whose handler bumps the
    recipe's lexemes' generations with `gen:search`, once."""
    word = _word()
    async with _dead_writer_and_reader(settings) as (writer, reader):
        api = Api(writer)
        author = await api.register()
        first = await api.create_recipe(author, **_recipe(f"{word} pie"))
        await drain_until_settled(container_of(writer).relay)
        assert await _ids(reader, word) == [first["id"]]
        second = await _created_while_paused(api, audited_redis, author, _recipe(f"{word} tart"))
        assert search_scope_key(word) in container_of(writer).cache.pending_generations
        scope = await container_of(reader).cache.generation(search_scope_key(word))
        await drain_until_settled(container_of(writer).relay)
        assert await container_of(reader).cache.generation(search_scope_key(word)) == (scope or 0) + 1
        assert sorted(await _ids(reader, word)) == sorted([first["id"], second["id"]])


async def test_a_write_with_more_lexemes_than_it_may_bump_moves_the_epoch(client: httpx.AsyncClient, api: Api) -> None:
    """A long description of varied words bumps one generation every exact page reads, not hundreds."""
    author = await api.register()
    word = _word()
    first = await api.create_recipe(author, **_recipe(f"{word} pie"))
    await drain_until_settled(container_of(client).relay)
    assert await _ids(client, word) == [first["id"]]
    cache = container_of(client).cache
    epoch = await cache.generation(SEARCH_EPOCH_KEY)
    many = " ".join(_word() for _ in range(2 * MAX_SEARCH_SCOPES))
    long = await api.create_recipe(author, **_recipe(f"{word} tart", description=many))
    assert await cache.generation(SEARCH_EPOCH_KEY) == (epoch or 0) + 1
    assert sorted(await _ids(client, word)) == sorted([first["id"], long["id"]])


async def test_a_dead_writer_leaves_its_private_recipe_to_the_outbox_for_its_author(
    settings: Settings, audited_redis: RedisServer
) -> None:
    """Whether an author has a private recipe is cached under their author scope: a writer that never bumped it
    (Redis SIGSTOPped, no recovery: as if it died) leaves it to the search.index handler, so the author's own
    searches on another process include the new private recipe once the event is delivered."""
    word = _word()
    async with _dead_writer_and_reader(settings) as (writer, reader):
        api = Api(writer)
        author = await api.register()
        public = await api.create_recipe(author, **_recipe(f"{word} pie"))
        await drain_until_settled(container_of(writer).relay)
        assert await _ids(reader, word, headers=author["headers"]) == [public["id"]]  # the shared page
        secret = await _created_while_paused(api, audited_redis, author, _recipe(f"{word} secret", is_public=False))
        await drain_until_settled(container_of(writer).relay)
        found = await _ids(reader, word, headers=author["headers"])
        assert sorted(found) == sorted([public["id"], secret["id"]])
        assert await _ids(reader, word) == [public["id"]]
