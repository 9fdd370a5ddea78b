"""GET /search and /search/trending against real databases: SQLite FTS5 (in-process cache) and PostgreSQL
full-text search with Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from potluck.cache.keys import SEARCH_GENERATION_KEY, recipe_key
from potluck.cache.redis_store import redis_client
from potluck.events.registry import HandlerRegistry
from potluck.events.repository import Event
from potluck.events.topics import RECIPE_CREATED, RECIPE_DELETED, RECIPE_UPDATED
from potluck.search.analytics import RedisSearchAnalytics, hour_bucket, hour_key
from potluck.search.handlers import SEARCH_INDEX, install_search_handlers
from potluck.search.routes import router as search_router
from potluck_ops.ports import free_port
from tests.integration.conftest import Api
from tests.support.app import app_of, container_of

SEARCH = "/api/v1/search"


def _postgres(client: httpx.AsyncClient) -> bool:
    return bool(container_of(client).database.dialect == "postgresql")


@pytest.fixture(autouse=True)
def _search_routes(client: httpx.AsyncClient) -> None:
    """Mount the router unless api.py already does."""
    app = app_of(client)
    if not any(getattr(route, "path", None) == SEARCH for route in app.routes):
        app.include_router(search_router, prefix="/api/v1")


async def _after_recipe_write(client: httpx.AsyncClient) -> None:
    """Let the write's after-effects settle: RecipeService bumps the search generation after commit, and the
    outbox's search.index handler bumps it again when the relay delivers the event; deliver pending events now,
    so no bump lands later between two searches a test expects to share a cache entry."""
    container = container_of(client)
    await container.events.relay.drain()
    await container.cache.bump_generation(SEARCH_GENERATION_KEY)


async def _search(
    client: httpx.AsyncClient, q: str, headers: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    resp = await client.get(SEARCH, params={"q": q, **params}, headers=headers or {})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def _titles(client: httpx.AsyncClient, q: str, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    return [item["title"] for item in (await _search(client, q, headers, **params))["items"]]


def _recipe(title: str, description: str = "Nothing much to say.", ingredients: tuple[str, ...] = ("water",)) -> Any:
    return {
        "title": title,
        "description": description,
        "ingredients": [{"name": name} for name in ingredients],
        "tags": [],
    }


@pytest.fixture
async def author(api: Api) -> dict[str, Any]:
    return await api.register()


async def test_finds_by_title_description_and_ingredient_ranked_by_field(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any]
) -> None:
    await api.create_recipe(author, **_recipe("Lemon tart", "Sharp and sweet.", ("lemon", "butter")))
    await api.create_recipe(author, **_recipe("Weeknight stew", "Finished with saffron and cream.", ("beef",)))
    await api.create_recipe(author, **_recipe("Golden rice", "A bright side dish.", ("rice", "saffron")))
    await api.create_recipe(author, **_recipe("Saffron risotto", "Creamy and slow.", ("rice", "stock")))
    body = await _search(client, "saffron")
    assert body["mode"] == "exact"
    # Title (weight A) above description (B) above ingredient names (C).
    assert [i["title"] for i in body["items"]] == ["Saffron risotto", "Weeknight stew", "Golden rice"]
    assert await _titles(client, "SAFFRON") == ["Saffron risotto", "Weeknight stew", "Golden rice"]
    # Stemming: "lemons" finds "lemon", "stews" finds "stew", "finishing" finds "finished".
    assert await _titles(client, "lemons") == ["Lemon tart"]
    assert await _titles(client, "stews finishing") == ["Weeknight stew"]


async def test_accents_are_folded(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, **_recipe("Crème brûlée", "Custard under burnt sugar."))
    assert await _titles(client, "creme brulee") == ["Crème brûlée"]
    assert await _titles(client, "CRÈME") == ["Crème brûlée"]


async def test_web_search_syntax(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, **_recipe("Tomato soup", "Soup of tomato.", ("tomato",)))
    await api.create_recipe(author, **_recipe("Chicken soup", "Soup for colds.", ("chicken",)))
    await api.create_recipe(author, **_recipe("Tomato salad", "Salad with soup spoons.", ("tomato",)))
    assert await _titles(client, '"tomato soup"') == ["Tomato soup"]
    assert sorted(await _titles(client, "soup -chicken")) == ["Tomato salad", "Tomato soup"]
    assert sorted(await _titles(client, 'soup -"soup spoons" -chicken')) == ["Tomato soup"]
    assert sorted(await _titles(client, "salad or chicken")) == ["Chicken soup", "Tomato salad"]
    assert sorted(await _titles(client, "tomato soup")) == ["Tomato salad", "Tomato soup"]


async def test_prefix_matching_for_type_ahead(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, **_recipe("Tomato soup"))
    await api.create_recipe(author, **_recipe("Tomatillo salsa"))
    await api.create_recipe(author, **_recipe("Beef stew"))
    body = await _search(client, "toma", prefix="true")
    assert body["mode"] == "exact"
    assert sorted(i["title"] for i in body["items"]) == ["Tomatillo salsa", "Tomato soup"]
    assert await _titles(client, "soup toma", prefix="true") == ["Tomato soup"]
    # Without prefix matching "toma" is no word of any recipe: only the fallback can find something.
    assert (await _search(client, "toma"))["mode"] == "fuzzy"


async def test_typo_fallback(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, **_recipe("Chicken tikka masala"))
    await api.create_recipe(author, **_recipe("Beef lasagna"))
    body = await _search(client, "chiken tika")
    assert body["mode"] == "fuzzy"
    if _postgres(client):
        # pg_trgm word similarity on the title.
        assert [i["title"] for i in body["items"]] == ["Chicken tikka masala"]
        assert await _titles(client, "lasagne") == ["Beef lasagna"]
    else:
        # SQLite's fallback is a LIKE per word: a misspelt word finds nothing, a fragment does.
        assert body["items"] == []
        assert await _titles(client, "lasag") == ["Beef lasagna"]
    # An exact match never falls back.
    assert (await _search(client, "chicken"))["mode"] == "exact"


async def test_filters(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    rater = await api.register()
    quick = await api.create_recipe(
        author,
        title="Quick pasta",
        cuisine="italian",
        prep_minutes=5,
        cook_minutes=10,
        tags=["quick", "vegetarian"],
        ingredients=[{"name": "spaghetti"}, {"name": "garlic"}],
    )
    await api.create_recipe(
        author,
        title="Slow pasta ragu",
        cuisine="italian",
        prep_minutes=30,
        cook_minutes=180,
        tags=["sunday"],
        ingredients=[{"name": "pappardelle"}, {"name": "beef"}, {"name": "garlic"}],
    )
    await api.create_recipe(
        author,
        title="Pasta salad",
        cuisine="american",
        prep_minutes=15,
        cook_minutes=10,
        tags=["quick"],
        ingredients=[{"name": "fusilli"}, {"name": "mayonnaise"}],
    )
    resp = await client.put(f"/api/v1/recipes/{quick['id']}/rating", json={"stars": 5}, headers=rater["headers"])
    assert resp.status_code == 200
    await _after_recipe_write(client)

    assert sorted(await _titles(client, "pasta", cuisine="Italian")) == ["Quick pasta", "Slow pasta ragu"]
    assert sorted(await _titles(client, "pasta", tag="quick")) == ["Pasta salad", "Quick pasta"]
    assert await _titles(client, "pasta", tag=["quick", "vegetarian"]) == ["Quick pasta"]
    assert await _titles(client, "pasta", tag="quick,vegetarian") == ["Quick pasta"]
    assert sorted(await _titles(client, "pasta", ingredient="garlic")) == ["Quick pasta", "Slow pasta ragu"]
    assert await _titles(client, "pasta", ingredient=["garlic", "beef"]) == ["Slow pasta ragu"]
    assert await _titles(client, "pasta", exclude_ingredient=["beef", "mayonnaise"]) == ["Quick pasta"]
    assert sorted(await _titles(client, "pasta", max_total_minutes=25)) == ["Pasta salad", "Quick pasta"]
    assert await _titles(client, "pasta", min_rating=4.5) == ["Quick pasta"]
    assert await _titles(client, "pasta", cuisine="italian", tag="quick", max_total_minutes=15) == ["Quick pasta"]
    assert await _titles(client, "pasta", cuisine="thai") == []


async def test_sorts(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    raters = [await api.register() for _ in range(2)]
    made = {}
    for title in ("Curry one", "Curry two", "Curry three"):
        made[title] = await api.create_recipe(author, **_recipe(title))
    for rater, stars in zip(raters, (4, 5), strict=True):
        url = f"/api/v1/recipes/{made['Curry one']['id']}/rating"
        assert (await client.put(url, json={"stars": stars}, headers=rater["headers"])).status_code == 200
    url = f"/api/v1/recipes/{made['Curry three']['id']}/rating"
    assert (await client.put(url, json={"stars": 5}, headers=raters[0]["headers"])).status_code == 200
    await _after_recipe_write(client)
    assert await _titles(client, "curry", sort="newest") == ["Curry three", "Curry two", "Curry one"]
    # 5.0 from one rating, then 4.5 from two, then unrated.
    assert await _titles(client, "curry", sort="rating") == ["Curry three", "Curry one", "Curry two"]


@pytest.mark.parametrize("sort", ["relevance", "newest", "rating"])
async def test_cursor_pagination_walks_every_match_once(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any], sort: str
) -> None:
    rater = await api.register()
    for i in range(7):
        recipe = await api.create_recipe(author, **_recipe(f"Dumplings {i}", "Dumplings " * (i % 3)))
        if i % 2:
            url = f"/api/v1/recipes/{recipe['id']}/rating"
            resp = await client.put(url, json={"stars": 1 + i % 5}, headers=rater["headers"])
            assert resp.status_code == 200
    await api.create_recipe(author, **_recipe("Noodles"))
    await _after_recipe_write(client)
    everything = await _titles(client, "dumplings", sort=sort, limit=100)
    assert len(everything) == 7
    walked: list[str] = []
    params: dict[str, Any] = {"q": "dumplings", "sort": sort, "limit": 3}
    for _ in range(10):
        resp = await client.get(SEARCH, params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        walked += [i["title"] for i in body["items"]]
        if body["next_cursor"] is None:
            assert "link" not in resp.headers
            break
        assert body["next_cursor"] in resp.headers["link"]
        params["cursor"] = body["next_cursor"]
    assert walked == everything


async def test_field_selection(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, title="Miso soup", ingredients=[{"name": "miso"}, {"name": "tofu"}])
    light = (await _search(client, "miso"))["items"][0]
    assert "ingredients" not in light
    assert light["author"]["username"] == author["username"]
    slim = (await _search(client, "miso", fields="id,title,author.username"))["items"][0]
    assert set(slim) == {"id", "title", "author"}
    assert slim["author"] == {"username": author["username"]}
    full = (await _search(client, "miso", include="ingredients,tags"))["items"][0]
    assert [i["name"] for i in full["ingredients"]] == ["miso", "tofu"]
    bad = await client.get(SEARCH, params={"q": "miso", "fields": "id,nope"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


async def test_private_recipes_never_reach_other_viewers(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any]
) -> None:
    other = await api.register()
    await api.create_recipe(author, **_recipe("Secret saffron buns"))
    await api.create_recipe(author, **_recipe("Public saffron buns"))
    private = await api.create_recipe(author, **_recipe("Hidden saffron cake"), is_public=False)
    await _after_recipe_write(client)
    # The author's own search first: if it went into a shared entry, the others would now be served from it.
    own = await _titles(client, "saffron", author["headers"])
    assert sorted(own) == ["Hidden saffron cake", "Public saffron buns", "Secret saffron buns"]
    for headers in (None, other["headers"]):
        for _ in range(2):  # a miss, then a hit
            assert "Hidden saffron cake" not in await _titles(client, "saffron", headers)
            assert await _titles(client, "hidden", headers) == []
    assert await _titles(client, "hidden", author["headers"]) == ["Hidden saffron cake"]
    # The fallback is filtered the same way.
    fuzzy = await _search(client, "hidde cake", other["headers"])
    assert private["id"] not in [i["id"] for i in fuzzy["items"]]
    resp = await client.get(SEARCH, params={"q": "saffron"}, headers=author["headers"])
    assert resp.headers["cache-control"].startswith("private")
    assert (await client.get(SEARCH, params={"q": "saffron"})).headers["cache-control"].startswith("public")


async def test_a_recipe_made_private_leaves_cached_results_at_once(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any]
) -> None:
    recipe = await api.create_recipe(author, **_recipe("Rhubarb crumble"))
    await _after_recipe_write(client)
    assert await _titles(client, "rhubarb") == ["Rhubarb crumble"]
    resp = await client.patch(f"/api/v1/recipes/{recipe['id']}", json={"is_public": False}, headers=author["headers"])
    assert resp.status_code == 200
    # Even before the generation moves, hydration checks visibility on every read.
    assert await _titles(client, "rhubarb") == []
    assert await _titles(client, "rhubarb", author["headers"]) == ["Rhubarb crumble"]


async def test_a_page_of_cold_documents_is_read_in_one_statement_and_kept(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any], statements: list[str]
) -> None:
    created = [await api.create_recipe(author, **_recipe(f"Sorrel soup {i}")) for i in range(12)]
    await _after_recipe_write(client)
    assert len(await _titles(client, "sorrel")) == 12  # the page of ids cached
    await container_of(client).cache.invalidate_strict([recipe_key(r["id"]) for r in created])  # every doc cold
    statements.clear()
    assert len(await _titles(client, "sorrel")) == 12
    # The twelve documents at once: one statement (PostgreSQL aggregates the parts), two on SQLite (rows, parts).
    expected = 1 if container_of(client).database.primary.dialect.name == "postgresql" else 2
    assert len([s for s in statements if "FROM recipe" in s]) == expected, statements
    statements.clear()
    for recipe in created:  # and kept: the recipes' own reads find them in the cache
        assert (await client.get(f"/api/v1/recipes/{recipe['id']}")).status_code == 200
    assert statements == []


async def test_results_are_cached_and_a_title_edit_invalidates_them(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any], statements: list[str]
) -> None:
    recipe = await api.create_recipe(author, **_recipe("Saffron buns"))
    await api.create_recipe(author, **_recipe("Saffron rice"))
    await _after_recipe_write(client)
    assert sorted(await _titles(client, "saffron")) == ["Saffron buns", "Saffron rice"]
    statements.clear()
    assert sorted(await _titles(client, "saffron")) == ["Saffron buns", "Saffron rice"]
    assert statements == []  # ids, and every recipe document, from the cache

    resp = await client.patch(
        f"/api/v1/recipes/{recipe['id']}", json={"title": "Cardamom buns"}, headers=author["headers"]
    )
    assert resp.status_code == 200
    await _after_recipe_write(client)
    body = await _search(client, "saffron")
    assert [i["title"] for i in body["items"]] == ["Saffron rice"]
    assert "Saffron buns" not in str(body)
    assert await _titles(client, "cardamom") == ["Cardamom buns"]


async def test_edits_search_does_not_read_and_deletions_keep_the_cached_pages(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any], statements: list[str]
) -> None:
    """Cached pages hold ids hydrated on every read: only what a search reads bumps the generation."""
    kept = await api.create_recipe(author, **_recipe("Quince paste"))
    gone = await api.create_recipe(author, **_recipe("Quince tart"))
    await _after_recipe_write(client)
    assert sorted(await _titles(client, "quince")) == ["Quince paste", "Quince tart"]
    cache = container_of(client).cache
    generation = await cache.generation(SEARCH_GENERATION_KEY)

    resp = await client.patch(
        f"/api/v1/recipes/{kept['id']}",
        json={"servings": 12, "steps": ["Stir."], "description": "Now without any fruit named here."},
        headers=author["headers"],
    )
    assert resp.status_code == 200
    assert (await client.delete(f"/api/v1/recipes/{gone['id']}", headers=author["headers"])).status_code == 204
    await container_of(client).events.relay.drain()  # the outbox's search.index hook: no bump either
    assert await cache.generation(SEARCH_GENERATION_KEY) == generation
    statements.clear()
    body = await _search(client, "quince")
    # The current document (also its new description), from the cached page of ids.
    assert [(i["title"], i["servings"], i["description"]) for i in body["items"]] == [
        ("Quince paste", 12, "Now without any fruit named here.")
    ]
    assert not [q for q in statements if "websearch_to_tsquery" in q or "MATCH" in q]  # the cached page of ids


async def test_a_write_and_its_outbox_repeat_bump_the_generation_once(
    client: httpx.AsyncClient, api: Api, author: dict[str, Any]
) -> None:
    """The writer bumps after commit; the relay's search.index repeat finds it done and leaves the pages alone."""
    container = container_of(client)
    await _after_recipe_write(client)
    before = await container.cache.generation(SEARCH_GENERATION_KEY)
    assert before is not None
    recipe = await api.create_recipe(author, **_recipe("Medlar jelly"))
    resp = await client.patch(
        f"/api/v1/recipes/{recipe['id']}", json={"title": "Medlar cheese"}, headers=author["headers"]
    )
    assert resp.status_code == 200
    await container.events.relay.drain()
    assert await container.cache.generation(SEARCH_GENERATION_KEY) == before + 2  # one per write, not two


