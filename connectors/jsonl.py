"""The `jsonl` connector: tickets from a JSON Lines file, one object per line.

Owns parsing one line into a record. Ordering, filtering, ids, cursors and
tombstones are the shared file logic in `connectors.files`. Lines are UTF-8
(a leading byte-order mark is ignored); blank lines are skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO, ClassVar, Literal

from connectors import values
from connectors.base import BadRecord, ConnectorOptions, SourceComment, SourceTicket
from connectors.files import FileConnector, FileOptions, RawRecord


class JsonlOptions(FileOptions):
    """Options of a `jsonl` connector: the shared file options, nothing more."""


class JsonlConnector(FileConnector):
    """Reads tickets from a JSON Lines export."""

    kind: ClassVar[str] = "jsonl"
    summary: ClassVar[str] = "tickets from a JSON Lines file, one JSON object per line"
    Options: ClassVar[type[ConnectorOptions]] = JsonlOptions

    comments: ClassVar[Literal["listing", "requests"] | None] = "listing"
    """A record's `comments`, when it has them: a list of objects with `id`, `created_at`,
    `body`, and optionally `author`, `author_id` and `public` (true unless false)."""

    options: JsonlOptions

    def open_records(self, handle: BinaryIO) -> JsonlRecords:
        """The records of the JSON Lines file open as `handle`."""
        return JsonlRecords(handle)

    def _ticket(self, raw: RawRecord) -> SourceTicket | BadRecord:
        ticket = super()._ticket(raw)
        if not self.read_comments or isinstance(ticket, BadRecord):
            return ticket
        listed = ticket.record.get("comments", [])
        try:
            ticket.comments = _comments(listed, self._zone)
        except ValueError as exc:
            field, message = exc.args
            record = ticket.record
            return BadRecord(ticket.source_id, f"line {raw.line}", field, message, record)
        return ticket


def _comments(listed: Any, zone: dt.tzinfo) -> list[SourceComment]:
    """A record's `comments`, oldest first; `ValueError(field, message)` for a bad one."""
    if not isinstance(listed, list):
        raise ValueError("comments", "expected a list of comments")
    found = []
    for index, item in enumerate(listed):
        where = f"comments.{index}"
        if not isinstance(item, dict):
            raise ValueError(where, "expected a JSON object")
        if item.get("id") in (None, ""):
            raise ValueError(f"{where}.id", "no comment id")
        try:
            created = values.parse_cursor(item.get("created_at"), "datetime", zone)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}.created_at", f"not a time: {exc}") from None
        assert isinstance(created, dt.datetime)
        author, author_id = item.get("author"), item.get("author_id")
        found.append(
            SourceComment(
                comment_id=str(item["id"]),
                created_at=created,
                body=str(item.get("body") or ""),
                author=None if author is None else str(author),
                author_id=None if author_id is None else str(author_id),
                public=item.get("public") is not False,
            )
        )
    found.sort(key=lambda comment: comment.created_at)
    return found


class JsonlRecords:
    """The objects of a JSON Lines file, each with the line it came from."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def __iter__(self) -> Iterator[RawRecord]:
        self._handle.seek(0)
        for number, data in enumerate(self._handle, start=1):
            if not data.isspace():
                yield _parse(number, data)


def _parse(number: int, data: bytes) -> RawRecord:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(number, None, f"not valid UTF-8: {exc.reason}")
    if number == 1:
        # Some editors put a byte-order mark at the start of the file.
        text = text.removeprefix("\ufeff")
    try:
        # Without the line break, the error's column is the column in the line.
        value = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return RawRecord(number, None, f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return RawRecord(number, None, "nested too deeply for the JSON parser (about 1,000 levels)")
    except ValueError:  # the one other refusal: Python's cap on an integer's digits
        limit = sys.get_int_max_str_digits()
        return RawRecord(number, None, f"holds a number of more than {limit:,} digits")
    if not isinstance(value, dict):
        return RawRecord(number, None, f"expected a JSON object, got {_json_kind(value)}")
    return RawRecord(number, value)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"
