"""Prepared column selects: built once, compiled once per dialect, run on PostgreSQL straight on the driver.

A statement through SQLAlchemy's execution pays, on every run, for its cache key, an execution context, a
greenlet switch to the driver and back, and a result object: ~150 µs of client CPU here, as much as asyncpg's own
work for a one-row read. A `Prepared` statement is a module-level select whose values are bind parameters (so
its SQL never changes); on an autocommit PostgreSQL read (`ReadRows`) it is compiled once, by SQLAlchemy, and its
rows are fetched with the driver's own prepared-statement cache. What SQLAlchemy does for a statement is kept:
its bind and result type processors (none, for the types these statements use on asyncpg), the engine's
`before/after_cursor_execute` listeners (the query metrics, tracing, the tests' statement counters) and, for any
error, its exception and invalidation rules (the statement is run again through SQLAlchemy, which raises as for
any statement: a read without a transaction changes nothing by running twice). Everywhere else (SQLite, a
session, a read inside a transaction) it is an ordinary statement.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    binds: tuple[tuple[str, Any], ...]  # the bind parameters' names in $n order, with their values given in the select
    bind_processors: tuple[Callable[[Any], Any] | None, ...]
    result_processors: tuple[Callable[[Any], Any] | None, ...] | None  # None: the driver's values are the rows'
    row: Callable[..., Any]  # a named tuple of the select's column labels


class _Context:
    """What the engine's statement listeners receive as the execution context (they keep their timings and spans
    on it as attributes)."""


class Prepared:
    """A column select whose every value is a bind parameter; see the module's docstring."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._plans: dict[int, _Plan] = {}

    async def plan(self, dialect: Dialect, driver: Any) -> _Plan:
        """The statement compiled for `dialect`. The first time, the driver (asyncpg) is asked for its columns'
        types, by which SQLAlchemy chooses its result processors (as it does from a cursor's description)."""
        plan = self._plans.get(id(dialect))
        if plan is not None:
            return plan
        compiled = self.statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        if any(compiled.binds[name].expanding for name in names):
            raise ValueError("a prepared select's SQL must not depend on its values (no IN of a list: = ANY)")
        binds = tuple((name, compiled.binds[name].effective_value) for name in names)
        columns = list(self.statement.selected_columns)
        labels = [c.key for c in columns if c.key is not None]
        if len(labels) != len(columns):
            raise ValueError("every column of a prepared select needs a name (label it)")
        described = (await driver.prepare(compiled.string)).get_attributes()
        processors = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, attribute.type.oid)
            for c, attribute in zip(columns, described, strict=True)
        )
        plan = self._plans[id(dialect)] = _Plan(
            sql=compiled.string,
            binds=binds,
            bind_processors=tuple(compiled.binds[b].type.dialect_impl(dialect).bind_processor(dialect) for b in names),
            result_processors=processors if any(processors) else None,
            row=collections.namedtuple("PreparedRow", labels),
        )
        return plan


async def fetch_prepared(
    connection: AsyncConnection, prepared: Prepared, params: dict[str, Any] | None
) -> Sequence[Any] | None:
    """The rows of `prepared` fetched on `connection`'s driver (asyncpg); None when the driver failed, for the
    caller to run the statement through SQLAlchemy (which then raises as it does for any statement). A server
    that is gone or silent (OSError, TimeoutError among them) is the read's to handle (Database._reading)."""
    driver = (await connection.get_raw_connection()).driver_connection
    sync = connection.sync_connection
    assert sync is not None
    assert driver is not None
    try:
        plan = await prepared.plan(connection.dialect, driver)
    except OSError:
        raise
    except Exception:
        return None
    values = params or {}
    args = [
        value if process is None else process(value)
        for value, process in zip((values.get(n, given) for n, given in plan.binds), plan.bind_processors, strict=True)
    ]
    context = _Context()
    sql = plan.sql
    for before in sync.dispatch.before_cursor_execute:
        sql, _ = before(sync, None, sql, args, context, False)
    try:
        records = await driver.fetch(sql, *args)
    except OSError:
        raise
    except Exception:
        return None
    for after in sync.dispatch.after_cursor_execute:
        after(sync, None, sql, args, context, False)
    row, processors = plan.row, plan.result_processors
    if processors is None:
        return [row(*record) for record in records]
    return [
        row(*(value if process is None else process(value) for value, process in zip(record, processors, strict=True)))
        for record in records
    ]
