"""The `sql` connector: tickets from a table or a SELECT in any SQLAlchemy database.

Owns the keyset queries, the form the `since` bound takes for each kind of
cursor column, and turning rows into tickets. Mapping, diffing and
checkpointing are the engine's.

Paging. Rows come in pages ordered by (cursor, id), each page a new query
anchored on the last row read, in the database's own values:

    first page:  WHERE cursor >= :since ORDER BY cursor, id LIMIT n
    next pages:  WHERE cursor >= :c AND (cursor > :c OR (cursor = :c AND id > :last_id)) ...

Never OFFSET, so a tie group of any size (a bulk update stamping 10,000 rows
with one timestamp) pages through, each row once, and a row updated while a
pass runs moves to a later cursor and is met again further on; rows not yet
read can't shift out from under the pages. The redundant `cursor >= :c` keeps
the filter a range on the cursor, which every planner can serve from an index
on (cursor, id). The pass ends at the first empty page. That is not the
"short page" trap of paged APIs: each page is a fresh, re-anchored query,
so an empty answer means no row sorts after the anchor at that moment, and
reading until empty also picks up the rows updated during the pass. A cursor
computed on each read would keep the pass going forever; it is caught
(`MAX_REPEATED_PAGES`) and fails the pass with a message saying so.

Ids must be unique and orderable by the database (a primary key is): the
keyset compares them in the database's collation. Ids become text, bytes as
hex.

Rows with a NULL id or a NULL cursor have no place in (cursor, id) order, so
the keyset excludes them (a NULL in the anchor would stop the pass). They are
reported as `BadRecord`s without a cursor at the start of every pass, at most
`page_size` of them, so they never hold back the watermark and never go
unnoticed. A cursor that is present but not a date-time (or integer) is
reported in its place in the order; the keyset moves past it on its raw value.

Time zones. Naive date-times (SQLite text, MySQL DATETIME, PostgreSQL
`timestamp`) are read in the `timezone` option; aware ones (PostgreSQL
`timestamptz`) keep theirs. The `since` bound is bound in the form the column
holds, learnt from one sample value: an aware datetime, a naive datetime in
`timezone`, or text in the rows' own ISO 8601 layout (text compares as text).
Text cursors must therefore share one layout and one offset, as SQLite's
`CURRENT_TIMESTAMP` or SQLAlchemy's `DateTime` write them. MySQL `TIMESTAMP`
columns come back in the session's zone: set `timezone` to it.

Late commits. A transaction that commits after a pass read past its rows'
timestamps (PostgreSQL's `now()` is the transaction's start) is caught by the
connector's `lookback` setting, not here: set it above your longest writing
transaction.

Clocks. Each pull reads the database's own clock (`clock_offset`), so the
engine stops its checkpoints at the pass's start on that clock when it runs
behind this machine's: rows are mostly stamped by it (`DEFAULT now()`).

The `query` option runs as a subquery (`SELECT * FROM (<query>) AS source`);
it may name no bind parameters, so write a literal colon as `\\:`.

Write-back (`writes` status with `status_update`, assignee with
`assignee_update`): each is one UPDATE the user writes, its values bound as
parameters (`:source_id`, `:status`, `:assignee_id`), never spliced into the
text; a ticket's change runs them in one transaction. An UPDATE of a value
the row already holds is harmless, so a write repeated after a crash changes
nothing more. One that matches no row is looked up: a row that is gone (or
marked by `deleted_column`) is a refusal; a row still there was left out by
the statement's own WHERE, a guard such as `status <> 'closed'`, and that
wins over Fragment (`WriteConflict`). A database's refusal (a constraint, a
trigger, a permission) is a `WriteRefused` in its own words; a database out of
reach, or a connection lost, a `SourceError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import sqlalchemy as sa
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.types import NullType

from connectors import base, values
from connectors.base import (
    BadRecord,
    Connector,
    ConnectorOptions,
    Cursor,
    SourceTicket,
    TicketWrite,
    unset,
)
from connectors.conversation import BadComment, comment_list
from connectors.errors import SourceError, WriteConflict, WriteRefused
from connectors.records import is_flag_set
from connectors.values import check_cursor_kind
from sync_http import clock

CONNECT_TIMEOUT_S: Final = 10
"""Seconds to wait for a PostgreSQL connection when the URL doesn't say."""
SAMPLES: Final = 10
"""Cursor values read to learn the form of the since bound."""
MAX_REPEATED_PAGES: Final = 3
"""Pages in a row holding only rows of the page before, after which a pass is a runaway.

A cursor computed on each read (`COALESCE(updated_at, now())`) puts the same
rows after the anchor on every query, and the pass would never end. A real
row edited faster than one page round trip, page after page, is not plausible.
"""
_UTC_NOW: Final = {
    "postgresql": "SELECT CURRENT_TIMESTAMP",  # timestamptz: aware
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "mariadb": "SELECT UTC_TIMESTAMP(6)",
    "mssql": "SELECT SYSUTCDATETIME()",
    "oracle": "SELECT SYS_EXTRACT_UTC(SYSTIMESTAMP) FROM DUAL",
}
"""Each backend's query for its clock's time, in UTC (SQLite's clock is this machine's)."""
_BACKGROUND: Final = re.compile(r"\s*\(Background on this error at: [^)]*\)")

