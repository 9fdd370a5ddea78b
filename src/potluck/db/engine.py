"""Engines for the primary and the replicas, and the choice of which one serves a session.

Where a replica is chosen: `Database.read_session`. Writes, and reads inside a write transaction, go to the
primary; other reads go round-robin over the replicas the monitor considers healthy; a read that carries a
consistency token goes only to a replica on the token's timeline known to have replayed past it, else to the
primary. Under Patroni the replica set changes at run time (`set_replicas`, from db/topology.py) and a new
leader retires the primary's older connections (`leader_changed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from potluck.config import DatabaseSettings
from potluck.db.consistency import ConsistencyToken, format_token, has_write
from potluck.db.lag import format_lsn, parse_lsn
from potluck.db.pools import create_engine
from potluck.db.replicas import PRIMARY_POSITION, ReplicaMonitor, ReplicaState
from potluck.db.retry import note_retryable
from potluck.db.session import ReadRows, ReadSession, WriteSession
from potluck.db.topology import TopologyWatcher
from potluck.errors import LOST_PRIMARY_MARKERS

# Statement times: a primary-key lookup is well under a millisecond, a search or a fan-out tens of milliseconds.
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

logger = logging.getLogger("potluck.db")


class Closable(Protocol):
    async def close(self) -> None: ...


Reading = TypeVar("Reading", bound=Closable)


class LeaderUnavailableError(ConnectionError):
    """No node accepted a connection as the leader within `leader_wait_seconds` (a 503 like any lost server). Its
    own type so that a replica session it is raised inside does not take it for the replica's failure."""


class ReplicaUnavailableError(Exception):
    """A replica failed during a read; the read is safe to run again elsewhere."""


