"""The `csv` connector, on real files: rows as records, order, tombstones, bad rows, dialects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.base import BadRecord, Cursor, SourceTicket
from connectors.csv import CsvConnector, CsvOptions
from connectors.errors import SourceError
from connectors.files import WHOLE_RECORD
from connectors.registry import connector_class
from sync_demo import generate_tickets, write_csv

HEADER = "id,subject,updated_at,deleted\n"


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def write_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "tickets.csv"
    path.write_bytes(text.encode(encoding))
    return path


def connector(path: Path, **options: Any) -> CsvConnector:
    return CsvConnector("crm-export", CsvOptions(path=path, **options))


def pull(source: CsvConnector, since: Cursor | None = None) -> list[SourceTicket | BadRecord]:
    return list(source.pull(since))


def tickets_of(items: list[SourceTicket | BadRecord]) -> list[SourceTicket]:
    assert not [item for item in items if isinstance(item, BadRecord)]
    return [item for item in items if isinstance(item, SourceTicket)]


def ids(items: list[SourceTicket | BadRecord]) -> list[str | None]:
    return [item.source_id for item in items]


def test_row_becomes_a_record_of_text_with_empty_fields_as_none(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER + "10001,Refund for order #1,2026-10-01T09:00:00Z,\n")

    [ticket] = tickets_of(pull(connector(path)))

    assert ticket.source_id == "10001"
    assert ticket.cursor == utc("2026-10-01T09:00:00")
    assert ticket.record == {
        "id": "10001",
        "subject": "Refund for order #1",
        "updated_at": "2026-10-01T09:00:00Z",
        "deleted": None,
    }


def test_rows_come_in_file_order_from_an_inclusive_since(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        HEADER
        + "c,,2026-10-03T00:00:00Z,\n"
        + "b,,2026-10-02T00:00:00Z,\n"
        + "old,,2026-10-01T23:59:59Z,\n"
        + "a,,2026-10-02T00:00:00Z,\n",
    )

    items = pull(connector(path), since=utc("2026-10-02T00:00:00"))

    assert ids(items) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("flag", "deleted"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
    ],
)
def test_deleted_column_marks_tombstones(tmp_path: Path, flag: str, deleted: bool) -> None:
    path = write_file(tmp_path, HEADER + f"1,,2026-10-01T00:00:00Z,{flag}\n")

    [ticket] = tickets_of(pull(connector(path, deleted_field="deleted")))

    assert ticket.deleted is deleted


def test_naive_timestamps_are_read_in_the_configured_timezone(tmp_path: Path) -> None:
    path = write_file(tmp_path, "id,modified\n1,2026-01-15 09:30:00\n")

    [ticket] = tickets_of(
        pull(connector(path, cursor_field="modified", timezone="America/New_York"))
    )

    assert ticket.cursor == utc("2026-01-15T14:30:00")


def test_integer_cursor_column(tmp_path: Path) -> None:
    path = write_file(tmp_path, "id,version\na,12\nb,3\nc,7\n")

    items = pull(connector(path, cursor_field="version", cursor_kind="int"), since=7)

    # "12" is not before 7 as a number, though it would be as text.
    assert [(t.source_id, t.cursor) for t in tickets_of(items)] == [("a", 12), ("c", 7)]


def test_an_integer_cursor_too_long_to_store_is_a_bad_record(tmp_path: Path) -> None:
    # Leading zeros don't count; 5,000 digits would also pass Python's own cap on int().
    zeros = "0" * 80 + "7"
    path = write_file(tmp_path, f"id,version\na,{zeros}\nb,{'9' * 65}\nc,{'9' * 5_000}\n")

    items = pull(connector(path, cursor_field="version", cursor_kind="int"))

    assert (items[0].source_id, items[0].cursor) == ("a", 7)
    for bad, length in zip(items[1:], [65, 5_000], strict=True):
        assert isinstance(bad, BadRecord)
        assert bad.field == "version"
        assert f"an integer cursor of {length} characters" in bad.message


def test_semicolon_delimiter_and_windows_encoding(tmp_path: Path) -> None:
    path = write_file(
        tmp_path, "id;sujet;updated_at\n1;Problème de facturation;2026-10-01T00:00:00Z\n", "cp1252"
    )

    [ticket] = tickets_of(pull(connector(path, delimiter=";", encoding="cp1252")))

    assert ticket.record["sujet"] == "Problème de facturation"


def test_utf8_byte_order_mark_before_the_header_is_ignored(tmp_path: Path) -> None:
    path = write_file(tmp_path, "\ufeffid,updated_at\n1,2026-10-01T00:00:00Z\n")

    assert ids(pull(connector(path))) == ["1"]


def test_quoted_line_break_keeps_locators_on_physical_lines(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        HEADER
        + '2,"Line one\nline two",2026-10-02T00:00:00Z,\n'
        + '1,"Plain",2026-10-01T00:00:00Z,\n'
        + "3,Broken,never,\n",
    )

    items = pull(connector(path))

    assert [(t.source_id, t.record["subject"]) for t in tickets_of(items[:2])] == [
        ("2", "Line one\nline two"),
        ("1", "Plain"),
    ]
    assert isinstance(items[2], BadRecord)
    assert (items[2].source_id, items[2].locator) == ("3", "line 5")
    assert len(items) == 3


def test_row_with_the_wrong_number_of_fields_is_a_bad_record(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        HEADER + "1,Short,2026-10-01T00:00:00Z\n" + "2,Long,2026-10-01T00:00:00Z,,extra\n",
    )

    items = pull(connector(path))

    assert items == [
        BadRecord(
            None, "line 2", WHOLE_RECORD, "the row has 3 fields but the header row has 4 columns"
        ),
        BadRecord(
            None, "line 3", WHOLE_RECORD, "the row has 5 fields but the header row has 4 columns"
        ),
    ]


def test_trailing_empty_fields_past_the_header_are_tolerated(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER + "1,Ok,2026-10-01T00:00:00Z,,,\n")

    assert ids(pull(connector(path))) == ["1"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER + "\n1,Ok,2026-10-01T00:00:00Z,\n\n,,,\n")

    assert ids(pull(connector(path))) == ["1"]


def test_empty_id_is_a_bad_record_that_carries_its_cursor(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER + ",No id,2026-10-01T00:00:00Z,\n")

    [bad] = pull(connector(path))

    assert bad == BadRecord(
        source_id=None,
        locator="line 2",
        field="id",
        message="no 'id' value; every ticket needs an id (set id_field to its field)",
        record={
            "id": None,
            "subject": "No id",
            "updated_at": "2026-10-01T00:00:00Z",
            "deleted": None,
        },
        cursor=utc("2026-10-01T00:00:00"),
    )


def test_unparseable_cursor_is_a_bad_record_naming_the_ticket(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER + "7,Late,31/10/2026,\n")

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert (bad.source_id, bad.locator, bad.field) == ("7", "line 2", "updated_at")
    assert (
        bad.message == "'updated_at' is not a datetime: '31/10/2026' is not an ISO 8601 date-time"
    )


def test_missing_id_column_fails_the_run_listing_the_columns(tmp_path: Path) -> None:
    path = write_file(tmp_path, "ticket_id,updated_at\n1,2026-10-01T00:00:00Z\n")

    with pytest.raises(SourceError) as raised:
        pull(connector(path))

    assert str(raised.value).endswith(
        "tickets.csv': no 'id' column for id_field; the header row has 'ticket_id', 'updated_at'"
    )


def test_missing_deleted_column_fails_the_run(tmp_path: Path) -> None:
    path = write_file(tmp_path, "id,updated_at\n1,2026-10-01T00:00:00Z\n")

    with pytest.raises(SourceError, match="no 'removed' column for deleted_field"):
        pull(connector(path, deleted_field="removed"))


def test_duplicate_column_fails_the_run(tmp_path: Path) -> None:
    path = write_file(tmp_path, "id,updated_at,id\n1,2026-10-01T00:00:00Z,2\n")

    with pytest.raises(SourceError, match="column 'id' appears twice in the header row"):
        pull(connector(path))


def test_a_row_with_bytes_not_in_the_encoding_is_a_bad_record_with_a_hint(tmp_path: Path) -> None:
    """One invalid byte used to fail the whole connector, on every pass; like a jsonl
    line, the row is a failed item and the rest of the file goes on."""
    path = tmp_path / "tickets.csv"
    path.write_bytes(
        b"id,subject,updated_at\n"
        b"1,Probl\xe8me,2026-10-01T00:00:00Z\n"
        b'2,"Two lines,\nthe second \xff bad",2026-10-02T00:00:00Z\n'
        b"3,Fine,2026-10-03T00:00:00Z\n"
    )

    items = pull(connector(path))

    hint = "set encoding to the file's encoding, for example cp1252"
    assert items[:2] == [
        BadRecord(
            None,
            "line 2",
            WHOLE_RECORD,
            f"line 2 is not valid utf-8-sig (invalid continuation byte); {hint}",
        ),
        BadRecord(
            None,
            "line 3",
            WHOLE_RECORD,
            f"line 4 is not valid utf-8-sig (invalid start byte); {hint}",
        ),
    ]
    assert [(t.source_id, t.record["subject"]) for t in tickets_of(items[2:])] == [("3", "Fine")]


def test_a_header_with_bytes_not_in_the_encoding_fails_the_run_with_a_hint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tickets.csv"
    path.write_bytes(b"id,sujet\xe9,updated_at\n1,Ok,2026-10-01T00:00:00Z\n")

    with pytest.raises(SourceError, match=r"line 1 is not valid utf-8-sig .* set encoding"):
        pull(connector(path))


def test_utf16_encoding_is_refused_at_config_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="re-encode the file as UTF-8"):
        CsvOptions(path=tmp_path / "tickets.csv", encoding="utf-16")


def test_unknown_encoding_is_refused_at_config_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown encoding 'klingon'"):
        CsvOptions(path=tmp_path / "tickets.csv", encoding="klingon")


def test_quote_character_cannot_be_the_delimiter(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be a CSV delimiter"):
        CsvOptions(path=tmp_path / "tickets.csv", delimiter='"')


def test_sorted_file_breaking_its_promise_fails_naming_the_lines(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        "id,updated_at\n1,2026-10-01T00:00:00Z\n2,2026-10-03T00:00:00Z\n3,2026-10-02T00:00:00Z\n",
    )
    stream = connector(path, sorted=True).pull(None)

    assert [next(stream).source_id, next(stream).source_id] == ["1", "2"]
    with pytest.raises(SourceError, match=r"line 4: updated_at .* earlier than .* on line 3"):
        next(stream)


def test_missing_file_fails_the_run_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"'crm-export': file '.*absent\.csv' does not exist"):
        pull(connector(tmp_path / "absent.csv"))


def test_check_reads_the_header(tmp_path: Path) -> None:
    connector(write_file(tmp_path, HEADER)).check()

    with pytest.raises(SourceError, match="no 'updated_at' column"):
        connector(write_file(tmp_path, "id,changed\n")).check()


def test_empty_file_has_no_tickets(tmp_path: Path) -> None:
    assert pull(connector(write_file(tmp_path, ""))) == []


def test_estimate_leaves_out_the_header(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER + "1,,2026-10-01T00:00:00Z,\n2,,2026-10-01T00:00:00Z,\n")

    assert connector(path).estimate(None) == 2


def test_demo_csv_export_is_read_whole_with_its_tombstones(tmp_path: Path) -> None:
    path = tmp_path / "demo.csv"
    demo = list(generate_tickets())
    write_csv(path, demo)

    tickets = tickets_of(pull(connector(path, deleted_field="deleted")))

    assert [t.source_id for t in tickets] == [str(ticket["id"]) for ticket in demo]
    assert [t.deleted for t in tickets] == [ticket["deleted"] for ticket in demo]
    assert tickets[0].record["requester_email"] == demo[0]["requester"]["email"]


def test_csv_kind_is_installed_as_a_connector() -> None:
    assert connector_class("csv") is CsvConnector
    assert connector_class("csv").Options is CsvOptions


def test_census_lists_the_file_ids_except_deleted_rows_and_rows_without_one(
    tmp_path: Path,
) -> None:
    path = write_file(
        tmp_path,
        "id,updated_at,deleted\n"
        "1,2026-01-01T00:00:00Z,\n"
        "2,2026-01-01T00:00:00Z,true\n"
        ",2026-01-01T00:00:00Z,\n"
        "4,not a date,\n"
        "5,2026-01-02T00:00:00Z,false\n",
    )
    source = connector(path, deleted_field="deleted")

    assert source.takes_census
    assert list(source.scope_ids()) == ["1", "4", "5"]  # 4 is a bad record, but it is there