# Text that starts like an ISO 8601 date, optionally with a time; the groups
# tell the layout the since bound is rendered in.
_ISO_TEXT: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:(?P<sep>[T ])(?P<hm>\d{2}:\d{2})(?P<s>:\d{2})?)?"
)
_ZULU: Final = re.compile(r"[zZ]$")
# Epoch numbers at or above this are milliseconds, as `values.parse_datetime` reads them.

_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`")
"""SQL's quoted literals and names, where a `;` ends no statement."""
_UPDATE: Final = re.compile(r"UPDATE\b", re.IGNORECASE)
WRITE_PARAMETERS: Final = {
    "status": ("source_id", "status"),
    "assignee": ("source_id", "assignee_id"),
}
"""The parameters each field's UPDATE binds, all of which it must name."""


class SqlOptions(ConnectorOptions):
    """Options of a `sql` connector; set exactly one of `table` and `query`."""

    url: SecretStr
    """Any SQLAlchemy URL (`postgresql+psycopg://user:pw@host/db`); may carry a password."""
    table: str | None = Field(default=None, min_length=1)
    """A table or view, optionally schema-qualified (`support.tickets`)."""
    query: str | None = Field(default=None, min_length=1)
    """A SELECT read as a subquery; write a literal colon as `\\:`."""
    id_column: str = Field(default="id", min_length=1)
    """The column holding each row's id."""
    cursor_column: str = Field(default="updated_at", min_length=1)
    """The column holding each row's change cursor (a timestamp, or a version with `cursor_kind
    = "int"`)."""
    cursor_kind: values.CursorKind = "datetime"
    """`datetime` (a timestamp column) or `int` (a version number)."""
    deleted_column: str | None = Field(default=None, min_length=1)
    """A flag or a timestamp: a truthy value or any non-null timestamp marks a tombstone."""
    timezone: values.TimeZoneName = "UTC"
    """Zone of naive date-times in the database; aware ones keep their own offset."""
    page_size: int = Field(default=1000, ge=1, le=50_000)
    """Rows per query."""
    columns: list[str] | None = Field(default=None, min_length=1)
    """Columns to read into the record, all when unset; the key columns are always read."""
    comments_column: str | None = Field(default=None, min_length=1, exclude_if=unset)
    """A column holding each row's comments as a JSON array (`json_agg` in PostgreSQL,
    `JSON_ARRAYAGG` in MariaDB, `json_group_array` in SQLite) of objects with `id`,
    `created_at`, `body` and optionally `author`, `author_id`, `public`; the task's comment
    fields come from it (see the connector's page)."""

    status_update: str | None = Field(default=None, min_length=1, exclude_if=unset)
    """The UPDATE that writes a status back (two-way sync), naming `:status` and
    `:source_id`: `UPDATE tickets SET status = :status, updated_at = CURRENT_TIMESTAMP WHERE
    id = :source_id`. Values are bound, never spliced into the text."""
    assignee_update: str | None = Field(default=None, min_length=1, exclude_if=unset)
    """The UPDATE that writes an assignee back (two-way sync), naming `:assignee_id` (a
    source user id as text, or NULL to unassign) and `:source_id`."""

    @field_validator("url")
    @classmethod
    def _url_is_usable(cls, url: SecretStr) -> SecretStr:
        # Fail at config load on a typo or a missing driver, not on the first pass.
        try:
            parsed = make_url(url.get_secret_value())
        except sa.exc.ArgumentError:
            raise ValueError(
                "not a SQLAlchemy URL; use dialect+driver://user:password@host/database"
            ) from None
        try:
            parsed.get_dialect().import_dbapi()
        except sa.exc.NoSuchModuleError:
            raise ValueError(f"unknown database dialect {parsed.drivername!r}") from None
        except ImportError as exc:
            raise ValueError(
                f"the driver for {parsed.drivername!r} is not installed ({exc.name or exc})"
            ) from None
        return url

    @field_validator("query")
    @classmethod
    def _query_fits_a_subquery(cls, query: str | None) -> str | None:
        if query is None:
            return None
        # A trailing semicolon is a syntax error inside a subquery.
        text = query.strip().rstrip(";").strip()
        if not text:
            raise ValueError("the query is empty")
        return text

    @field_validator("columns")
    @classmethod
    def _columns_are_named(cls, columns: list[str] | None) -> list[str] | None:
        if columns is not None and not all(name.strip() for name in columns):
            raise ValueError("column names can't be empty")
        return columns

    @field_validator("status_update", "assignee_update")
    @classmethod
    def _one_parameterized_update(cls, statement: str | None, info: ValidationInfo) -> str | None:
        if statement is None:
            return None
        field = "status" if info.field_name == "status_update" else "assignee"
        return one_update(statement, WRITE_PARAMETERS[field])

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlOptions:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of table and query")
        return self