def _lost_connection(exc: BaseException) -> bool:
    """The server went away (or refused to go on), as opposed to an error in the statement itself: among them a
    fast shutdown ending the session (57P01) and asyncpg's "another operation is in progress" on a connection
    broken mid-statement, which the dialect does not count as disconnects."""
    if isinstance(exc, OSError | OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    message = str(exc.orig if exc.orig is not None else exc).lower()
    return exc.connection_invalidated or any(marker in message for marker in LOST_PRIMARY_MARKERS)


async def _open(engine: AsyncEngine) -> AsyncConnection:
    return await engine.connect()


async def _close_session(reading: Closable, connection: AsyncConnection, *, discard: bool = False) -> None:
    """`discard`: its server failed mid-statement; the connection is dropped, not pooled (an autocommit read has no
    rollback on return whose failure would drop it)."""
    with contextlib.suppress(Exception):
        await reading.close()
    if discard:
        with contextlib.suppress(Exception):
            await connection.invalidate()
    await _close_quietly(connection)


async def _close_quietly(connection: AsyncConnection) -> None:
    with contextlib.suppress(Exception):  # the connection may have died with its server
        await connection.close()


def _replica_name(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host}:{parsed.port}"


class Database:
    """The primary (writes, and reads that must see them) and the replicas (other reads, round-robin)."""

    def __init__(
        self,
        primary: AsyncEngine,
        replicas: Sequence[tuple[str, AsyncEngine]] = (),
        primary_reader: AsyncEngine | None = None,
        *,
        registry: CollectorRegistry | None = None,
        settings: DatabaseSettings | None = None,
        dynamic_replicas: bool = False,
    ) -> None:
        """`dynamic_replicas`: the replica set comes from the cluster at run time (set_replicas), so the monitor
        runs even while it is empty."""
        settings = settings or DatabaseSettings()
        self.settings = settings
        self._exported = registry is not None
        self.topology: TopologyWatcher | None = None
        self.primary = primary
        # Reads on the primary use their own engine where the dialect needs one (SQLite: no write lock for reads).
        self.primary_reader = primary_reader or primary
        self.replica_states = [ReplicaState(name, engine) for name, engine in replicas]
        self.replicas = [state.engine for state in self.replica_states]
        self._round_robin = itertools.count()
        # Each engine's autocommit variant (same pool) for reads: no BEGIN and no ROLLBACK around a SELECT.
        self._autocommit: dict[AsyncEngine, AsyncEngine] = {}
        self._generation = 0  # bumped by leader_changed
        self._retired: list[AsyncEngine] = []  # departed replicas' engines, disposed once idle
        # Connects and closes abandoned on a replica that stopped answering: they end on their own time.
        self._abandoned: set[asyncio.Task[Any]] = set()
        # Called with each replica engine created at run time (set_replicas): tracing listens to it too.
        self.engine_listeners: list[Callable[[AsyncEngine], None]] = []
        if self.primary.dialect.name == "postgresql":
            for engine in {self.primary, self.primary_reader}:
                self._follow_leader(engine)
        self.queries = Counter(
            "potluck_db_queries_total",
            "SQL statements sent, by database role.",
            ["role", "node"],
            registry=registry or CollectorRegistry(),
        )
        self.query_seconds = Histogram(
            "potluck_db_query_duration_seconds",
            "Time from sending a SQL statement to its result (the driver's round trip), by database role.",
            ["role"],
            buckets=QUERY_BUCKETS,
            registry=registry or CollectorRegistry(),
        )
        # Only a Database whose registry is exported counts (the background pool's has none): in multiprocess
        # mode every counter writes to the shared files whatever its registry, and a second counter with the same
        # name and labels in one process would overwrite the first's value there.
        if registry is not None:
            self._count_queries(self.primary, "primary", "primary")
            if self.primary_reader is not self.primary:
                self._count_queries(self.primary_reader, "primary", "primary")
            for state in self.replica_states:
                self._count_queries(state.engine, "replica", state.name)
        self.monitor = (
            ReplicaMonitor(
                primary,
                self.replica_states,
                registry or CollectorRegistry(),
                interval=settings.lag_check_interval_seconds,
                max_lag_seconds=settings.replica_max_lag_seconds,
                on_driver=self._prepared_on_driver,
            )
            if self.replica_states or dynamic_replicas
            else None
        )

    @classmethod
    def from_settings(
        cls,
        url: str,
        settings: DatabaseSettings,
        registry: CollectorRegistry | None = None,
        *,
        primary_only: bool = False,
    ) -> Database:
        """`primary_only`: no replicas (the background pool); under Patroni it still follows the leader."""
        if primary_only:
            settings = settings.model_copy(update={"replica_urls": []})
        primary = create_engine(url, settings)
        reader = create_engine(url, settings, sqlite_writer=False) if primary.dialect.name == "sqlite" else None
        bound = settings.replica_read_timeout_seconds
        replicas = [(_replica_name(u), create_engine(u, settings, read_timeout=bound)) for u in settings.replica_urls]
        dynamic = bool(settings.patroni_urls) and not primary_only
        database = cls(primary, replicas, reader, registry=registry, settings=settings, dynamic_replicas=dynamic)
        if settings.patroni_urls:
            database.topology = TopologyWatcher(
                database,
                settings.patroni_urls,
                interval=settings.topology_interval_seconds,
                follow_replicas=not primary_only,
            )
        return database

    def _count_queries(self, engine: AsyncEngine, role: str, node: str) -> None:
        counter = self.queries.labels(role, node)
        timer = self.query_seconds.labels(role)

        def before(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
            counter.inc()
            context._potluck_started = time.perf_counter()

        def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
            started = getattr(context, "_potluck_started", None)
            if started is not None:
                timer.observe(time.perf_counter() - started)

        event.listen(engine.sync_engine, "before_cursor_execute", before)
        event.listen(engine.sync_engine, "after_cursor_execute", after)

    @property
    def dialect(self) -> str:
        return self.primary.dialect.name

    async def start(self) -> None:
        if self.topology is not None:
            await self.topology.poll()  # know the cluster's replicas before measuring them
            self.topology.start()
        if self.monitor is not None:
            await self.monitor.check()  # know the replicas before the first request
            self.monitor.start()

    def _has(self, replica: ReplicaState, token: ConsistencyToken | None) -> bool:
        """Whether `replica` is known to have the write behind `token`: same timeline as the token and as the
        primary (positions of different timelines are not comparable), replayed at least that far."""
        if token is None:
            return True
        timeline = self.monitor.timeline if self.monitor is not None else 0
        return has_write(
            token, primary_timeline=timeline, replica_timeline=replica.timeline, replayed_lsn=replica.replayed_lsn
        )

    def _candidates(self, min_lsn: ConsistencyToken | None) -> list[ReplicaState]:
        healthy = [r for r in self.replica_states if r.healthy and self._has(r, min_lsn)]
        if not healthy:
            return []
        start = next(self._round_robin) % len(healthy)
        return healthy[start:] + healthy[:start]

    def _mark_down(self, replica: ReplicaState, exc: BaseException) -> None:
        logger.warning("db.replica_failed", extra={"replica": replica.name, "error": repr(exc)})
        if self.monitor is not None:
            self.monitor.mark_down(replica)

    @property
    def _autocommit_reads(self) -> bool:
        """Whether reads that ask for no transaction run without one (`_for_reads`)."""
        return self.dialect == "postgresql" and not self.settings.pgbouncer_transaction_pooling

    def _for_reads(self, engine: AsyncEngine, *, transaction: bool) -> AsyncEngine:
        """`engine`, or on PostgreSQL its autocommit variant sharing its pool: each statement of a read then runs
        on its own (under READ COMMITTED each statement takes its own snapshot anyway), so a one-statement read is
        one round trip. `transaction`: keep the transaction (a server-side cursor needs one). Behind PgBouncer in
        transaction mode a statement's prepare and execute must share a transaction, else they may reach two
        different servers."""
        if transaction or not self._autocommit_reads:
            return engine
        reader = self._autocommit.get(engine)
        if reader is None:
            reader = self._autocommit[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
        return reader

    async def _connect_reader(
        self, min_lsn: ConsistencyToken | None, *, transaction: bool
    ) -> tuple[AsyncConnection, ReplicaState | None]:
        for replica in self._candidates(min_lsn):
            try:
                return await self._connect_replica(replica, transaction=transaction), replica
            except (DBAPIError, OSError, TimeoutError) as exc:
                self._mark_down(replica, exc)  # down since the monitor last looked: try the next one
        return await self._connect_primary(self._for_reads(self.primary_reader, transaction=transaction)), None

    async def _connect_replica(self, replica: ReplicaState, *, transaction: bool) -> AsyncConnection:
        """A connection to `replica` within the replica read bound. The checkout of a pooled connection to a frozen
        replica would wait for its pre-ping, then for a reconnect, then for a rollback while cleaning up: each
        bounded by the driver's timeout, together several times it. Past the bound the attempt is left to finish
        in the background (a connection it opens late is closed) and the read goes elsewhere."""
        attempt = asyncio.ensure_future(_open(self._for_reads(replica.engine, transaction=transaction)))
        done, _ = await asyncio.wait({attempt}, timeout=self.settings.replica_read_timeout_seconds)
        if attempt in done:
            return attempt.result()
        self._abandon(attempt)
        attempt.add_done_callback(self._close_if_opened)
        raise TimeoutError(f"no connection from {replica.name} within the replica read bound")

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    def _close_if_opened(self, attempt: asyncio.Task[AsyncConnection]) -> None:
        if not attempt.cancelled() and attempt.exception() is None:
            self._abandon(asyncio.ensure_future(_close_quietly(attempt.result())))

    async def _connect_primary(self, engine: AsyncEngine) -> AsyncConnection:
        """A connection to the leader. Between a leader's departure and the next promotion no node accepts one
        (a planned switchover: about 2 s); wait for it, up to leader_wait_seconds, rather than fail the request.
        Nothing was sent yet, so waiting is safe for reads and writes alike."""
        wait = self.settings.leader_wait_seconds if self.dialect == "postgresql" else 0.0
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            try:
                return await engine.connect()
            except (DBAPIError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    raise LeaderUnavailableError(f"no leader within {wait:g} s: {exc!r}") from exc
                logger.info("db.waiting_for_leader", extra={"error": repr(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    @asynccontextmanager
    async def read_session(
        self, *, primary: bool = False, min_lsn: ConsistencyToken | None = None, transaction: bool = False
    ) -> AsyncIterator[ReadSession]:
        """A session for reads. `primary=True` when the caller must see the latest writes; `min_lsn` (a client's
        consistency token) limits it to replicas that have replayed at least that far, else the primary.
        On PostgreSQL its statements run without a transaction (autocommit), unless `transaction=True`.

        If a replica fails mid-read, it leaves the rotation and ReplicaUnavailableError tells the caller that the
        read may simply be run again (see ReplicaFailoverMiddleware)."""

        def session(connection: AsyncConnection) -> ReadSession:
            return ReadSession(bind=connection, expire_on_commit=False)

        async with self._reading(session, primary=primary, min_lsn=min_lsn, transaction=transaction) as read:
            yield read

    @asynccontextmanager
    async def read_rows(
        self, *, primary: bool = False, min_lsn: ConsistencyToken | None = None
    ) -> AsyncIterator[ReadRows]:
        """`read_session` for reads that are statements only (column selects through `Rows`): the same choice of
        server and the same failover, without an ORM session (whose construction and close cost as much as the
        statement's own client work)."""
        driver = self._prepared_on_driver

        def rows(connection: AsyncConnection) -> ReadRows:
            return ReadRows(connection, driver=driver)

        async with self._reading(rows, primary=primary, min_lsn=min_lsn, transaction=False) as read:
            yield read

    @property
    def _prepared_on_driver(self) -> bool:
        """Whether read_rows' connections are autocommit asyncpg ones, on which a `Prepared` statement runs on the
        driver (db/prepared.py): not where reads keep their transaction (SQLite, PgBouncer in transaction mode)."""
        return self._autocommit_reads and self.primary.dialect.driver == "asyncpg"

    @asynccontextmanager
    async def _reading(
        self,
        open_with: Callable[[AsyncConnection], Reading],
        *,
        primary: bool,
        min_lsn: ConsistencyToken | None,
        transaction: bool,
    ) -> AsyncIterator[Reading]:
        if primary:
            engine = self._for_reads(self.primary_reader, transaction=transaction)
            connection, replica = await self._connect_primary(engine), None
        else:
            connection, replica = await self._connect_reader(min_lsn, transaction=transaction)
        reading = open_with(connection)
        lost: BaseException | None = None
        try:
            yield reading
        except (DBAPIError, OSError) as exc:
            # A leader wait that ran out inside this block (a cache fill reads the primary) is not this read's.
            if isinstance(exc, LeaderUnavailableError) or not _lost_connection(exc):
                raise
            note_retryable()  # nothing was written: the request may run again (db/failover.py)
            lost = exc  # the connection is not pooled again
            if replica is None:
                raise
            self._mark_down(replica, exc)
            raise ReplicaUnavailableError(replica.name) from exc
        finally:
            if lost is not None and replica is not None:
                # Its rollback and close would wait on the silent server again: not in the request's time.
                self._abandon(asyncio.ensure_future(_close_session(reading, connection, discard=True)))
            else:
                await _close_session(reading, connection, discard=lost is not None)
                if isinstance(lost, OSError) and self.dialect == "postgresql":
                    # The primary went silent or away under the driver itself (a prepared read, db/prepared.py),
                    # where SQLAlchemy's own handling would have retired the pool's other connections to it.
                    self._retire_primary_connections("db.primary_lost")

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[WriteSession]:
        """A session on the primary that commits when the block ends cleanly, then runs after-commit hooks.

        The connection is taken first (waiting for a leader if there is none this instant), so a write whose
        transaction never started is not failed by a switchover."""
        connection = await self._connect_primary(self.primary)
        try:
            async with WriteSession(bind=connection, expire_on_commit=False) as session:
                try:
                    yield session
                except BaseException as exc:
                    with contextlib.suppress(Exception):  # the connection may have died with the primary
                        await session.rollback()
                    session.pop_after_commit()
                    if isinstance(exc, DBAPIError) and "read-only transaction" in str(exc.orig):
                        await self.leader_changed()  # the pool holds connections to a node that was demoted
                    raise
                await session.commit()
                callbacks = session.pop_after_commit()
        finally:
            await _close_quietly(connection)  # before the hooks, which may want a connection of their own
        for callback in callbacks:
            result = callback()
            if inspect.isawaitable(result):
                await result

    async def wal_position(self) -> str | None:
        """The primary's timeline and current WAL position (a consistency token), when there are replicas to
        compare it with. One statement after every write: no BEGIN/ROLLBACK around it (`_for_reads`)."""
        if self.monitor is None or self.dialect != "postgresql":
            return None
        async with self._for_reads(self.primary, transaction=False).connect() as conn:
            lsn, timeline = (await conn.execute(text(PRIMARY_POSITION))).one()
        return format_token(timeline, lsn)

    def replica_url(self, host: str, port: int) -> str:
        """The primary's URL (user, password, database) pointed at one node, without the multi-host query."""
        url = self.primary.url.set(host=host, port=port, query={})
        return url.render_as_string(hide_password=False)

    async def set_replicas(self, urls: Mapping[str, str]) -> None:
        """Make the replica set `urls` (name -> URL): engines for new members, the departed ones disposed. A new
        replica serves reads once the monitor has measured it."""
        current = {state.name: state for state in self.replica_states}
        for name, url in urls.items():
            if name not in current:
                engine = create_engine(url, self.settings, read_timeout=self.settings.replica_read_timeout_seconds)
                state = ReplicaState(name, engine)
                if self._exported:
                    self._count_queries(state.engine, "replica", name)
                for listener in self.engine_listeners:
                    listener(engine)
                self.replica_states.append(state)
                self.replicas.append(state.engine)
                logger.info("db.replica_added", extra={"replica": name})
        for name, state in current.items():
            if name not in urls:
                self.replica_states.remove(state)
                self.replicas.remove(state.engine)
                self._autocommit.pop(state.engine, None)
                if self.monitor is not None:
                    self.monitor.forget(state)
                logger.info("db.replica_removed", extra={"replica": name})
                self._retired.append(state.engine)
        await self._dispose_retired()

    async def _dispose_retired(self, *, all_of_them: bool = False) -> None:
        """Dispose the engines of departed replicas once no request holds one of their connections (a pool
        disposed under a request would leave that connection to the garbage collector, unclosed)."""
        for engine in list(self._retired):
            if all_of_them or engine.sync_engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
                self._retired.remove(engine)
                await engine.dispose()

    async def leader_changed(self) -> None:
        """A new leader: no connection opened before now (to the old leader, demoted or gone) is handed out again.
        Each is closed and replaced at its next checkout, including those in use right now (a pool dispose
        would leave those to the garbage collector)."""
        self._retire_primary_connections("db.leader_changed")

    def _retire_primary_connections(self, event: str) -> None:
        """No primary connection opened before now is handed out again (each is replaced at its checkout)."""
        logger.warning(event)
        self._generation += 1

    def _follow_leader(self, engine: AsyncEngine) -> None:
        """Stamp each new connection with the leader generation; refuse older ones at checkout (SQLAlchemy then
        closes the connection and opens a new one, which the multi-host URL sends to the current leader)."""

        def stamp(_dbapi: Any, record: Any) -> None:
            record.info["leader_generation"] = self._generation

        def refuse_stale(_dbapi: Any, record: Any, _proxy: Any) -> None:
            if record.info.get("leader_generation", self._generation) != self._generation:
                raise DisconnectionError("opened before the leader changed")

        event.listen(engine.sync_engine, "connect", stamp)
        event.listen(engine.sync_engine, "checkout", refuse_stale)

    async def dispose(self) -> None:
        if self.topology is not None:
            await self.topology.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=5)
        await self._dispose_retired(all_of_them=True)
        for engine in {self.primary, self.primary_reader, *self.replicas}:
            await engine.dispose()


__all__ = ["Database", "create_engine", "format_lsn", "parse_lsn"]
