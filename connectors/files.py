"""What the file connectors (`jsonl`, `csv`) share: options, ticket extraction, ordering.

A file connector reads a local export of tickets. This module owns everything
that does not depend on the file format: the common options, finding a
record's id, cursor and tombstone flag, filtering at the inclusive `since`
bound, yielding in cursor order, and turning malformed records into
`BadRecord`s. Parsing one line or row is the format module's job, through the
small `RecordFile` protocol.

Order and memory: records stream in file order, each parsed once, and
nothing is held, so memory does not grow with the file. With `sorted = false`
(the default) the connector makes no promise of order: the engine moves the
watermark only once a whole pass is through, and when one ticket appears more
than once the version with the latest cursor wins. With `sorted = true` the
user promises ascending cursors; the order is checked as records stream and
the engine checkpoints the watermark after every batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Final, Literal, Protocol

from pydantic import Field

from connectors import base, values
from connectors.base import BadRecord, Connector, ConnectorOptions, Cursor, SourceTicket, unset
from connectors.conversation import BadComment, comment_list
from connectors.errors import SourceError
from connectors.records import MISSING, field_path, is_flag_set, source_id_text
from connectors.values import check_cursor_kind

_HASH_CHUNK: Final = 1 << 20
_SETTLED_S: Final = 3.0
"""A file's timestamps vouch for its content once they are this old: a write within
the same clock tick as the stat could otherwise leave size and times unchanged."""

WHOLE_RECORD: Final = "(record)"
"""`BadRecord.field` when the record as a whole is unreadable (bad JSON, bad row)."""


class UnreadableFile(Exception):
    """The file as a whole is not readable as its format (a bad or undecodable header).

    Raised by format modules; the connector turns it into a `SourceError`
    naming itself and the file, and its run fails.
    """


class FileOptions(ConnectorOptions):
    """Options every file connector takes; field paths may be dotted (`requester.email`)."""

    path: Path
    """The file to read; a relative path written in the config file is relative to that file's
    folder."""
    id_field: str = Field(default="id", min_length=1)
    """The path to each record's id (dotted for nested keys: `ticket.id`)."""
    cursor_field: str = Field(default="updated_at", min_length=1)
    """The path to each record's change cursor."""
    cursor_kind: values.CursorKind = "datetime"
    """`datetime` (ISO 8601 or Unix time) or `int` (a version number)."""
    deleted_field: str | None = Field(default=None, min_length=1)
    """A field whose truthy value marks a deleted ticket (its task is archived)."""
    timezone: values.TimeZoneName = "UTC"
    """Zone of naive timestamps in the file; aware ones keep their own offset."""
    comments_field: str | None = Field(default=None, min_length=1, exclude_if=unset)
    """The path to each record's comments: a list (in a CSV cell, its JSON text) of objects
    with `id`, `created_at`, `body` and optionally `author`, `author_id`, `public`; the
    task's comment fields come from it (see the connector's page)."""
    sorted: bool = False
    """A promise of ascending cursors: the watermark moves after every batch, and a line
    breaking the promise fails the run. `false`: any order; the watermark moves when a pass
    completes."""


# Not frozen: one is built per ticket, and frozen dataclasses cost ~1 µs more each.
@dataclass(slots=True)
class RawRecord:
    """One record as a format module read it, before it is a ticket.

    `line` is the physical line it starts on (1-based). `record` is None when
    the line could not be parsed; `problem` then says why.
    """

    line: int
    record: Mapping[str, Any] | None
    problem: str = ""


class RecordFile(Protocol):
    """A file opened by a format module: its records in file order."""

    def __iter__(self) -> Iterator[RawRecord]:
        """Every record in file order; raises `UnreadableFile` for file-wide problems."""
        ...


