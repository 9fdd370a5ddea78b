"""The steady mixed load a drill runs under: readers and one writer through the gateway, every request recorded.

Readers GET recipes (over a fixed set of ids) and list pages, without cookies, so any replica may answer. The
writer, signed in as its own author whom a few follower accounts follow, creates recipes and PATCHes them with
If-Match; every acknowledged (2xx) write is kept with what it wrote, so a drill can check afterwards that each is
in the database. Each request is bounded by a timeout; a timeout, a connection error or a 5xx is a failure.
Analysis (failures in a window, write outage, p99, acknowledged writes missing) is plain functions of the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx

API = "/api/v1"
PASSWORD = "drill-password-1"
# A 412 answers If-Match on a lost update: an expected answer, not a failure (the writer re-reads the ETag).
EXPECTED_CONFLICT = 412


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: when it started (time.monotonic()), how long it took, and whether it succeeded."""

    kind: str  # "read" or "write"
    op: str
    started: float
    latency: float
    ok: bool
    status: int | None
    error: str = ""

    @property
    def ended(self) -> float:
        return self.started + self.latency


@dataclass(frozen=True, slots=True)
class AckedWrite:
    """A write the API acknowledged: the recipe it created or changed and the title it left there."""

    recipe_id: str
    title: str
    at: float


@dataclass(frozen=True, slots=True)
class LoadConfig:
    readers: int = 4
    read_timeout: float = 2.0
    write_timeout: float = 5.0
    read_pause: float = 0.01
    write_pause: float = 0.1
    followers: int = 3
    read_ids: int = 50


@dataclass
class Author:
    id: str
    headers: dict[str, str]
    follower_ids: list[str] = field(default_factory=list)


