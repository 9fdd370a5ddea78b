"""The ceiling for bench/cache_read.py: FastAPI serving the same recipe bytes from a dict, and nothing else.

It loads the documents the real API returned (file named by POTLUCK_CEILING_DOCS, one ``<id>\\t<json>`` per
line) at startup and answers ``GET /api/v1/recipes/{id}`` with the stored bytes: no middleware, no dependencies,
no cache layers. Run it like the API, one uvicorn process per core::

    POTLUCK_CEILING_DOCS=docs.tsv uv run uvicorn bench.ceiling_app:app --port 8001 --no-access-log
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Response

DOCS_ENV = "POTLUCK_CEILING_DOCS"


def load_documents(path: Path) -> dict[str, bytes]:
    """Read ``<id>\\t<json bytes>`` lines (JSON from orjson never contains a raw newline)."""
    docs: dict[str, bytes] = {}
    with path.open("rb") as fh:
        for line in fh:
            recipe_id, sep, payload = line.rstrip(b"\n").partition(b"\t")
            if sep:
                docs[recipe_id.decode()] = payload
    return docs


_documents: dict[str, bytes] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    path = os.environ.get(DOCS_ENV)
    if not path:
        raise RuntimeError(f"{DOCS_ENV} must name the documents file")
    _documents.update(load_documents(Path(path)))
    yield
    _documents.clear()


app = FastAPI(title="Potluck ceiling", lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, int]:
    return {"documents": len(_documents)}


@app.get("/api/v1/recipes/{recipe_id}")
async def get_recipe(recipe_id: str) -> Response:
    payload = _documents.get(recipe_id)
    if payload is None:
        return Response(status_code=404)
    return Response(payload, media_type="application/json")
