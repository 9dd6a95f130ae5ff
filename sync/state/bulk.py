"""Dialect-specific bulk SQL: a batch's upserts and its lookups by lists of ids.

Everything else the store runs is plain SQLAlchemy Core. These statements are
a checkpoint's and a lookup's hot path, run for every batch of a backfill, and
SQLAlchemy's per-row parameter handling (a dict per row, each value through
its bind processor one at a time) and its re-expansion of every `IN` list were
a fifth to a third of a backfill's CPU. So each is compiled once per dialect
(with SQLAlchemy: only the schema's own names are ever put into SQL text) and
run with the driver's own `execute`/`executemany`, its values prepared a
column at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.state.schema import ID, failed_items, tasks

IN_CHUNK = 500
"""Ids per lookup by ids: well under every database's parameter limit."""

Columns = dict[str, list[Any]]
"""Rows given column by column: each column's name to its values, one per row."""


def upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert `rows`, replacing the given non-key columns of rows whose keys exist."""
    upsert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0]}, keys)


def upsert_columns(
    conn: Connection, table: sa.Table, columns: Columns, keys: Sequence[str]
) -> None:
    """`upsert` of rows given column by column.

    A batch's rows are built this way, not as one dict per row: the dicts
    were a third of a backfill checkpoint's CPU. The statement is compiled
    once per table and column set (see `_Compiled`) and the values go
    straight to the driver.
    """
    plan = _upsert_plan(conn.dialect, table, tuple(columns), tuple(keys))
    if plan is None:
        rows = [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]
        _upsert_row_by_row(conn, table, rows, keys)
    elif plan.by_column:
        conn.exec_driver_sql(plan.statement.sql, plan.columns(_one_per_key(columns, keys)))
    else:
        conn.exec_driver_sql(plan.statement.sql, plan.rows(columns))


def _one_per_key(columns: Columns, keys: Sequence[str]) -> Columns:
    """The last row of each key, as upserting them one by one would leave it.

    One statement can't update a row twice (PostgreSQL refuses it).
    """
    key_values = list(zip(*(columns[key] for key in keys), strict=True))
    last = {key: index for index, key in enumerate(key_values)}
    if len(last) == len(key_values):
        return columns
    kept = sorted(last.values())
    return {name: [values[index] for index in kept] for name, values in columns.items()}


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for one dialect, for the driver's own execute."""

    sql: str
    names: tuple[str, ...]
    """Bind names in the order a positional driver takes them."""
    positional: bool

    @classmethod
    def of(cls, statement: Any, dialect: sa.Dialect, names: Sequence[str]) -> _Compiled:
        compiled = statement.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(names)
        return cls(compiled.string, order, compiled.positional)

    def parameters(self, values: Sequence[Any]) -> tuple[Any, ...] | dict[str, Any]:
        """`values`, given in `names` order, as the driver takes them."""
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


@dataclass(frozen=True)
class _UpsertPlan:
    """A compiled upsert and the dialect's bind processor of each of its columns."""

    statement: _Compiled
    processors: tuple[Any, ...]
    """None where the value goes as is."""
    by_column: bool = False
    """The statement takes one array per column (all rows at once), not one row at a time."""

    def rows(self, columns: Columns) -> list[Any]:
        """Parameters for `executemany`, one set per row."""
        ordered = self.columns(columns).values()
        return [self.statement.parameters(row) for row in zip(*ordered, strict=True)]

    def columns(self, columns: Columns) -> Columns:
        """Each column's values, in `statement.names` order, through its bind processor."""
        return {
            name: columns[name] if process is None else _processed(columns[name], process)
            for name, process in zip(self.statement.names, self.processors, strict=True)
        }


def _processed(values: list[Any], process: Any) -> list[Any]:
    """`values` through a bind processor; rows of a batch share one timestamp object."""
    first = values[0]
    if all(value is first for value in values):
        return [None if first is None else process(first)] * len(values)
    return [None if value is None else process(value) for value in values]


_PLANS: dict[tuple[Any, ...], _UpsertPlan | None] = {}