class FileConnector(Connector):
    """Base of connectors that read a local file of tickets.

    Subclasses set `kind`, `summary` and `Options`, and implement
    `open_records`. Tickets come in file order; `ordered` is the `sorted` option.
    """

    Options: ClassVar[type[ConnectorOptions]] = FileOptions
    header_lines: ClassVar[int] = 0
    """Lines before the first record (a CSV header), left out of `estimate`."""
    comments: ClassVar[Literal["listing", "requests"] | None] = "listing"

    @classmethod
    def comments_with(cls, options: ConnectorOptions) -> Literal["listing", "requests"] | None:
        """ "listing" once `comments_field` says where the records keep their comments."""
        return cls.comments if getattr(options, "comments_field", None) else None

    options: FileOptions

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        if not isinstance(options, self.Options) or not isinstance(options, FileOptions):
            raise TypeError(
                f"connector {name!r}: expected {self.Options.__name__}, "
                f"got {type(options).__name__}"
            )
        super().__init__(name, options, stop)
        self.options = options
        self.ordered = options.sorted
        self._zone = values.timezone(options.timezone)
        self._id_path = field_path(options.id_field)
        self._cursor_path = field_path(options.cursor_field)
        self._deleted_path = (
            None if options.deleted_field is None else field_path(options.deleted_field)
        )
        self._comments_path = (
            None if options.comments_field is None else field_path(options.comments_field)
        )

    def open_records(self, handle: BinaryIO) -> RecordFile:
        """The records of the file open as `handle` (binary, at offset 0)."""
        raise NotImplementedError

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """Tickets with cursor >= `since`, in file order.

        Malformed records come as `BadRecord`s where they stand in the file
        (one whose cursor is known and before `since` is left out). Raises
        `SourceError` when the file cannot be read, or breaks the
        `sorted = true` promise.
        """
        self._check_since(since)
        with self._reading(), self._open() as handle:
            yield from self._in_file_order(self.open_records(handle), since)

    def scope_ids(self) -> Iterator[str]:
        """The id of every record in the file that is not marked deleted.

        A record that is no ticket but names its id counts: the ticket is there.
        """
        with self._reading(), self._open() as handle:
            for raw in self.open_records(handle):
                if raw.record is None:
                    continue
                source_id, _problem = self._source_id(raw.record)
                if source_id is not None and not self._deleted(raw.record):
                    yield source_id

    def estimate(self, since: Cursor | None) -> int | None:
        """The number of non-blank lines (less any header) for a full pass; else None.

        Only a full pass is cheap to count: with `since` set the answer would
        need the same parse as the pull itself. A CSV with line breaks inside
        quoted fields is over-counted.
        """
        if since is not None:
            return None
        try:
            with self.options.path.open("rb") as handle:
                lines = sum(1 for raw in handle if not raw.isspace())
        except OSError:
            return None
        return max(lines - self.header_lines, 0)

    def snapshot(self, previous: str | None = None) -> str | None:
        """The file's content hash (about 1 GB/s), so an unchanged file is not read at all.

        The token also carries the file's identity, size and timestamps once
        they are a few seconds old; when they still match `previous`'s, the
        content is the same and the file is not even hashed.
        """
        try:
            status = os.stat(self.options.path)
            identity = _identity(status)
            if identity is not None and previous is not None and previous.endswith(f" {identity}"):
                return previous  # not written since that token was taken
            digest = hashlib.blake2b(digest_size=20)
            with self.options.path.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
        except OSError:
            return None  # the pull will report it
        content = f"blake2b:{digest.hexdigest()}"
        return content if identity is None else f"{content} {identity}"

    def same_content(self, snapshot: str, previous: str) -> bool:
        """Equal content hashes, whatever the file's identity (touched, copied, renamed)."""
        return snapshot.split(" ")[0] == previous.split(" ")[0]

    def check(self) -> None:
        """Open the file and read its first record; raises `SourceError` if that fails."""
        with self._reading(), self._open() as handle:
            next(iter(self.open_records(handle)), None)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Turns a failure to read the file into a `SourceError` naming it."""
        try:
            yield
        except UnreadableFile as exc:
            raise SourceError(self.name, f"{self._where()}: {exc}") from exc
        except OSError as exc:
            raise SourceError(self.name, f"cannot read {self._where()}: {exc}") from exc

    def _in_file_order(
        self, records: RecordFile, since: Cursor | None
    ) -> Iterator[SourceTicket | BadRecord]:
        check_order = self.options.sorted
        previous: tuple[Cursor, int] | None = None
        for raw in records:
            item = self._ticket(raw)
            cursor = item.cursor
            if cursor is not None:
                if check_order:
                    if previous is not None and base.cursor_before(cursor, previous[0]):
                        raise self._broken_promise(raw.line, cursor, previous)
                    previous = (cursor, raw.line)
                if since is not None and base.cursor_before(cursor, since):
                    continue
            yield item

    def _broken_promise(
        self, line: int, cursor: Cursor, previous: tuple[Cursor, int]
    ) -> SourceError:
        return SourceError(
            self.name,
            f"{self._where()} line {line}: {self.options.cursor_field} "
            f"{_show(cursor)} is earlier than {_show(previous[0])} on line "
            f"{previous[1]}, but sorted = true promises ascending order; "
            "sort the file or set sorted = false",
        )

    def _ticket(self, raw: RawRecord) -> SourceTicket | BadRecord:
        """`raw` as a ticket, or as a `BadRecord` naming the field at fault."""
        record = raw.record
        if record is None:
            return BadRecord(None, f"line {raw.line}", WHOLE_RECORD, raw.problem)
        options = self.options
        # The cursor is read first so a record with a bad id still carries its
        # position, and the watermark can move past it.
        cursor: Cursor | None = None
        cursor_value = self._cursor_path.read(record)
        if cursor_value is MISSING or cursor_value is None:
            cursor_problem = (
                f"no {options.cursor_field!r} value; every ticket needs its last-change "
                "cursor (set cursor_field to the field that holds it)"
            )
        else:
            try:
                cursor = values.parse_cursor(cursor_value, options.cursor_kind, self._zone)
                cursor_problem = ""
            except ValueError as exc:
                cursor_problem = f"{options.cursor_field!r} is not a {options.cursor_kind}: {exc}"
        source_id, id_problem = self._source_id(record)
        if source_id is None:
            locator = f"line {raw.line}"
            return BadRecord(None, locator, options.id_field, id_problem, record, cursor)
        if cursor is None:
            locator = f"line {raw.line}"
            return BadRecord(source_id, locator, options.cursor_field, cursor_problem, record)
        ticket = SourceTicket(source_id, cursor, record, self._deleted(record))
        if self.read_comments and self._comments_path is not None:
            field = self._comments_path.path
            try:
                ticket.comments = comment_list(self._comments_path.read(record), field, self._zone)
            except BadComment as exc:
                return exc.bad_record(ticket, f"line {raw.line}")
        return ticket

    def _source_id(self, record: Mapping[str, Any]) -> tuple[str | None, str]:
        """The record's id as source-id text, or None and why it is not usable."""
        try:
            return source_id_text(self._id_path.read(record), self.options.id_field, "id_field"), ""
        except ValueError as exc:
            return None, str(exc)

    def _deleted(self, record: Mapping[str, Any]) -> bool:
        path = self._deleted_path
        return path is not None and is_flag_set(path.read(record))

    def _check_since(self, since: Cursor | None) -> None:
        check_cursor_kind(self.name, since, self.options.cursor_kind)

    def _open(self) -> BinaryIO:
        try:
            return self.options.path.open("rb")
        except FileNotFoundError:
            raise SourceError(
                self.name, f"{self._where()} does not exist; check the connector's path"
            ) from None
        except IsADirectoryError:
            raise SourceError(
                self.name, f"{self._where()} is a directory; path must name a file"
            ) from None
        except OSError as exc:
            raise SourceError(self.name, f"cannot open {self._where()}: {exc.strerror}") from exc

    def _where(self) -> str:
        return f"file {str(self.options.path.absolute())!r}"


def _show(cursor: Cursor) -> str:
    return values.isoformat(cursor) if isinstance(cursor, dt.datetime) else str(cursor)


def _identity(status: os.stat_result) -> str | None:
    """Device, inode, size and times of a file whose last change has settled; else None."""
    if time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) < _SETTLED_S * 1e9:
        return None
    facts = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    # Digested: the token must fit the state's 128-character column.
    return "stat:" + hashlib.blake2b(repr(facts).encode(), digest_size=8).hexdigest()
