"""The `jsonl` connector: tickets from a JSON Lines file, one object per line.

Owns parsing one line into a record. Ordering, filtering, ids, cursors and
tombstones are the shared file logic in `connectors.files`. Lines are UTF-8
(a leading byte-order mark is ignored); blank lines are skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from connectors.base import ConnectorOptions
from connectors.files import FileConnector, FileOptions, RawRecord


class JsonlOptions(FileOptions):
    """Options of a `jsonl` connector: the shared file options, nothing more."""


class JsonlConnector(FileConnector):
    """Reads tickets from a JSON Lines export."""

    kind: ClassVar[str] = "jsonl"
    summary: ClassVar[str] = "tickets from a JSON Lines file, one JSON object per line"
    Options: ClassVar[type[ConnectorOptions]] = JsonlOptions

    options: JsonlOptions

    def open_records(self, handle: BinaryIO) -> JsonlRecords:
        """The records of the JSON Lines file open as `handle`."""
        return JsonlRecords(handle)


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
