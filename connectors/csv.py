"""The `csv` connector: tickets from a CSV file with a header row.

Owns parsing the header and turning one row into a record: a dict of the
header's columns to the row's text, with empty fields as None. Ordering,
filtering, ids, cursors and tombstones are the shared file logic in
`connectors.files`. Line numbers are physical lines, so a row with a line
break inside a quoted field is located by the line it starts on.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from typing import BinaryIO, ClassVar, Final

from pydantic import Field, field_validator

from connectors.base import ConnectorOptions
from connectors.files import (
    FileConnector,
    FileOptions,
    RawRecord,
    UnreadableFile,
)
from connectors.records import MISSING, get_path

# Rows are found by splitting bytes at b"\n" (to number lines),
# which works only when ASCII characters are stored as themselves.
_ASCII_PROBE: Final = b"\r\n\t ,;|\"'0123456789AZaz:-_."


class CsvOptions(FileOptions):
    """Options of a `csv` connector: the shared file options plus the CSV dialect."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """The one character between values."""
    encoding: str = "utf-8-sig"
    """Any encoding that stores ASCII as single bytes; `utf-8-sig` also reads plain UTF-8."""

    @field_validator("delimiter")
    @classmethod
    def _delimiter_is_usable(cls, delimiter: str) -> str:
        if delimiter in '\r\n"':
            raise ValueError(f"{delimiter!r} cannot be a CSV delimiter")
        return delimiter

    @field_validator("encoding")
    @classmethod
    def _encoding_keeps_ascii(cls, name: str) -> str:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(f"unknown encoding {name!r}") from None
        try:
            ascii_compatible = _ASCII_PROBE.decode(name) == _ASCII_PROBE.decode("ascii")
        except UnicodeDecodeError:
            ascii_compatible = False
        if not ascii_compatible:
            raise ValueError(
                f"encoding {name!r} does not store ASCII as single bytes (UTF-16 or UTF-32?); "
                "re-encode the file as UTF-8"
            )
        return name


class CsvConnector(FileConnector):
    """Reads tickets from a CSV export with a header row."""

    kind: ClassVar[str] = "csv"
    summary: ClassVar[str] = "tickets from a CSV file with a header row"
    Options: ClassVar[type[ConnectorOptions]] = CsvOptions
    header_lines: ClassVar[int] = 1

    options: CsvOptions

    def open_records(self, handle: BinaryIO) -> CsvRecords:
        """The rows of the CSV file open as `handle`."""
        return CsvRecords(handle, self.options)


class CsvRecords:
    """The rows of a CSV file as records, each with the line it starts on."""

    def __init__(self, handle: BinaryIO, options: CsvOptions) -> None:
        self._handle = handle
        self._options = options
        # Column name per field position; None drops a column with an empty name.
        self._columns: list[str | None] | None = None

    def __iter__(self) -> Iterator[RawRecord]:
        self._handle.seek(0)
        lines = _DecodedLines(self._handle, self._options.encoding)
        rows = self._reader(lines)
        try:
            header = next(rows, None)
        except csv.Error as exc:
            raise UnreadableFile(f"the header row is not valid CSV: {exc}") from exc
        if lines.undecodable:
            raise UnreadableFile(lines.undecodable)  # no columns: no row can be read
        if header is None:
            return
        self._columns = self._read_header(header)
        while True:
            line = lines.next_line
            lines.undecodable = ""
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RawRecord(line, None, f"not a valid CSV row: {exc}")
                continue
            if lines.undecodable:
                yield RawRecord(line, None, lines.undecodable)
            elif any(field.strip() for field in row):
                yield self._record(line, row)

    def _reader(self, lines: Iterator[str]) -> Iterator[list[str]]:
        return csv.reader(lines, delimiter=self._options.delimiter)

    def _read_header(self, header: Sequence[str]) -> list[str | None]:
        columns: list[str | None] = []
        for raw_name in header:
            name = raw_name.strip()
            if name and name in columns:
                raise UnreadableFile(f"column {name!r} appears twice in the header row")
            columns.append(name or None)
        present = dict.fromkeys(name for name in columns if name)
        options = self._options
        needed = {"id_field": options.id_field, "cursor_field": options.cursor_field}
        if options.deleted_field is not None:
            needed["deleted_field"] = options.deleted_field
        for option, field in needed.items():
            if get_path(present, field) is MISSING:
                raise UnreadableFile(
                    f"no {field!r} column for {option}; the header row has "
                    + ", ".join(repr(name) for name in present)
                )
        return columns

    def _record(self, line: int, row: Sequence[str]) -> RawRecord:
        if self._columns is None:
            raise RuntimeError("a row was read before the header")
        width = len(self._columns)
        # Trailing empty fields past the header are a common export quirk, not an error.
        if len(row) < width or any(row[width:]):
            return RawRecord(
                line, None, f"the row has {len(row)} fields but the header row has {width} columns"
            )
        record = {
            name: value if value != "" else None
            for name, value in zip(self._columns, row, strict=False)
            if name is not None
        }
        return RawRecord(line, record)


class _DecodedLines:
    """Decoded lines for `csv.reader`, remembering which line is read next.

    `csv.reader` pulls lines only as a row needs them, so before each row is
    read, `next_line` is the line that row starts on. A line that is not valid
    in the encoding is decoded with replacement characters, so that the reader
    still finds where its row ends (the encodings allowed store ASCII, quotes
    and line breaks included, as themselves), and `undecodable` says why: the
    row is then a bad record, not the end of the file.
    """

    def __init__(self, handle: BinaryIO, encoding: str) -> None:
        self._lines = iter(handle)
        self._encoding = encoding
        self.next_line = 1
        self.undecodable = ""
        """Why a line read since the caller last cleared this is not valid text; "" if none."""

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        data = next(self._lines)
        line, self.next_line = self.next_line, self.next_line + 1
        try:
            return data.decode(self._encoding)
        except UnicodeDecodeError as exc:
            if not self.undecodable:
                self.undecodable = (
                    f"line {line} is not valid {self._encoding} ({exc.reason}); "
                    "set encoding to the file's encoding, for example cp1252"
                )
            return data.decode(self._encoding, errors="replace")
