"""The database baseline for bench/cache_read.py: bare FastAPI + raw asyncpg, one query per uncached read.

``GET /api/v1/recipes/{id}`` runs one statement in which PostgreSQL builds the whole recipe document
(json_build_object / json_agg over the recipe, its author, ingredients, steps, tags and nutrition) and answers
with the text it returns: no ORM, no cache, no middleware, no validation. It is what an uncached API read
could cost at best on this machine. The document has the API's content (the same keys and values), not its
exact bytes (PostgreSQL's JSON spacing and timestamp spelling differ). Run it like the API::

    POTLUCK_ASYNCPG_DSN=postgresql://... uv run uvicorn bench.asyncpg_app:app --port 8001 --no-access-log
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Response

DSN_ENV = "POTLUCK_ASYNCPG_DSN"
MEDIA_BASE = "/media"  # the API's default media.base_url: image URLs are that prefix and the key

DOCUMENT_SQL = """
SELECT json_build_object(
    'id', r.id, 'title', r.title, 'description', r.description, 'cuisine', r.cuisine,
    'prep_minutes', r.prep_minutes, 'cook_minutes', r.cook_minutes, 'total_minutes', r.prep_minutes + r.cook_minutes,
    'servings', r.servings, 'difficulty', r.difficulty, 'is_public', r.is_public,
    'image_url', CASE WHEN r.image_key IS NOT NULL THEN $2 || '/' || r.image_key END,
    'images', CASE WHEN r.image_key IS NOT NULL THEN json_build_object(
        'thumb', $2 || '/' || regexp_replace(r.image_key, '[a-z]+\\.webp$', 'thumb.webp'),
        'medium', $2 || '/' || regexp_replace(r.image_key, '[a-z]+\\.webp$', 'medium.webp'),
        'large', $2 || '/' || regexp_replace(r.image_key, '[a-z]+\\.webp$', 'large.webp')) END,
    'rating', r.rating_avg, 'rating_count', r.rating_count, 'view_count', r.view_count,
    'favorite_count', r.favorite_count,
    'author', json_build_object('id', u.id, 'username', u.username, 'display_name', u.display_name),
    'created_at', r.created_at, 'updated_at', r.updated_at, 'version', r.version,
    'ingredients', COALESCE((
        SELECT json_agg(json_build_object('name', i.name, 'quantity', ri.quantity, 'unit', ri.unit, 'note', ri.note)
                        ORDER BY ri.position)
        FROM recipe_ingredient ri JOIN ingredient i ON i.id = ri.ingredient_id WHERE ri.recipe_id = r.id), '[]'),
    'steps', COALESCE((SELECT json_agg(s.text ORDER BY s.position) FROM step s WHERE s.recipe_id = r.id), '[]'),
    'tags', COALESCE((
        SELECT json_agg(t.name ORDER BY t.name)
        FROM recipe_tag rt JOIN tag t ON t.id = rt.tag_id WHERE rt.recipe_id = r.id), '[]'),
    'nutrition', (
        SELECT json_build_object(
            'calories', n.calories, 'protein_g', n.protein_g, 'fat_g', n.fat_g,
            'carbohydrates_g', n.carbohydrates_g, 'fiber_g', n.fiber_g, 'sugar_g', n.sugar_g,
            'sodium_mg', n.sodium_mg)
        FROM nutrition n WHERE n.recipe_id = r.id)
)::text
FROM recipe r JOIN user_account u ON u.id = r.author_id
WHERE r.id = $1
"""

_state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        raise RuntimeError(f"{DSN_ENV} must name the database")
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    _state["pool"] = pool
    yield
    await pool.close()


app = FastAPI(title="Potluck asyncpg baseline", lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, int]:
    return {"ok": 1}


@app.get("/api/v1/recipes/{recipe_id}")
async def get_recipe(recipe_id: str) -> Response:
    try:
        rid = uuid.UUID(recipe_id)
    except ValueError:
        return Response(status_code=404)
    pool: asyncpg.Pool = _state["pool"]
    async with pool.acquire() as conn:
        document = await conn.fetchval(DOCUMENT_SQL, rid, MEDIA_BASE)
    if document is None:
        return Response(status_code=404)
    return Response(document.encode(), media_type="application/json")