@dataclass(frozen=True, slots=True)
class _Columns:
    """The columns a pass reads, spelt as the database spells them."""

    id: str
    cursor: str
    deleted: str | None
    selected: tuple[str, ...] | None
    """The `columns` option plus the key columns; None reads every column."""
    comments: str | None = None


class SqlConnector(Connector):
    """Reads tickets from a SQL table or query, paged by (cursor, id)."""

    kind: ClassVar[str] = "sql"
    summary: ClassVar[str] = (
        "tickets from a SQL table or query (PostgreSQL, MySQL/MariaDB, SQLite, any "
        "SQLAlchemy URL), paged by (cursor, id)"
    )
    Options: ClassVar[type[ConnectorOptions]] = SqlOptions
    ordered = True
    comments: ClassVar[Literal["listing", "requests"] | None] = "listing"

    @classmethod
    def comments_with(cls, options: ConnectorOptions) -> Literal["listing", "requests"] | None:
        """ "listing" once `comments_column` names the column of each row's comments."""
        return cls.comments if getattr(options, "comments_column", None) else None

    writes: ClassVar[frozenset[str]] = frozenset({"status", "assignee"})

    @classmethod
    def writes_with(cls, options: ConnectorOptions) -> frozenset[str]:
        """The fields whose UPDATE the options give: `status_update`, `assignee_update`."""
        return frozenset(
            field for field in cls.writes if getattr(options, f"{field}_update", None) is not None
        )

    options: SqlOptions

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        if not isinstance(options, SqlOptions):
            raise TypeError(
                f"connector {name!r}: expected SqlOptions, got {type(options).__name__}"
            )
        super().__init__(name, options, stop)
        self.options = options
        self._zone = values.timezone(options.timezone)
        self._clock_offset: dt.timedelta | None = None
        self._url = make_url(options.url.get_secret_value())
        self._masked_url = self._url.render_as_string(hide_password=True)
        connect_args: dict[str, Any] = {}
        if self._url.get_driver_name() in ("psycopg", "psycopg2") and (
            "connect_timeout" not in self._url.query
        ):
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            self._engine = sa.create_engine(
                self._url, pool_pre_ping=True, connect_args=connect_args
            )
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise SourceError(name, f"cannot use {self._masked_url}: {self._reason(exc)}") from exc

    # The contract

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """Tickets with cursor >= `since`, ascending by (cursor, id).

        Rows with a NULL id or cursor come first, as `BadRecord`s without a
        cursor. Raises `SourceError` naming the database (password masked)
        when it can't be read.
        """
        self._check_since(since)
        columns, samples = self._inspect()
        self._clock_offset = self._read_clock()
        yield from self._unplaceable(columns)
        bound = None if since is None else self._since_value(since, samples)
        anchor: tuple[Any, Any] | None = None
        previous_ids: set[Any] = set()
        repeats = 0
        while True:
            with self._reading("read"), self._connect() as conn:
                rows = _fetch(conn, self._page(columns, bound, anchor))
            if not rows:
                return
            page_ids = {_source_id(row[columns.id]) for row in rows}
            repeats = repeats + 1 if page_ids <= previous_ids else 0
            if repeats >= MAX_REPEATED_PAGES:
                raise self._runaway(page_ids)
            previous_ids = page_ids
            for row in rows:
                item = self._ticket(row, columns)
                # Bounds that had to be rounded down (text, dates, epochs) let
                # in a few rows just before `since`; the contract is exact.
                if (
                    since is None
                    or item.cursor is None
                    or not base.cursor_before(item.cursor, since)
                ):
                    yield item
            anchor = (rows[-1][columns.cursor], rows[-1][columns.id])

    def estimate(self, since: Cursor | None) -> int | None:
        """COUNT(*) of the rows `pull(since)` reads for a table; None for a query or on error.

        A user's query may be costly, so it is not run twice.
        """
        if self.options.query is not None:
            return None
        try:
            self._check_since(since)
            columns, samples = self._inspect()
            bound = None if since is None else self._since_value(since, samples)
            source = self._source(columns)
            count = sa.select(sa.func.count()).select_from(source)
            count = count.where(*self._keyset_filter(source, columns, bound, None))
            with self._connect() as conn:
                return int(conn.execute(count).scalar_one())
        except (SourceError, sa.exc.SQLAlchemyError):
            return None  # only a progress hint: the pull reports the real problem

    def scope_ids(self) -> Iterator[str]:
        """`SELECT id` of every row (less those `deleted_column` marks), keyset-paged by id.

        Pages of ten times `page_size` (ids are small), each anchored on the
        last id read: never OFFSET, so rows deleted meanwhile shift nothing.
        """
        columns, _samples = self._inspect()
        source = self._source(columns)
        row_id = source.c[columns.id]
        wanted = [row_id] + ([] if columns.deleted is None else [source.c[columns.deleted]])
        query = sa.select(*wanted).where(row_id.is_not(None)).order_by(row_id)
        query = query.limit(self.options.page_size * 10)
        last: Any = None
        while True:
            page = query
            if last is not None:
                page = query.where(row_id > sa.bindparam("last_id", last, type_=NullType()))
            with self._reading("read"), self._connect() as conn:
                rows = conn.execute(page).all()
            if not rows:
                return
            for row in rows:
                source_id = _source_id(row[0])
                deleted = columns.deleted is not None and is_flag_set(_plain(row[1], self._zone))
                if source_id is not None and not deleted:
                    yield source_id
            last = rows[-1][0]

    def write(self, change: TicketWrite) -> None:
        """The UPDATE of each field `change` sets, in one transaction (see the module).

        Raises `WriteRefused` naming the field when the database refuses it or
        the row is gone, `WriteConflict` when the statement's WHERE leaves the
        row out, `SourceError` when the database can't be reached.
        """
        steps: list[tuple[str, str | None, dict[str, Any]]] = []
        if change.status is not None:
            steps.append(("status", change.status, {"status": change.status}))
        if change.assign:
            steps.append(("assignee", change.assignee_id, {"assignee_id": change.assignee_id}))
        unmatched: tuple[str, str | None] | None = None
        doing: tuple[str, str | None] = steps[0][:2] if steps else ("status", None)
        with self._reading("write to"), self._connect() as conn:
            try:
                with conn.begin() as transaction:
                    for field, target, bound in steps:
                        doing = (field, target)
                        statement = sa.text(self._update(field))
                        params = {"source_id": change.source_id, **bound}
                        if conn.execute(statement, params).rowcount == 0:
                            unmatched = (field, target)
                            transaction.rollback()
                            break
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise  # the connection was lost: `_reading` makes it a SourceError
                raise WriteRefused(self.name, change.source_id, *doing, self._reason(exc)) from exc
        if unmatched is not None:
            raise self._unmatched(change.source_id, *unmatched)

    def _update(self, field: str) -> str:
        statement: str | None = getattr(self.options, f"{field}_update")
        if statement is None:  # config load refuses write_back.FIELD without it
            raise TypeError(f"connector {self.name!r}: no {field}_update to write a {field} with")
        return statement

    def _unmatched(self, source_id: str, field: str, target: str | None) -> WriteRefused:
        """Why a field's UPDATE matched no row: the row is gone (a refusal), or the
        statement's WHERE left it out (a conflict: the row's state wins)."""
        columns, _samples = self._inspect()
        source = self._source(columns)
        wanted = [source.c[columns.id]]
        if columns.deleted is not None:
            wanted.append(source.c[columns.deleted])
        query = sa.select(*wanted).where(
            source.c[columns.id] == sa.bindparam("source_id", source_id, type_=NullType())
        )
        with self._reading("read"), self._connect() as conn:
            found = conn.execute(query.limit(1)).first()
        row = f"row with {self.options.id_column} {source_id!r} in {self._where()}"
        if found is None:
            return WriteRefused(self.name, source_id, field, target, f"no {row}: deleted?")
        if columns.deleted is not None and is_flag_set(_plain(found[1], self._zone)):
            return WriteRefused(self.name, source_id, field, target, f"the {row} is marked deleted")
        return WriteConflict(
            self.name,
            source_id,
            field,
            target,
            f"the row is there, but the {field}_update's WHERE leaves it out (a guard such "
            "as status <> 'closed'): the row's own state wins over Fragment's",
        )

    def check(self) -> None:
        """Connect, find the columns and read the first row; raises `SourceError` if that fails."""
        columns, _sample = self._inspect()
        with self._reading("read"), self._connect() as conn:
            conn.execute(self._page(columns, None, None, limit=1)).all()

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def clock_offset(self) -> dt.timedelta | None:
        """The database's clock minus this machine's, as the pull read it; None before."""
        return self._clock_offset

    # Queries

    def _source(self, columns: _Columns | None) -> sa.FromClause:
        """The table or subquery rows come from, knowing the columns the queries name."""
        names = (
            [] if columns is None else _unique(_key_columns(columns) + list(columns.selected or ()))
        )
        declared: list[sa.ColumnClause[Any]] = [sa.column(name) for name in names]
        if self.options.table is not None:
            schema, _, table = self.options.table.rpartition(".")
            return sa.table(table, *declared, schema=schema or None)
        assert self.options.query is not None
        return sa.text(self.options.query).columns(*declared).subquery("source")

    def _page(
        self,
        columns: _Columns,
        bound: Any,
        anchor: tuple[Any, Any] | None,
        limit: int | None = None,
    ) -> sa.Select[Any]:
        source = self._source(columns)
        return (
            _select_rows(source, columns)
            .where(*self._keyset_filter(source, columns, bound, anchor))
            .order_by(source.c[columns.cursor], source.c[columns.id])
            .limit(limit or self.options.page_size)
        )

    @staticmethod
    def _keyset_filter(
        source: sa.FromClause, columns: _Columns, bound: Any, anchor: tuple[Any, Any] | None
    ) -> list[sa.ColumnElement[bool]]:
        """Rows at or after `bound`, or strictly after the `anchor` (cursor, id) row."""
        cursor, row_id = source.c[columns.cursor], source.c[columns.id]
        conditions: list[sa.ColumnElement[bool]] = [cursor.is_not(None), row_id.is_not(None)]
        if anchor is not None:
            # Raw values as the database returned them: compared exactly as stored.
            last_cursor = sa.bindparam("last_cursor", anchor[0], type_=NullType())
            last_id = sa.bindparam("last_id", anchor[1], type_=NullType())
            conditions += [
                cursor >= last_cursor,
                sa.or_(cursor > last_cursor, sa.and_(cursor == last_cursor, row_id > last_id)),
            ]
        elif bound is not None:
            conditions.append(cursor >= sa.bindparam("since", bound, type_=NullType()))
        return conditions

    def _inspect(self) -> tuple[_Columns, list[Any]]:
        """The configured columns as the database spells them, and a few non-NULL cursor values.

        The samples (none when no row has a cursor) tell what form the since
        bound must take; several, so one malformed value can't decide it.
        Raises `SourceError` naming any missing column.
        """
        with self._reading("read"), self._connect() as conn:
            probe = _select_rows(self._source(None), None).limit(0)
            present = list(conn.execute(probe).keys())
            columns = self._resolve(present)
            source = self._source(columns)
            cursor = source.c[columns.cursor]
            samples = conn.execute(
                sa.select(cursor).where(cursor.is_not(None)).limit(SAMPLES)
            ).scalars()
            return columns, list(samples)

    def _resolve(self, present: Sequence[str]) -> _Columns:
        """The configured column names matched to `present`, exactly or else ignoring case."""
        options = self.options
        wanted: list[tuple[str, str]] = [
            ("id_column", options.id_column),
            ("cursor_column", options.cursor_column),
        ]
        if options.deleted_column is not None:
            wanted.append(("deleted_column", options.deleted_column))
        if options.comments_column is not None:
            wanted.append(("comments_column", options.comments_column))
        wanted += [("columns", name) for name in options.columns or ()]
        by_folded: dict[str, list[str]] = {}
        for name in present:
            by_folded.setdefault(name.casefold(), []).append(name)
        found: dict[str, str] = {}
        missing: list[str] = []
        for option, name in wanted:
            folded = by_folded.get(name.casefold(), [])
            if name in present:
                found[name] = name
            elif len(folded) == 1:
                found[name] = folded[0]
            else:
                missing.append(f"{name!r} (from {option})")
        if missing:
            raise SourceError(
                self.name,
                f"{self._where()} has no column {', '.join(missing)}; its columns are "
                f"{', '.join(present) or 'none'}",
            )
        deleted, comments = options.deleted_column, options.comments_column
        columns = _Columns(
            id=found[options.id_column],
            cursor=found[options.cursor_column],
            deleted=None if deleted is None else found[deleted],
            selected=None,
            comments=None if comments is None else found[comments],
        )
        if options.columns is None:
            return columns
        selected = _unique(_key_columns(columns) + [found[name] for name in options.columns])
        return dataclasses.replace(columns, selected=tuple(selected))

    def _unplaceable(self, columns: _Columns) -> Iterator[BadRecord]:
        """Rows with a NULL id or cursor, which the keyset can't reach, as `BadRecord`s."""
        source = self._source(columns)
        cursor, row_id = source.c[columns.cursor], source.c[columns.id]
        statement = _select_rows(source, columns).where(sa.or_(cursor.is_(None), row_id.is_(None)))
        limit = self.options.page_size
        with self._reading("read"), self._connect() as conn:
            rows = _fetch(conn, statement.limit(limit + 1))
        id_name, cursor_name = self.options.id_column, self.options.cursor_column
        for row in rows[:limit]:
            record = self._record(row)
            source_id = _source_id(row[columns.id])
            if source_id is None:
                yield BadRecord(
                    None,
                    f"row with a NULL {id_name} #{_digest(record)}",
                    id_name,
                    f"{id_name} is NULL; every row needs a unique id",
                    record,
                )
            else:
                yield BadRecord(
                    source_id,
                    f"row {id_name}={source_id}",
                    cursor_name,
                    f"{cursor_name} is NULL; every row needs its last-change cursor, "
                    "or it is never synced",
                    record,
                )
        if len(rows) > limit:
            yield BadRecord(
                None,
                f"more rows with a NULL {id_name} or {cursor_name}",
                cursor_name,
                f"only the first {limit} such rows are listed each pass; find the rest with "
                f"WHERE {id_name} IS NULL OR {cursor_name} IS NULL",
            )

    # Rows

    def _ticket(self, row: Mapping[Any, Any], columns: _Columns) -> SourceTicket | BadRecord:
        """One keyset row as a ticket, or a `BadRecord` naming the field at fault."""
        options = self.options
        record = self._record(row)
        source_id = _source_id(row[columns.id])
        if source_id is None:  # blank: the keyset already left NULLs out
            locator = f"row with an empty {options.id_column} #{_digest(record)}"
        else:
            locator = f"row {options.id_column}={source_id}"
        try:
            cursor = values.parse_cursor(
                _integral(row[columns.cursor]), options.cursor_kind, self._zone
            )
        except ValueError as exc:
            return BadRecord(
                source_id,
                locator,
                options.cursor_column,
                f"{options.cursor_column} is not a {options.cursor_kind}: {exc}",
                record,
            )
        if source_id is None:
            return BadRecord(
                None, locator, options.id_column, f"{options.id_column} is empty", record, cursor
            )
        if isinstance(cursor, dt.datetime):
            record[columns.cursor] = cursor  # text or naive as stored; aware UTC here
        deleted = columns.deleted is not None and is_flag_set(record[columns.deleted])
        ticket = SourceTicket(source_id, cursor, record, deleted)
        if self.read_comments and columns.comments is not None:
            try:
                ticket.comments = comment_list(
                    record[columns.comments], columns.comments, self._zone
                )
            except BadComment as exc:
                return exc.bad_record(ticket, locator)
        return ticket

    def _record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row as a record: naive date-times made aware in `timezone`, bytes as hex."""
        zone = self._zone
        return {
            key: value if type(value) in _AS_IS else _plain(value, zone)
            for key, value in row.items()
        }

    def _since_value(self, since: Cursor, samples: Sequence[Any]) -> Any:
        """`since` in the form of the first sample that can mirror it; None when there are none."""
        problem = ""
        for sample in samples:
            try:
                return since_value(since, sample, self._zone)
            except ValueError as exc:
                problem = problem or str(exc)
        if not problem:
            return None
        raise SourceError(
            self.name,
            f"{self._where()}: cannot bound {self.options.cursor_column} by the watermark: "
            f"{problem}",
        )

    def _check_since(self, since: Cursor | None) -> None:
        check_cursor_kind(self.name, since, self.options.cursor_kind)

    # The database

    def _connect(self) -> sa.Connection:
        """A pooled connection, held for one query only: no snapshot or lock outlives a page."""
        database = self._url.database
        if (
            self._url.get_backend_name() == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
            and not Path(database).exists()
        ):
            # SQLite would create an empty file and then report a missing table.
            raise SourceError(self.name, f"{self._where()}: the database file does not exist")
        return self._engine.connect()

    def _read_clock(self) -> dt.timedelta | None:
        """The database's clock minus this machine's, at most the true offset; None if unknown.

        The database's time is taken before this machine's, so the difference
        errs low, the safe side (`Connector.clock_offset`). SQLite runs in this
        process, and an unknown backend may answer in a zone of its own: None.
        """
        query = _UTC_NOW.get(self._url.get_backend_name())
        if query is None:
            return None
        try:
            with self._connect() as conn:
                stamped = conn.execute(sa.text(query)).scalar_one()
        except sa.exc.SQLAlchemyError:
            return None  # the pull's own queries report a database that can't be read
        received = clock.now()
        if not isinstance(stamped, dt.datetime):
            return None
        if stamped.tzinfo is None:
            stamped = stamped.replace(tzinfo=dt.UTC)
        return stamped - received

    @contextlib.contextmanager
    def _reading(self, doing: str) -> Iterator[None]:
        """Turns database errors into a `SourceError` naming the source, password masked."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(
                self.name, f"cannot {doing} {self._where()}: {self._reason(exc)}"
            ) from exc

    def _runaway(self, ids: set[str | None]) -> SourceError:
        shown = ", ".join(sorted(str(i) for i in ids)[:5])
        return SourceError(
            self.name,
            f"{self._where()}: rows {shown} came back with a later "
            f"{self.options.cursor_column} on {MAX_REPEATED_PAGES} pages in a row, so the "
            "pass would never end; the cursor must be a stored column, not one computed "
            "on each read (such as COALESCE(updated_at, now()))",
        )

    def _reason(self, exc: BaseException) -> str:
        """The driver's own first line about `exc`, never the password."""
        original = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(original).splitlines() if line.strip()]
        text = _BACKGROUND.sub("", lines[0]) if lines else type(original).__name__
        if self.options.query is not None and "bind parameter" in text:
            text += "; write a literal colon in the query as \\:"
        password = self._url.password
        if password:
            text = text.replace(str(password), "***")
        return text

    def _where(self) -> str:
        if self.options.table is not None:
            return f"table {self.options.table!r} in {self._masked_url}"
        return f"the query in {self._masked_url}"