def _upsert_plan(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> _UpsertPlan | None:
    """The upsert of `columns` into `table` on `dialect`, built once (None: none known)."""
    cache_key = (dialect, table.name, columns, keys)
    if cache_key not in _PLANS:
        _PLANS[cache_key] = _new_upsert_plan(dialect, table, columns, keys)
    return _PLANS[cache_key]


def _new_upsert_plan(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> _UpsertPlan | None:
    if dialect.name == "postgresql":
        return _UpsertPlan(
            _Compiled(_unnest_upsert(dialect, table, columns, keys), columns, positional=False),
            _processors(dialect, table, columns),
            by_column=True,
        )
    given = [table.c[name] for name in columns if name not in keys]
    values: dict[str, Any] = {name: sa.bindparam(name) for name in columns}
    statement: Any
    # Each dialect's module is imported when its database is used: a SQLite run never
    # loads MySQL's (`tests/sync/test_startup.py` keeps start-up lean).
    if dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        insert = sqlite.insert(table).values(values)
        updates = {c.name: insert.excluded[c.name] for c in given}
        statement = insert.on_conflict_do_update(index_elements=list(keys), set_=updates)
    elif dialect.name in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        my = mysql.insert(table).values(values)
        statement = my.on_duplicate_key_update(**{c.name: my.inserted[c.name] for c in given})
    else:
        return None
    compiled = _Compiled.of(statement, dialect, columns)
    return _UpsertPlan(compiled, _processors(dialect, table, compiled.names))


def _processors(dialect: sa.Dialect, table: sa.Table, names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)


def _unnest_upsert(
    dialect: sa.Dialect, table: sa.Table, columns: Sequence[str], keys: Sequence[str]
) -> str:
    """PostgreSQL: one upsert for a whole batch, which arrives as one array per column.

    `executemany` sends one INSERT per row, and PostgreSQL answers each in
    turn: that made a backfill's checkpoints cost several times its mapping.
    The arrays go in binary (`%b`): psycopg quotes text arrays element by
    element in Python, which cost more CPU than the rest of the checkpoint.
    SQLAlchemy has no construct for a binary-format bind, so this one is text.
    """
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    arrays = ", ".join(f"%({name})b::{_array_of(table.c[name], dialect)}[]" for name in columns)
    updates = ", ".join(
        f"{quote(name)} = excluded.{quote(name)}" for name in columns if name not in keys
    )
    conflict = f"ON CONFLICT ({', '.join(quote(key) for key in keys)})"
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    # Only the schema's own table and column names go into the text; the rows are bound.
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays}) {conflict} {action}"
    )


def _array_of(column: sa.Column[Any], dialect: sa.Dialect) -> str:
    """The element type of `column`'s array: its own, but text unbounded.

    Cast to `varchar(n)[]`, a longer value would be cut to n characters
    without a word; as `varchar[]` it reaches the column, which refuses it.
    """
    kind = column.type
    if isinstance(kind, sa.String) and kind.length is not None:
        kind = sa.String()
    return kind.compile(dialect=dialect)


