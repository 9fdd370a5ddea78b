"""Following the leader under Patroni: the cluster's members, read from Patroni's REST API (`GET /cluster`,
any member answers for all) about once a second.

* The replica set is the members Patroni calls replicas that are running: a promoted replica leaves the read
  rotation, a rejoined old primary (rewound, streaming) enters it.
* When the leader changes, every primary connection opened before is retired, so no connection to the demoted
  (or dead) node is used again; new ones find the new leader through the multi-host URL
  (target_session_attrs=read-write).

A pool that only writes and reads the primary (the background pool of the relay and the scheduled jobs) runs the
same watcher with `follow_replicas=False`: it only retires connections when the leader moves.

Writes never wait for this poll: the multi-host URL finds the leader by itself. The poll only makes sure pooled
connections do not outlive the leader they were opened to, and keeps the replica set current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

logger = logging.getLogger("potluck.db.topology")

REPLICA_ROLES = ("replica", "sync_standby")
RUNNING_STATES = ("running", "streaming")


class LeaderFollower(Protocol):
    """What the watcher drives (the Database)."""

    def replica_url(self, host: str, port: int) -> str: ...

    async def set_replicas(self, urls: Mapping[str, str]) -> None: ...

    async def leader_changed(self) -> None: ...


@dataclass(frozen=True)
class Members:
    """The cluster as one /cluster answer shows it: the leader (host:port), its timeline, running replicas."""

    leader: str | None
    timeline: int | None
    replicas: dict[str, tuple[str, int]]


def members_of(cluster: Mapping[str, Any]) -> Members:
    """Pure: /cluster's JSON -> Members."""
    leader: str | None = None
    timeline: int | None = None
    replicas: dict[str, tuple[str, int]] = {}
    for member in cluster.get("members", []):
        host, port = member.get("host"), member.get("port")
        if not host or not port:
            continue
        name = f"{host}:{port}"
        if member.get("role") == "leader" and member.get("state") == "running":
            leader, timeline = name, member.get("timeline")
        elif member.get("role") in REPLICA_ROLES and member.get("state") in RUNNING_STATES:
            replicas[name] = (host, int(port))
    return Members(leader, timeline, replicas)


class TopologyWatcher:
    def __init__(
        self,
        database: LeaderFollower,
        urls: Sequence[str],
        *,
        interval: float = 1.0,
        timeout: float = 0.5,
        follow_replicas: bool = True,
    ) -> None:
        self.database = database
        self.follow_replicas = follow_replicas
        self.urls = list(urls)
        self.interval = interval
        self.timeout = timeout
        self.members: Members | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def fetch(self) -> Members | None:
        """/cluster from the first member that answers; None when none does."""
        for url in self.urls:
            try:
                response = await self._client.get(f"{url.rstrip('/')}/cluster")
                body = response.json()
            except (httpx.HTTPError, ValueError):
                continue
            if isinstance(body, dict) and "members" in body:
                return members_of(body)
        return None

    async def poll(self) -> None:
        """Read the cluster once and apply what changed."""
        members = await self.fetch()
        if members is None:
            logger.warning("db.topology_unreachable", extra={"urls": self.urls})
            return
        previous = self.members
        self.members = members
        if self.follow_replicas:
            urls = {name: self.database.replica_url(host, port) for name, (host, port) in members.replicas.items()}
            await self.database.set_replicas(urls)
        if previous is not None and members.leader is not None and members.leader != previous.leader:
            logger.warning(
                "db.leader_moved", extra={"from": previous.leader, "to": members.leader, "timeline": members.timeline}
            )
            await self.database.leader_changed()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="potluck-topology")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except Exception:  # never let the watcher die: the next poll may succeed
                logger.exception("db.topology_poll_failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
