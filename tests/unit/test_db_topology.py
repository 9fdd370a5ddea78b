"""The topology watcher of a pool that only uses the primary (the background pool): it follows the leader and
leaves the replica set alone."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from potluck.config import DatabaseSettings
from potluck.db.engine import Database
from potluck.db.topology import Members, TopologyWatcher

URL = "postgresql+asyncpg://potluck@127.0.0.1:1/potluck?host=127.0.0.1:2&target_session_attrs=read-write"


class Follower:
    def __init__(self) -> None:
        self.replica_sets: list[dict[str, str]] = []
        self.leader_changes = 0

    def replica_url(self, host: str, port: int) -> str:
        return f"postgresql+asyncpg://{host}:{port}/potluck"

    async def set_replicas(self, urls: Mapping[str, str]) -> None:
        self.replica_sets.append(dict(urls))

    async def leader_changed(self) -> None:
        self.leader_changes += 1


@pytest.mark.parametrize("follow_replicas", [True, False])
async def test_a_leader_change_is_followed_and_replicas_only_when_asked(
    follow_replicas: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower = Follower()
    watcher = TopologyWatcher(follower, ["http://127.0.0.1:1"], follow_replicas=follow_replicas)
    answers = iter(
        [
            Members("127.0.0.1:1", 1, {"127.0.0.1:2": ("127.0.0.1", 2)}),
            Members("127.0.0.1:2", 2, {"127.0.0.1:1": ("127.0.0.1", 1)}),
        ]
    )

    async def fetch() -> Members:
        return next(answers)

    monkeypatch.setattr(watcher, "fetch", fetch)
    try:
        await watcher.poll()
        await watcher.poll()
    finally:
        await watcher.stop()
    assert follower.leader_changes == 1
    assert len(follower.replica_sets) == (2 if follow_replicas else 0)


async def test_the_background_pool_watches_the_leader_without_replicas() -> None:
    settings = DatabaseSettings(patroni_urls=["http://127.0.0.1:1"], replica_urls=["postgresql+asyncpg://r@h:3/p"])
    database = Database.from_settings(URL, settings, primary_only=True)
    try:
        assert database.topology is not None
        assert database.topology.follow_replicas is False
        assert database.replicas == []
        assert database.monitor is None
    finally:
        await database.dispose()