async def test_bad_input_is_a_problem(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, **_recipe("Apple pie"))
    for params in ({}, {"q": ""}, {"q": "x" * 201}, {"q": "pie", "limit": 101}, {"q": "pie", "sort": "best"}):
        resp = await client.get(SEARCH, params=params)
        assert resp.status_code == 422, params
        assert resp.headers["content-type"] == "application/problem+json"
    for params, param in (
        ({"q": "-apple"}, "q"),
        ({"q": '"" - -'}, "q"),
        ({"q": "pie", "cursor": "garbage"}, "cursor"),
        ({"q": "pie", "tag": [f"t{i}" for i in range(11)]}, "tag"),
    ):
        resp = await client.get(SEARCH, params=params)
        assert resp.status_code == 400, params
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["param"] == param
    # A cursor only continues the search it came from.
    for i in range(3):
        await api.create_recipe(author, **_recipe(f"Pie {i}"))
    await _after_recipe_write(client)
    first = await _search(client, "pie", limit=1)
    other = await client.get(SEARCH, params={"q": "apple", "limit": 1, "cursor": first["next_cursor"]})
    assert other.status_code == 400
    assert "another search" in other.json()["detail"]
    # Operators and odd characters are just text.
    for q in ('pie" OR *', "NEAR(pie)", "pie AND -", "'; DROP TABLE recipe; --", "(pie", "pie^2 : *"):
        assert (await client.get(SEARCH, params={"q": q})).status_code in (200, 400), q