def since_value(since: Cursor, sample: Any, zone: dt.tzinfo) -> Any:
    """`since` in the form a cursor column holding values like `sample` compares with.

    An aware datetime for aware columns; a naive datetime in `zone` for naive
    ones; for text, the rows' ISO 8601 layout cut to the seconds (or
    minutes, or the date) they show, without any offset, so it sorts at or
    before every row at or after `since`; whole epoch seconds or milliseconds
    for numbers. The result may be up to one unit early, never late. Raises
    `ValueError` for values it can't mirror.
    """
    if not isinstance(since, dt.datetime):
        return since
    if isinstance(sample, dt.datetime):
        if sample.utcoffset() is None:
            return since.astimezone(zone).replace(tzinfo=None)
        return since
    if isinstance(sample, dt.date):
        return since.astimezone(zone).date()
    if isinstance(sample, str):
        return _text_bound(since, sample, zone)
    if isinstance(sample, int | float | Decimal) and not isinstance(sample, bool):
        seconds = since.timestamp()
        milliseconds = abs(float(sample)) >= values.MILLISECONDS_THRESHOLD
        return math.floor(seconds * 1000) if milliseconds else math.floor(seconds)
    raise ValueError(f"values like {sample!r} ({type(sample).__name__}) can't be compared")


def one_update(statement: str, parameters: Sequence[str]) -> str:
    """`statement`, checked to be one UPDATE naming each of `parameters` (`:source_id`) and
    no other, its trailing `;` cut. Raises `ValueError` saying what is wrong."""
    text = statement.strip().rstrip(";").strip()
    if not _UPDATE.match(text):
        raise ValueError(f"must be an UPDATE statement, not {text[:30]!r}")
    if ";" in _QUOTED.sub("''", text):
        raise ValueError("holds more than one statement; give one UPDATE")
    named = set(sa.text(text).compile().params)
    allowed = ", ".join(f":{name}" for name in parameters)
    unknown = sorted(named - set(parameters))
    if unknown:
        shown = ", ".join(f":{name}" for name in unknown)
        raise ValueError(
            f"names {shown}, which write-back doesn't give; it may name {allowed} (write a "
            "literal colon as \\:)"
        )
    missing = [name for name in parameters if name not in named]
    if missing:
        shown = ", ".join(f":{name}" for name in missing)
        raise ValueError(f"must name {shown} (it may name {allowed})")
    return text


