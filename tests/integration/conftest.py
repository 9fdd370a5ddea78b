"""The API against real databases: every test gets a fresh, migrated database (SQLite file or PostgreSQL).

PostgreSQL databases are cloned from a migrated template (CREATE DATABASE ... TEMPLATE), so isolation costs
one clone per test rather than a migration.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import event
from sqlalchemy.engine import make_url

from potluck.app import create_app
from potluck.config import (
    ApiSettings,
    AuthSettings,
    CacheSettings,
    DatabaseSettings,
    ObservabilitySettings,
    RedisSettings,
    Settings,
    ThrottleSettings,
)
from potluck.db.engine import Database, create_engine
from potluck.db.migrate import upgrade
from tests.support.app import METRICS_PORT, AppClient, container_of

# The embedded default (SQLite, in-process cache) and the full topology (PostgreSQL, Redis cache).
BACKENDS = ["sqlite", "postgres"]
_counter = itertools.count()


def _fast_auth() -> AuthSettings:
    # argon2id still, with test-sized costs: the suite hashes hundreds of passwords.
    return AuthSettings(
        secret_key="test-secret-key-that-is-long-enough-for-hs256",  # type: ignore[arg-type]
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )


def relaxed_throttles() -> ThrottleSettings:
    # The suite registers hundreds of accounts from one address; tests of the throttles set their own limits.
    return ThrottleSettings(register_per_address=1_000_000)


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", DatabaseSettings())
    await upgrade(engine)
    await engine.dispose()
    return path


@pytest.fixture(scope="session")
async def pg_template(pg_cluster: Any) -> str:
    """The `potluck` database on the primary, migrated once; tests clone it."""
    url = pg_cluster.dsn("primary")
    engine = create_engine(url, DatabaseSettings())
    await upgrade(engine)
    await engine.dispose()
    return url


async def _clone_pg(template_url: str) -> str:
    url = make_url(template_url)
    name = f"t_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
async def pg_database_url(pg_template: str) -> AsyncIterator[str]:
    url = await _clone_pg(pg_template)
    yield url
    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database(pg_database_url: str) -> AsyncIterator[Database]:
    """A Database (primary only, two pooled connections) on a new migrated PostgreSQL database."""
    database = Database.from_settings(pg_database_url, DatabaseSettings(url=pg_database_url, pool_size=2))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "potluck.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture(scope="session")
def audited_redis(redis_server: Any) -> Iterator[Any]:
    """The shared Redis; at the end of the session, no KEYS command may have run against it (property 4)."""
    yield redis_server
    if redis_server.ping():
        with redis.Redis.from_url(redis_server.url) as r:
            stats = r.info("commandstats")
        assert "cmdstat_keys" not in stats, f"KEYS ran against the cache: {stats['cmdstat_keys']}"


@pytest.fixture
def redis_url(database_url: str, request: pytest.FixtureRequest) -> str | None:
    """The full topology pairs PostgreSQL with the real Redis (flushed per test); SQLite runs without Redis."""
    if database_url.startswith("sqlite"):
        return None
    server = request.getfixturevalue("audited_redis")
    with redis.Redis.from_url(server.url) as r:
        r.flushall()
    url: str = server.url
    return url


@pytest.fixture
def settings(database_url: str, redis_url: str | None, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=database_url, pool_size=5, max_overflow=5),
        redis=RedisSettings(url=redis_url),
        cache=CacheSettings(test_hooks=True),
        auth=_fast_auth(),
        observability=ObservabilitySettings(metrics_port=METRICS_PORT),
        throttle=relaxed_throttles(),
        # Tests that fire hundreds of requests at one in-process app are not overload tests: no shedding here
        # (tests/integration/test_load_shed.py sets its own bound).
        api=ApiSettings(max_in_flight=0),
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as http:
        yield http


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[AppClient]:
    """An app with its lifespan running, and a client on it; `container_of(client)` reaches the app's container."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        container = app.state.container
        if container.cache.bus is not None:
            await asyncio.wait_for(container.cache.bus.connected.wait(), 5)
        async with AppClient(app) as http:
            yield http


class Api:
    """Small helpers over the HTTP API, so tests read as what a client does."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def register(
        self, username: str | None = None, password: str = "correct horse battery", **extra: Any
    ) -> dict[str, Any]:
        username = username or f"u{uuid.uuid4().hex[:10]}"
        resp = await self.http.post(
            "/api/v1/auth/register",
            json={"email": f"{username}@example.com", "username": username, "password": password, **extra},
        )
        assert resp.status_code == 202, resp.text
        token = await self.http.post("/api/v1/auth/token", data={"username": username, "password": password})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        me = await self.http.get("/api/v1/users/me", headers=headers)
        assert me.status_code == 200, me.text
        user: dict[str, Any] = me.json()
        user["headers"] = headers
        user["tokens"] = token.json()
        return user

    async def create_recipe(self, user: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": "Tomato soup",
            "description": "A warm soup.",
            "cuisine": "italian",
            "prep_minutes": 10,
            "cook_minutes": 30,
            "servings": 4,
            "difficulty": "easy",
            "ingredients": [
                {"name": "Tomato", "quantity": 6, "unit": "piece"},
                {"name": "olive oil", "quantity": 2, "unit": "tbsp", "note": "extra virgin"},
            ],
            "steps": ["Chop the tomatoes.", "Simmer for 30 minutes."],
            "tags": ["soup", "vegetarian"],
            "nutrition": {"calories": 180, "protein_g": 4},
        }
        body.update(overrides)
        resp = await self.http.post("/api/v1/recipes", json=body, headers=user["headers"])
        assert resp.status_code == 201, resp.text
        recipe: dict[str, Any] = resp.json()
        return recipe


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


AsyncFactory = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def statements(client: httpx.AsyncClient) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the test runs (primary, primary reader and replicas)."""
    database = container_of(client).database
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engines = {database.primary, database.primary_reader, *database.replicas}
    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    for engine in engines:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