async def test_trending_searches(client: httpx.AsyncClient, api: Api, author: dict[str, Any]) -> None:
    await api.create_recipe(author, **_recipe("Saffron buns"))
    for q in ("Saffron", "saffron ", "paprika", "saffron"):
        await _search(client, q)
    await _search(client, "saff", prefix="true")  # type-ahead keystrokes are not searches
    first = await _search(client, "saffron", limit=1)
    assert first["next_cursor"] is None
    resp = await client.get(f"{SEARCH}/trending")
    assert resp.status_code == 200
    body = resp.json()
    assert body["window_hours"] == 24
    assert body["items"][:2] == [{"query": "saffron", "count": 4}, {"query": "paprika", "count": 1}]
    assert len((await client.get(f"{SEARCH}/trending", params={"limit": 1})).json()["items"]) == 1


async def test_redis_analytics_adapter(client: httpx.AsyncClient, settings: Any) -> None:
    if settings.redis.url is None:
        pytest.skip("needs Redis")
    analytics = RedisSearchAnalytics(redis_client(settings.redis.url, 0.5))
    try:
        for q in ("soup", "soup", "stew", "soup", f"rare {uuid.uuid4().hex}"):
            await analytics.record(q)
        top = await analytics.top(hours=24, limit=2)
        assert [(t.query, t.count) for t in top] == [("soup", 3), ("stew", 1)]
        ttl = await analytics.client.ttl(hour_key(hour_bucket(datetime.now(UTC))))
        assert 7 * 86400 < ttl <= 8 * 86400
    finally:
        await analytics.aclose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_redis_analytics_count_in_memory_and_push_in_one_round_trip(
    client: httpx.AsyncClient, settings: Any
) -> None:
    """A search costs no round trip: its count waits in memory for `push` (one pipeline, every second per process),
    and a push that fails keeps the counts for the next one (at least once: a push that timed out may have landed)."""
    now = datetime.now(UTC)
    analytics = RedisSearchAnalytics(redis_client(settings.redis.url, 0.5), failure_pause_seconds=0, clock=lambda: now)
    key, query = hour_key(hour_bucket(now)), f"pushed {uuid.uuid4().hex}"
    reachable = analytics.client
    try:
        await analytics.record(query)
        await analytics.record(query)
        assert await reachable.zscore(key, query) is None  # nothing sent yet
        analytics.client = redis_client(f"redis://127.0.0.1:{free_port()}", 0.5)  # refused
        try:
            assert await analytics.push() == 0
        finally:
            await analytics.client.aclose()
            analytics.client = reachable
        await analytics.record(query)
        assert await analytics.push() == 1
        assert await reachable.zscore(key, query) == 3
        assert await analytics.push() == 0  # nothing left
    finally:
        await analytics.aclose()


