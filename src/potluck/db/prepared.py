"""Prepared column selects: built once, compiled once per dialect, run on PostgreSQL straight on the driver.

A statement through SQLAlchemy's execution pays, on every run, for its cache key, an execution context, a
greenlet switch to the driver and back, and a result object: ~150 µs of client CPU here, as much as asyncpg's own
work for a one-row read. A `Prepared` statement is a module-level select whose values are bind parameters (so
its SQL never changes); on an autocommit PostgreSQL read (`ReadRows`) it is compiled once, by SQLAlchemy, and its
rows are fetched with the driver's own prepared-statement cache. What SQLAlchemy does for a statement is kept:
its bind and result type processors, the engine's `before/after_cursor_execute` listeners (the query metrics,
tracing, the tests' statement counters; the after-listeners run whether the statement succeeded or not, so spans
and timings always end), and its errors: a driver error is translated by SQLAlchemy's own adapter into the
`DBAPIError` it would have raised, and a lost connection is invalidated as it would have been (never run twice).
A server gone silent (an OSError, TimeoutError among them) is left to the read's own rules (Database._reading).
Everywhere else (SQLite, a session, a read inside a transaction) it is an ordinary statement.
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    binds: tuple[tuple[str, Any], ...]  # the parameters' names in $n order, each with its value in the select
    bind_processors: tuple[Callable[[Any], Any] | None, ...]
    result_processors: tuple[Callable[[Any], Any] | None, ...] | None  # None: the driver's values are the rows'


class _Context:
    """What the engine's statement listeners receive as the execution context (they keep their timings and spans
    on it as attributes)."""


class Prepared:
    """A column select whose every value is a bind parameter; see the module's docstring."""

    def __init__(self, statement: Select[Any]) -> None:
        labels = [c.key for c in statement.selected_columns]
        if any(label is None or not label.isidentifier() or label.startswith("_") for label in labels):
            raise ValueError(f"every column of a prepared select needs a plain name (label it): {labels}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"the columns of a prepared select need distinct names: {labels}")
        self.statement = statement
        self.row = _row_type([str(label) for label in labels])
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    async def plan(self, dialect: Dialect, driver: Any) -> _Plan:
        """The statement compiled for `dialect`. The first time, the driver (asyncpg) is asked for its columns'
        types, by which SQLAlchemy chooses its result processors (as it does from a cursor's description)."""
        plan = self._plans.get(dialect)
        if plan is not None:
            return plan
        compiled = self.statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        if any(b.expanding or b.literal_execute for b in binds):
            raise ValueError("a prepared select's SQL must not depend on its values (no IN of a list: = ANY)")
        described = (await driver.prepare(compiled.string)).get_attributes()
        columns = list(self.statement.selected_columns)
        if len(described) != len(columns):
            raise ValueError(f"the driver describes {len(described)} columns for a select of {len(columns)}")
        processors = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, attribute.type.oid)
            for c, attribute in zip(columns, described, strict=True)
        )
        plan = self._plans[dialect] = _Plan(
            sql=compiled.string,
            binds=tuple((b.key, _REQUIRED if b.required else b.effective_value) for b in binds),
            bind_processors=tuple(b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds),
            result_processors=processors if any(processors) else None,
        )
        return plan


async def fetch_prepared(
    connection: AsyncConnection, prepared: Prepared, params: dict[str, Any] | None
) -> Sequence[Any]:
    """The rows of `prepared`, fetched on `connection`'s driver (asyncpg); see the module's docstring."""
    raw = await connection.get_raw_connection()
    driver, adapter = raw.driver_connection, raw.dbapi_connection
    sync = connection.sync_connection
    assert driver is not None
    assert sync is not None
    dialect = connection.dialect
    try:
        plan = await prepared.plan(dialect, driver)
    except (ValueError, OSError):
        raise
    except Exception as exc:
        _raise_as_sqlalchemy(connection, adapter, exc, prepared.statement.compile(dialect=dialect).string, ())
    values = params or {}
    args = []
    for (name, given), process in zip(plan.binds, plan.bind_processors, strict=True):
        value = values.get(name, given)
        if value is _REQUIRED:
            raise ValueError(f"a value is required for bind parameter {name!r}")
        args.append(value if process is None else process(value))
    context = _Context()
    sql = plan.sql
    for before in sync.dispatch.before_cursor_execute:
        sql, _ = before(sync, None, sql, args, context, False)
    try:
        records = await driver.fetch(sql, *args)
    except OSError:
        raise
    except Exception as exc:
        _raise_as_sqlalchemy(connection, adapter, exc, sql, args)
    finally:
        for after in sync.dispatch.after_cursor_execute:
            after(sync, None, sql, args, context, False)
    row, processors = prepared.row, plan.result_processors
    if processors is None:
        return [row(*record) for record in records]
    return [
        row(*(value if process is None else process(value) for value, process in zip(record, processors, strict=True)))
        for record in records
    ]


def _row_type(labels: list[str]) -> Callable[..., Any]:
    """A row class with the select's labels as attributes (what SQLAlchemy's rows offer the repositories)."""
    return collections.namedtuple("PreparedRow", labels)


def _raise_as_sqlalchemy(connection: AsyncConnection, adapter: Any, error: Exception, sql: str, args: Any) -> None:
    """Raise `error` as SQLAlchemy would have: translated by its asyncpg adapter into the DBAPI's exception class,
    wrapped in the matching DBAPIError; a disconnect invalidates the connection first."""
    dialect = connection.dialect
    dbapi_error: BaseException = error
    try:
        adapter._handle_exception(error)  # raises the DBAPI's exception for the driver's
    except Exception as translated:
        dbapi_error = translated
    base = dialect.loaded_dbapi.Error
    if not isinstance(dbapi_error, base):
        raise error
    disconnect = dialect.is_disconnect(dbapi_error, adapter, None)
    if disconnect and connection.sync_connection is not None:
        connection.sync_connection.invalidate(dbapi_error)
    raise DBAPIError.instance(
        sql, args, dbapi_error, base, connection_invalidated=disconnect, dialect=dialect
    ) from error