def _upsert_row_by_row(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """The upsert of a dialect none of the above knows: an UPDATE, else an INSERT, per row."""
    key_columns = [table.c[k] for k in keys]
    for row in rows:
        match = sa.and_(*(column == row[column.name] for column in key_columns))
        if conn.execute(sa.update(table).where(match).values(**row)).rowcount == 0:
            conn.execute(sa.insert(table).values(**row))


# Lookups and deletes by a list of source ids, one per batch of a pass. Run through
# SQLAlchemy (an expanding `IN`, or `= ANY(array)` on PostgreSQL: the list re-rendered
# or re-processed, and each row through its result processing, at every execution), the
# stored-hash lookups of 100,000 stored tasks, 500 ids at a time, took 20-40% longer on
# SQLite and on PostgreSQL. So each statement here is compiled once per dialect and id
# count (once in all on PostgreSQL, which takes the ids as one array) and run by the
# driver. The rarer ones (`in_flight`, clearing pushes in flight) are plain Core in the store.


def stored_task_rows(conn: Connection, connector: str, ids: Sequence[str]) -> list[Any]:
    """(source_id, uid, content_hash, source_cursor, pushed_at) of those of `ids` stored.

    Every chunk a pass reads is looked up here. `pushed_at` is as the driver
    returns it: `read_time` makes it a datetime.
    """
    return _by_ids(conn, _STORED_TASKS, connector, ids)


def failed_error_rows(conn: Connection, connector: str, ids: Sequence[str]) -> list[Any]:
    """(source_id, error) of those of `ids` that are failed items of `connector`.

    Every chunk a pass reads is looked up here while the connector has failed items.
    """
    return _by_ids(conn, _FAILED_ERRORS, connector, ids)


def clear_failed(conn: Connection, connector: str, ids: Sequence[str]) -> None:
    """Delete the failed items of `ids`: every checkpoint does while the connector has some."""
    _by_ids(conn, _CLEAR_FAILED, connector, ids)


_STORED_TASKS = "stored_tasks"
_FAILED_ERRORS = "failed_errors"
_CLEAR_FAILED = "clear_failed"


def _by_ids_statement(kind: str, among: Callable[[sa.Column[Any]], Any]) -> Any:
    """Statement `kind`, its source ids matched by `among(column)`."""
    connector: sa.BindParameter[str] = sa.bindparam("connector")
    if kind == _STORED_TASKS:
        return sa.select(
            tasks.c.source_id,
            tasks.c.uid,
            tasks.c.content_hash,
            tasks.c.source_cursor,
            tasks.c.pushed_at,
        ).where(tasks.c.connector == connector, among(tasks.c.source_id))
    if kind == _FAILED_ERRORS:
        return sa.select(failed_items.c.source_id, failed_items.c.error).where(
            failed_items.c.connector == connector, among(failed_items.c.source_id)
        )
    assert kind == _CLEAR_FAILED, kind
    return sa.delete(failed_items).where(
        failed_items.c.connector == connector, among(failed_items.c.source_id)
    )


_BY_IDS: dict[tuple[Any, ...], _Compiled] = {}


def _by_ids(conn: Connection, kind: str, connector: str, ids: Sequence[str]) -> list[Any]:
    """Run statement `kind` for `connector` and `ids`; the rows (none for a delete).

    PostgreSQL takes the ids as one array (`= ANY`), so one statement serves
    every count; elsewhere each count of ids has its own `IN (...)`.
    """
    as_array = conn.dialect.name == "postgresql"
    key = (conn.dialect, kind, None if as_array else len(ids))
    if key not in _BY_IDS:
        if as_array:
            array = sa.bindparam("ids", type_=sa.ARRAY(ID))
            names = ["connector", "ids"]
            statement = _by_ids_statement(kind, lambda column: column == sa.any_(array))
        else:
            names = ["connector", *(f"id_{index}" for index in range(len(ids)))]
            binds: list[sa.BindParameter[Any]] = [sa.bindparam(name) for name in names[1:]]
            statement = _by_ids_statement(kind, lambda column: column.in_(binds))
        compiled = _Compiled.of(statement, conn.dialect, names)
        # The binds appear in the text in the order they were made: values go in as given.
        assert compiled.names == tuple(names), (compiled.names, names)
        _BY_IDS[key] = compiled
    compiled = _BY_IDS[key]
    values = [connector, list(ids)] if as_array else [connector, *ids]
    result = conn.exec_driver_sql(compiled.sql, compiled.parameters(values))
    return list(result.fetchall()) if result.returns_rows else []


_TIME_READERS: dict[Any, Any] = {}


def read_time(conn: Connection, value: Any) -> dt.datetime | None:
    """A time column read by the statements above, as SQLAlchemy would have returned it."""
    if value is None or isinstance(value, dt.datetime):
        return value
    dialect = conn.dialect
    if dialect not in _TIME_READERS:
        time_type = tasks.c.pushed_at.type.dialect_impl(dialect)
        _TIME_READERS[dialect] = time_type.result_processor(dialect, None)
    process = _TIME_READERS[dialect]
    moment: dt.datetime | None = process(value) if process else value
    return moment
