"""The hot path's recipe documents (recipe/document.py, from flat rows) against the ORM + pydantic path.

Every seeded recipe, on both backends, with every part, none, and a mix: the serialized documents must be the
same bytes. They must also validate against the OpenAPI schema the API publishes for RecipeRead.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from potluck.cache.keys import recipe_key
from potluck.kit.media_keys import variant_key
from potluck.recipe.document import build_document, ordered
from potluck.recipe.models import Recipe
from potluck.recipe.repository import RecipeReads, RecipeRepository
from potluck.recipe.schemas import HEAVY_PARTS
from potluck.seed.loader import load
from tests.integration.conftest import Api
from tests.support.app import container_of
from tests.support.outbox import drain_until_settled
from tests.support.statements import DriverFetches

PART_SETS = [HEAVY_PARTS, frozenset(), frozenset({"tags", "nutrition"}), frozenset({"ingredients", "steps"})]


async def _seed(client: httpx.AsyncClient, api: Api) -> None:
    container = container_of(client)
    # A plain engine: the loader sets SQLite pragmas that the app's writer engine (BEGIN IMMEDIATE) refuses.
    engine = create_async_engine(container.settings.database.url)
    try:
        await load(engine, users=10, recipes=120, seed=11, password_hash="x" * 60)
    finally:
        await engine.dispose()
    # What the seed never makes: odd floats, null quantities, no parts at all, private, unicode, an image.
    author = await api.register()
    await api.create_recipe(
        author,
        title="Ünïcode “quotes” \\ back\nslash",
        ingredients=[
            {"name": "salt", "quantity": 0.1},
            {"name": "flour", "quantity": 1e-7, "unit": "g"},
            {"name": "water"},
            {"name": "sugar", "quantity": 1234567.5 / 10, "note": "ça va"},
        ],
        nutrition={"fat_g": 2.5},
    )
    await api.create_recipe(author, title="Bare", ingredients=[], steps=[], tags=[], nutrition=None, cuisine=None)
    await api.create_recipe(author, title="Hidden", is_public=False)
    pictured = await api.create_recipe(author, title="Pictured")
    key = variant_key(uuid.UUID(pictured["id"]), "0123456789abcdef" * 4, "medium")
    async with container.database.write_session() as session:
        await session.execute(update(Recipe).where(Recipe.id == uuid.UUID(pictured["id"])).values(image_key=key))


@pytest.mark.parametrize("parts", PART_SETS, ids=lambda p: ",".join(sorted(p)) or "none")
async def test_documents_are_the_orm_documents_byte_for_byte(
    client: httpx.AsyncClient, api: Api, parts: frozenset[str]
) -> None:
    await _seed(client, api)
    container = container_of(client)
    service = container.recipes
    async with container.database.read_session(primary=True) as session:
        repo = RecipeRepository(session)
        ids = list((await session.execute(select(Recipe.id).order_by(Recipe.id))).scalars())
        assert len(ids) > 120
        records = ordered(await repo.documents(ids, parts), ids)
        assert [r.id for r in records] == ids
        expected = {}
        for record in records:
            recipe = await repo.get(record.id, parts)
            assert recipe is not None
            expected[record.id] = orjson.dumps(service.document(recipe, parts))
            assert orjson.dumps(build_document(record, parts, service.media_base_url)) == expected[record.id]
    # Without a session (the cache's fills): on PostgreSQL prepared statements on the driver, for many ids and one.
    with pytest.MonkeyPatch.context() as patch:
        fetches = DriverFetches(patch)
        async with container.database.read_rows(primary=True) as read:
            reads = RecipeReads(read)
            many = await reads.documents(ids, parts)
            one_by_one = [record for i in ids[:25] for record in await reads.documents([i], parts)]
    assert fetches.count == (26 if container.database.dialect == "postgresql" else 0)
    for record in [*many, *one_by_one]:
        assert orjson.dumps(build_document(record, parts, service.media_base_url)) == expected[record.id]
    assert len(many) == len(ids)
    assert len(one_by_one) == 25


async def test_documents_validate_against_the_published_schema(client: httpx.AsyncClient, api: Api) -> None:
    await _seed(client, api)
    container = container_of(client)
    spec = (await client.get("/openapi.json")).json()
    validator = Draft202012Validator({"$ref": "#/components/schemas/RecipeRead", "components": spec["components"]})
    async with container.database.read_session(primary=True) as session:
        ids = list((await session.execute(select(Recipe.id))).scalars())
        records = await RecipeRepository(session).documents(ids, HEAVY_PARTS)
    assert len(records) == len(ids)
    properties = set(spec["components"]["schemas"]["RecipeRead"]["properties"])
    for record in records:
        doc: dict[str, Any] = build_document(record, HEAVY_PARTS, container.recipes.media_base_url)
        validator.validate(doc)
        assert set(doc) == properties


async def test_an_uncached_read_is_one_round_trip(
    client: httpx.AsyncClient, api: Api, statements: list[str], settings: Any
) -> None:
    """The cache loader reads a whole document in one statement on PostgreSQL (two on SQLite: rows, then parts)."""
    author = await api.register()
    recipe = await api.create_recipe(author)
    statements.clear()
    resp = await client.get(f"/api/v1/recipes/{recipe['id']}")
    assert resp.status_code == 200
    assert resp.content == orjson.dumps(recipe)  # the create response came from the ORM path
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == (1 if settings.database.url.startswith("postgresql") else 2), reads


async def test_get_cached_multi_gets_both_tiers_and_rechecks_visibility(
    client: httpx.AsyncClient, api: Api, statements: list[str]
) -> None:
    """Search hydration's multi-get: hits from either tier, visibility decided per viewer, misses left out."""
    author, other = await api.register(), await api.register()
    public = await api.create_recipe(author, title="Public")
    private = await api.create_recipe(author, title="Private", is_public=False)
    cold = await api.create_recipe(other, title="Cold")
    # recipe.created invalidates and warms each new recipe; let that finish so it cannot race the reads below.
    await drain_until_settled(container_of(client).relay)
    assert (await client.get(f"/api/v1/recipes/{public['id']}")).status_code == 200
    assert (await client.get(f"/api/v1/recipes/{private['id']}", headers=author["headers"])).status_code == 200
    recipes = container_of(client).recipes
    ids = [uuid.UUID(r["id"]) for r in (public, private, cold)]
    await recipes.cache.invalidate_strict([recipe_key(ids[2])])  # its recipe.created warmed it: make it cold
    statements.clear()
    anonymous = await recipes.get_cached(ids, None)
    as_author = await recipes.get_cached(ids, uuid.UUID(author["id"]))
    # No recipe read for any of it (the embedded default's own jobs may run other statements meanwhile).
    assert [s for s in statements if "FROM recipe" in s] == []
    assert set(anonymous) == set(as_author) == set(ids[:2])  # the cold one is for `get` to load and fill
    public_hit = anonymous[ids[0]]
    assert public_hit is not None
    assert public_hit.document()["title"] == "Public"
    assert anonymous[ids[1]] is None  # private: invisible to others through the cache too
    private_hit = as_author[ids[1]]
    assert private_hit is not None
    assert private_hit.document()["title"] == "Private"
