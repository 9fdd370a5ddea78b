"""What startup built is left out of the garbage collector's full collections while the app runs (kit/heap.py)."""

from __future__ import annotations

import gc
from pathlib import Path

import httpx

from potluck.app import create_app
from potluck.config import ApiSettings, AuthSettings, DatabaseSettings, Settings
from potluck.kit import heap


def _settings(tmp_path: Path, *, freeze_heap: bool) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'potluck.db'}"),
        auth=AuthSettings(secret_key="test-secret-key-that-is-long-enough-for-hs256"),
        api=ApiSettings(freeze_heap=freeze_heap),
    )


def test_freeze_moves_what_exists_out_of_collections_and_thaw_gives_it_back() -> None:
    held = [[] for _ in range(1000)]  # container objects the collector tracks
    try:
        assert heap.freeze() >= len(held)
        assert gc.get_freeze_count() >= len(held)
        gc.collect()  # a full collection: frozen objects stay out of it
        assert gc.get_freeze_count() >= len(held)
    finally:
        heap.thaw()
    assert gc.get_freeze_count() == 0


async def test_a_running_app_has_startup_frozen_until_it_stops(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, freeze_heap=True))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # modules, routes, models: what startup built
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://potluck.test") as c:
            assert (await c.get("/healthz")).status_code == 200
    assert gc.get_freeze_count() == 0


async def test_freezing_is_a_setting(tmp_path: Path) -> None:
    before = gc.get_freeze_count()
    app = create_app(_settings(tmp_path, freeze_heap=False))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == before