@dataclass
class Load:
    """Runs until `stop()`; `samples` and `acked` fill as it goes."""

    base_url: str
    config: LoadConfig = field(default_factory=LoadConfig)
    samples: list[Sample] = field(default_factory=list)
    acked: list[AckedWrite] = field(default_factory=list)
    # Every title the writer sent per recipe, in order (acknowledged or not): a write that timed out may still
    # have committed, so a later unacknowledged title may legitimately have replaced an acknowledged one.
    attempts: dict[str, list[str]] = field(default_factory=dict)
    author: Author | None = None
    read_ids: list[str] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def _client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.base_url, timeout=30, trust_env=False)
        self._clients.append(client)
        return client

    async def start(self) -> None:
        """Sign up the author and its followers, pick the ids to read, then start the readers and the writer."""
        setup = self._client()
        self.author = await _author(setup, self.config.followers)
        self.read_ids = await _recipe_ids(setup, self.config.read_ids)
        for index in range(self.config.readers):
            self._tasks.append(asyncio.create_task(self._reader(index)))
        self._tasks.append(asyncio.create_task(self._writer()))

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients:
            await client.aclose()

    async def run_for(self, seconds: float) -> None:
        """Let the load run `seconds` more (returns early when stopped)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _timed(
        self, kind: str, op: str, timeout: float, send: Awaitable[httpx.Response], ok_statuses: Iterable[int]
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                response = await send
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            self.samples.append(Sample(kind, op, started, time.monotonic() - started, False, None, type(exc).__name__))
            return None
        ok = response.status_code in ok_statuses
        error = "" if ok else response.text[:200]
        self.samples.append(Sample(kind, op, started, time.monotonic() - started, ok, response.status_code, error))
        return response

    async def _reader(self, index: int) -> None:
        client = self._client()  # its own: no cookie routes it to the primary
        rng = random.Random(index)
        ids = self.read_ids or [str(uuid.uuid4())]
        timeout = self.config.read_timeout
        for n in itertools.count():
            if self._stopping.is_set():
                return
            if n % 10 == 9:
                await self._timed("read", "list", timeout, client.get(f"{API}/recipes?limit=20"), (200,))
            else:
                url = f"{API}/recipes/{ids[min(int(rng.paretovariate(1.2)) - 1, len(ids) - 1)]}"
                await self._timed("read", "get", timeout, client.get(url), (200,))
            await asyncio.sleep(self.config.read_pause)

    async def _writer(self) -> None:
        assert self.author is not None
        client = self._client()
        headers = self.author.headers
        etags: dict[str, str] = {}
        for n in itertools.count():
            if self._stopping.is_set():
                return
            title = f"drill {n} {uuid.uuid4().hex[:8]}"
            if n % 2 == 0 or not etags:
                body = {"title": title, "cuisine": "drill", "steps": ["Stir."]}
                send = client.post(f"{API}/recipes", json=body, headers=headers)
                response = await self._timed("write", "create", self.config.write_timeout, send, (201,))
                if response is not None and response.status_code == 201:
                    recipe_id = str(response.json()["id"])
                    self.attempts[recipe_id] = [title]
                    self._ack(recipe_id, title, response, etags)
            else:
                recipe_id = random.choice(list(etags)[-5:])
                self.attempts[recipe_id].append(title)
                patch_headers = {**headers, "If-Match": etags[recipe_id]}
                url = f"{API}/recipes/{recipe_id}"
                send = client.patch(url, json={"title": title}, headers=patch_headers)
                ok_statuses = (200, EXPECTED_CONFLICT)
                response = await self._timed("write", "patch", self.config.write_timeout, send, ok_statuses)
                if response is not None and response.status_code == 200:
                    self._ack(recipe_id, title, response, etags)
                elif response is not None and response.status_code == EXPECTED_CONFLICT:
                    etags.pop(recipe_id)  # a write that timed out had landed: stop patching that one
            await asyncio.sleep(self.config.write_pause)

    def _ack(self, recipe_id: str, title: str, response: httpx.Response, etags: dict[str, str]) -> None:
        self.acked.append(AckedWrite(recipe_id, title, time.monotonic()))
        etag = response.headers.get("etag")
        if etag:
            etags[recipe_id] = etag


async def _register(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    name = f"drill{uuid.uuid4().hex[:10]}"
    body = {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
    (await client.post(f"{API}/auth/register", json=body)).raise_for_status()  # 202: no profile in the answer
    token = await client.post(f"{API}/auth/token", data={"username": name, "password": PASSWORD})
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    me = await client.get(f"{API}/users/me", headers=headers)
    me.raise_for_status()
    return str(me.json()["id"]), headers


async def _author(client: httpx.AsyncClient, followers: int) -> Author:
    author_id, headers = await _register(client)
    author = Author(author_id, headers)
    for _ in range(followers):
        follower_id, follower_headers = await _register(client)
        (await client.put(f"{API}/users/{author_id}/follow", headers=follower_headers)).raise_for_status()
        author.follower_ids.append(follower_id)
    return author


async def _recipe_ids(client: httpx.AsyncClient, count: int) -> list[str]:
    response = await client.get(f"{API}/recipes", params={"limit": min(max(count, 1), 100), "fields": "id"})
    response.raise_for_status()
    return [str(item["id"]) for item in response.json()["items"]][:count]


# ------------------------------------------------------------------------------------------------ analysis


def in_window(samples: Iterable[Sample], kind: str, start: float = -math.inf, end: float = math.inf) -> list[Sample]:
    """The samples of `kind` that started in [start, end)."""
    return [s for s in samples if s.kind == kind and start <= s.started < end]


def failures(samples: Iterable[Sample], kind: str, start: float = -math.inf, end: float = math.inf) -> int:
    return sum(not s.ok for s in in_window(samples, kind, start, end))


def percentile(samples: Sequence[Sample], q: float) -> float | None:
    """The q-quantile (0..1) of the latencies, in seconds (nearest rank); None without samples."""
    if not samples:
        return None
    latencies = sorted(s.latency for s in samples)
    return latencies[min(len(latencies) - 1, max(0, math.ceil(q * len(latencies)) - 1))]


def p99(samples: Iterable[Sample], start: float = -math.inf, end: float = math.inf) -> float | None:
    """p99 latency of every request (reads and writes) that started in [start, end)."""
    chosen = [s for s in samples if start <= s.started < end]
    return percentile(chosen, 0.99)


@dataclass(frozen=True, slots=True)
class Outage:
    first_failure: float | None
    recovered: float | None

    @property
    def seconds(self) -> float | None:
        """First failed write to the first successful write after it; 0 without failures; None if never back."""
        if self.first_failure is None:
            return 0.0
        if self.recovered is None:
            return None
        return self.recovered - self.first_failure


def write_outage(samples: Iterable[Sample], start: float = -math.inf) -> Outage:
    """From the first failed write (started at or after `start`) to the end of the first successful write after
    it: what a client saw of the outage."""
    writes = sorted(in_window(samples, "write", start), key=lambda s: s.started)
    first = next((s for s in writes if not s.ok), None)
    if first is None:
        return Outage(None, None)
    later = [s for s in writes if s.ok and s.started >= first.started]
    return Outage(first.started, min((s.ended for s in later), default=None))


async def missing_acked(load: Load, dsn: str) -> list[AckedWrite]:
    """The acknowledged writes the database (at `dsn`, the primary) does not hold: the recipe is gone, or holds
    neither the last acknowledged title nor one the writer sent after it."""
    last: dict[str, AckedWrite] = {}
    for write in load.acked:
        last[write.recipe_id] = write
    if not last:
        return []
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT id::text AS id, title FROM recipe WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in last]
        )
    finally:
        await conn.close()
    found = {row["id"]: row["title"] for row in rows}
    missing: list[AckedWrite] = []
    for recipe_id, write in last.items():
        sent = load.attempts.get(recipe_id, [write.title])
        allowed = sent[sent.index(write.title) :] if write.title in sent else [write.title]
        if found.get(recipe_id) not in allowed:
            missing.append(write)
    return missing