def _text_bound(since: dt.datetime, sample: str, zone: dt.tzinfo) -> str:
    text = sample.strip()
    layout = _ISO_TEXT.match(text)
    try:
        if layout is None:
            raise ValueError
        stored = dt.datetime.fromisoformat(_ZULU.sub("+00:00", text))
    except ValueError:
        raise ValueError(
            f"text like {sample!r} is not ISO 8601; store YYYY-MM-DD HH:MM:SS text or use a "
            "date-time column"
        ) from None
    # Rows written with an offset all carry the sample's (one offset is the rule
    # for text cursors); naive rows are in `zone`.
    local = since.astimezone(stored.tzinfo or zone)
    bound = local.strftime("%Y-%m-%d")
    if layout.group("hm"):
        bound += (layout.group("sep") or "T") + local.strftime("%H:%M")
        if layout.group("s"):
            bound += local.strftime(":%S")
    return bound


def _fetch(conn: sa.Connection, statement: sa.Executable) -> list[dict[str, Any]]:
    """The rows of `statement`, each a dict by column name.

    Reading SQLAlchemy's `RowMapping` item by item cost more than the rest of
    a row's conversion; the driver's tuples zipped with the names don't.
    """
    result = conn.execute(statement)
    columns = result.keys()  # a Result's own keys, not a dict's
    names = [str(name) for name in columns]
    return [dict(zip(names, row, strict=True)) for row in result.all()]