async def test_recipe_events_bump_the_search_generation(client: httpx.AsyncClient) -> None:
    container = container_of(client)
    registry = install_search_handlers(HandlerRegistry(), container.cache)
    cases = [
        (RECIPE_CREATED, {}, 1),
        (RECIPE_UPDATED, {"fields": ["title"]}, 1),
        (RECIPE_UPDATED, {"fields": ["is_public"]}, 1),
        (RECIPE_UPDATED, {"fields": ["steps", "servings", "description"]}, 0),  # hydration shows them current
        (RECIPE_DELETED, {}, 0),  # cached pages skip a deleted id when hydrated
    ]
    for event_id, (topic, payload, bumps) in enumerate(cases, start=1):
        before = await container.cache.generation(SEARCH_GENERATION_KEY)
        assert before is not None
        hooks = [h for h in registry.handlers(topic) if h.name == SEARCH_INDEX]
        assert len(hooks) == 1
        assert hooks[0].handler is not None
        event = Event(event_id, topic, uuid.uuid4(), payload, 0, datetime.now(UTC))
        await hooks[0].handler(event)
        assert await container.cache.generation(SEARCH_GENERATION_KEY) == before + bumps, (topic, payload)
        await hooks[0].handler(event)  # delivered again: the bump owed for one event happens once
        assert await container.cache.generation(SEARCH_GENERATION_KEY) == before + bumps, (topic, payload)