_AS_IS: Final = frozenset({str, int, float, bool, type(None)})
"""Types `_plain` hands back untouched, checked first: most values are one of them."""


def _plain(value: Any, zone: dt.tzinfo) -> Any:
    """`value` as a record value: JSON-friendly, date-times aware in UTC."""
    if value is None or isinstance(value, str | bool | int | float | Decimal):
        return value
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, zone) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, zone) for v in value]
    if isinstance(value, dt.time):
        return value.isoformat()
    return str(value)  # UUID, interval, network address...: their text form


def _select_rows(source: sa.FromClause, columns: _Columns | None) -> sa.Select[Any]:
    """SELECT of the record's columns: every one, or the chosen ones."""
    if columns is None or columns.selected is None:
        return sa.select(sa.literal_column("*")).select_from(source)
    return sa.select(*(source.c[name] for name in columns.selected))


def _source_id(value: Any) -> str | None:
    """An id column value as source-id text; None for NULL or blank."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex() or None
    if isinstance(value, uuid.UUID):
        return str(value)
    text = str(value)
    return text if text.strip() else None


def _integral(value: Any) -> Any:
    """NUMERIC versions arrive as Decimal; a whole one is an integer cursor."""
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


def _key_columns(columns: _Columns) -> list[str]:
    keys = [columns.id, columns.cursor]
    keys += [name for name in (columns.deleted, columns.comments) if name is not None]
    return keys


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _digest(record: Mapping[str, Any]) -> str:
    """A short stable name for a row with no id, so its failed item is kept in place."""
    text = json.dumps(record, default=str, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
