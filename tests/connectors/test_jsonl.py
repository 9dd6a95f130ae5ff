"""The `jsonl` connector, on real files: order, the since bound, tombstones and bad lines."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors import files
from connectors.base import BadRecord, Cursor, SourceTicket
from connectors.errors import SourceError
from connectors.files import WHOLE_RECORD
from connectors.jsonl import JsonlConnector, JsonlOptions
from connectors.registry import connector_class
from sync.state.schema import connectors as connectors_table
from sync_demo import BULK_SIZE, generate_tickets, write_jsonl


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def write_file(tmp_path: Path, *lines: dict[str, Any] | str) -> Path:
    """A JSONL file of `lines`: dicts are encoded, strings written as they are."""
    path = tmp_path / "tickets.jsonl"
    text = "".join((json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def connector(path: Path, **options: Any) -> JsonlConnector:
    return JsonlConnector("helpdesk-export", JsonlOptions(path=path, **options))


def pull(source: JsonlConnector, since: Cursor | None = None) -> list[SourceTicket | BadRecord]:
    return list(source.pull(since))


def tickets_of(items: list[SourceTicket | BadRecord]) -> list[SourceTicket]:
    assert not [item for item in items if isinstance(item, BadRecord)]
    return [item for item in items if isinstance(item, SourceTicket)]


def ids(items: list[SourceTicket | BadRecord]) -> list[str | None]:
    return [item.source_id for item in items]


def test_unsorted_file_yields_tickets_in_file_order_and_promises_no_order(
    tmp_path: Path,
) -> None:
    path = write_file(
        tmp_path,
        {"id": "c", "updated_at": "2026-10-02T09:00:00Z"},
        {"id": "b", "updated_at": "2026-10-01T09:00:00Z"},
        {"id": "z", "updated_at": "2026-10-01T08:00:00Z"},
        {"id": "a", "updated_at": "2026-10-01T09:00:00Z"},
    )
    source = connector(path)

    items = pull(source)

    assert ids(items) == ["c", "b", "z", "a"]
    assert [ticket.cursor for ticket in tickets_of(items)] == [
        utc("2026-10-02T09:00:00"),
        utc("2026-10-01T09:00:00"),
        utc("2026-10-01T08:00:00"),
        utc("2026-10-01T09:00:00"),
    ]
    # The engine reads `ordered` to know whether the watermark may move mid-pass.
    assert source.ordered is False
    assert connector(path, sorted=True).ordered is True


def test_unsorted_file_yields_every_version_of_a_ticket_in_file_order(tmp_path: Path) -> None:
    """The connector does not dedupe: the engine keeps the version with the latest cursor."""
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-02T00:00:00Z", "subject": "Newer"},
        {"id": 2, "updated_at": "2026-10-01T12:00:00Z", "subject": "Other"},
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z", "subject": "Older"},
    )

    items = tickets_of(pull(connector(path)))

    assert [(t.source_id, t.cursor, t.record["subject"]) for t in items] == [
        ("1", utc("2026-10-02T00:00:00"), "Newer"),
        ("2", utc("2026-10-01T12:00:00"), "Other"),
        ("1", utc("2026-10-01T00:00:00"), "Older"),
    ]


def test_since_bound_is_inclusive(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T08:59:59Z"},
        {"id": 2, "updated_at": "2026-10-01T09:00:00Z"},
        {"id": 3, "updated_at": "2026-10-01T09:00:00Z"},
        {"id": 4, "updated_at": "2026-10-01T09:00:01Z"},
    )

    items = pull(connector(path), since=utc("2026-10-01T09:00:00"))

    assert ids(items) == ["2", "3", "4"]


def test_integer_id_becomes_source_id_text_and_record_is_kept_whole(tmp_path: Path) -> None:
    record = {"id": 10001, "updated_at": "2026-10-01T09:00:00Z", "requester": {"name": "Zoé"}}
    path = write_file(tmp_path, record)

    [ticket] = tickets_of(pull(connector(path)))

    assert ticket.source_id == "10001"
    assert ticket.record == record
    assert ticket.deleted is False


def test_dotted_paths_name_nested_id_and_cursor(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"ticket": {"key": "SUP-2"}, "meta": {"changed": "2026-10-02T00:00:00Z"}},
        {"ticket": {"key": "SUP-1"}, "meta": {"changed": "2026-10-01T00:00:00Z"}},
    )

    items = pull(connector(path, id_field="ticket.key", cursor_field="meta.changed"))

    assert [(t.source_id, t.cursor) for t in tickets_of(items)] == [
        ("SUP-2", utc("2026-10-02T00:00:00")),
        ("SUP-1", utc("2026-10-01T00:00:00")),
    ]


def test_naive_timestamps_are_read_in_the_configured_timezone(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": "naive", "updated_at": "2026-07-01T12:00:00"},
        {"id": "aware", "updated_at": "2026-07-01T12:00:00+00:00"},
    )

    items = pull(connector(path, timezone="Europe/Paris"))

    # Paris is UTC+2 in July; a timestamp that carries its own offset keeps it.
    assert [(t.source_id, t.cursor) for t in tickets_of(items)] == [
        ("naive", utc("2026-07-01T10:00:00")),
        ("aware", utc("2026-07-01T12:00:00")),
    ]


def test_unknown_timezone_fails_at_config_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus_Mons'"):
        JsonlOptions(path=tmp_path / "tickets.jsonl", timezone="Mars/Olympus_Mons")


def test_int_cursors_compare_numerically_with_inclusive_since(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": "a", "version": 100},
        {"id": "b", "version": 9},
        {"id": "c", "version": "10"},
        {"id": "d", "version": 8},
    )

    items = pull(connector(path, cursor_field="version", cursor_kind="int"), since=9)

    # 100 and "10" are not before 9 as numbers, though they would be as text.
    assert [(t.source_id, t.cursor) for t in tickets_of(items)] == [
        ("a", 100),
        ("b", 9),
        ("c", 10),
    ]


def test_watermark_of_another_cursor_kind_is_refused(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"id": 1, "version": 3})

    with pytest.raises(SourceError, match="reset this connector's state"):
        pull(connector(path, cursor_field="version", cursor_kind="int"), utc("2026-10-01T00:00:00"))


def test_truthy_deleted_field_marks_a_tombstone(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:01Z", "deleted": True},
        {"id": 2, "updated_at": "2026-10-01T00:00:02Z", "deleted": False},
        {"id": 3, "updated_at": "2026-10-01T00:00:03Z"},
        {"id": 4, "updated_at": "2026-10-01T00:00:04Z", "deleted": "false"},
        {"id": 5, "updated_at": "2026-10-01T00:00:05Z", "deleted": 1},
    )

    items = tickets_of(pull(connector(path, deleted_field="deleted")))

    assert [(t.source_id, t.deleted) for t in items] == [
        ("1", True),
        ("2", False),
        ("3", False),
        ("4", False),
        ("5", True),
    ]


def test_deleted_at_timestamp_marks_a_tombstone(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:01Z", "deleted_at": "2026-10-01T00:00:01Z"},
        {"id": 2, "updated_at": "2026-10-01T00:00:02Z", "deleted_at": None},
    )

    items = tickets_of(pull(connector(path, deleted_field="deleted_at")))

    assert [t.deleted for t in items] == [True, False]


def test_without_deleted_field_no_ticket_is_a_tombstone(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"id": 1, "updated_at": "2026-10-01T00:00:00Z", "deleted": True})

    [ticket] = tickets_of(pull(connector(path)))

    assert ticket.deleted is False


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": 2, "updated_at": ', "not valid JSON: Expecting value at column 25"),
        # Python's parser gives up near 1,000 levels with a RecursionError, and refuses an
        # integer of over 4,300 digits with a plain ValueError, not a decode error: either,
        # uncaught, failed every pass of the connector on the same line.
        (
            '{"id": 2, "n": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "nested too deeply for the JSON parser (about 1,000 levels)",
        ),
        ('{"id": 2, "n": 1' + "0" * 5_000 + "}", "holds a number of more than 4,300 digits"),
    ],
    ids=["invalid", "nested-too-deep", "too-many-digits"],
)
def test_a_line_the_parser_refuses_is_a_bad_record_and_the_rest_go_on(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z"},
        line,
        {"id": 3, "updated_at": "2026-10-02T00:00:00Z"},
    )

    items = pull(connector(path))

    assert ids(items) == ["1", None, "3"]
    assert items[1] == BadRecord(
        source_id=None, locator="line 2", field=WHOLE_RECORD, message=message
    )


def test_an_integer_cursor_too_long_to_store_is_a_bad_record_naming_the_field(
    tmp_path: Path,
) -> None:
    # The state keeps cursors in 64 characters; PostgreSQL's array cast cut a longer one.
    path = write_file(
        tmp_path,
        {"id": 1, "version": 7},
        {"id": 2, "version": int("9" * 65)},
        {"id": 3, "version": -int("9" * 63)},
    )

    items = pull(connector(path, cursor_field="version", cursor_kind="int"))

    assert ids(items) == ["1", "2", "3"]
    assert isinstance(items[1], BadRecord)
    assert (items[1].locator, items[1].field) == ("line 2", "version")
    assert "65 characters" in items[1].message and "at most 64" in items[1].message
    assert items[2] == SourceTicket("3", -int("9" * 63), {"id": 3, "version": -int("9" * 63)})


@pytest.mark.parametrize(
    ("line", "kind"),
    [("[1, 2]", "an array"), ('"ticket"', "a string"), ("42", "a number"), ("null", "null")],
)
def test_line_that_is_not_an_object_is_a_bad_record(tmp_path: Path, line: str, kind: str) -> None:
    path = write_file(tmp_path, line)

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert (bad.locator, bad.field) == ("line 1", WHOLE_RECORD)
    assert bad.message == f"expected a JSON object, got {kind}"


def test_missing_id_is_a_bad_record_that_still_carries_its_cursor(tmp_path: Path) -> None:
    record = {"subject": "Refund", "updated_at": "2026-10-01T00:00:00Z"}
    path = write_file(tmp_path, record)

    [bad] = pull(connector(path))

    assert bad == BadRecord(
        source_id=None,
        locator="line 1",
        field="id",
        message="no 'id' value; every ticket needs an id (set id_field to its field)",
        record=record,
        cursor=utc("2026-10-01T00:00:00"),
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "True (bool)"), ({"n": 1}, "{'n': 1} (dict)"), (["7"], "['7'] (list)")],
)
def test_id_of_the_wrong_type_is_a_bad_record(tmp_path: Path, value: Any, shown: str) -> None:
    path = write_file(tmp_path, {"id": value, "updated_at": "2026-10-01T00:00:00Z"})

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert bad.field == "id"
    assert bad.message == f"'id' is {shown}; expected a string or a number"


def test_a_number_id_has_one_spelling_whole_floats_the_integers(tmp_path: Path) -> None:
    """`4.0` and `4` are one JSON number: one ticket "4", not two tasks. Other ids keep the
    text they always had (`4` is "4", a string as written)."""
    path = tmp_path / "tickets.jsonl"
    path.write_text(
        '{"id": 4, "updated_at": "2026-10-01T00:00:00Z"}\n'
        '{"id": 4.0, "updated_at": "2026-10-02T00:00:00Z"}\n'
        '{"id": 4e0, "updated_at": "2026-10-03T00:00:00Z"}\n'
        '{"id": 1e20, "updated_at": "2026-10-04T00:00:00Z"}\n'
        '{"id": 4.5, "updated_at": "2026-10-05T00:00:00Z"}\n'
        '{"id": -0.0, "updated_at": "2026-10-06T00:00:00Z"}\n'
        '{"id": "4.0", "updated_at": "2026-10-07T00:00:00Z"}\n'
        '{"id": " 4", "updated_at": "2026-10-08T00:00:00Z"}\n'
    )

    items = tickets_of(pull(connector(path)))

    assert ids(items) == ["4", "4", "4", "100000000000000000000", "4.5", "0", "4.0", " 4"]


@pytest.mark.parametrize(("number", "shown"), [("NaN", "nan"), ("-Infinity", "-inf")])
def test_a_non_finite_number_id_is_a_bad_record(tmp_path: Path, number: str, shown: str) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_text(f'{{"id": {number}, "updated_at": "2026-10-01T00:00:00Z"}}\n')

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert (bad.field, bad.cursor) == ("id", utc("2026-10-01T00:00:00"))
    assert bad.message == f"'id' is {shown}, not a finite number"


def test_empty_id_is_a_bad_record(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"id": " ", "updated_at": "2026-10-01T00:00:00Z"})

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert (bad.field, bad.message) == ("id", "'id' is empty")


def test_missing_cursor_is_a_bad_record_naming_the_ticket(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"id": 7, "updated_at": None})

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert (bad.source_id, bad.locator, bad.field) == ("7", "line 1", "updated_at")
    assert bad.cursor is None
    assert bad.message.startswith("no 'updated_at' value")


def test_unparseable_cursor_message_quotes_the_value(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"id": 7, "updated_at": "yesterday"})

    [bad] = pull(connector(path))

    assert isinstance(bad, BadRecord)
    assert bad.message == "'updated_at' is not a datetime: 'yesterday' is not an ISO 8601 date-time"


def test_bad_records_without_a_cursor_come_where_they_stand_in_the_file(
    tmp_path: Path,
) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z"},
        {"id": 2, "updated_at": "soon"},
        {"subject": "No id, no cursor"},
        {"id": 4, "updated_at": "2026-09-01T00:00:00Z"},
    )

    items = pull(connector(path))

    assert [isinstance(item, BadRecord) for item in items] == [False, True, True, False]
    assert [item.locator for item in items if isinstance(item, BadRecord)] == [
        "line 2",
        "line 3",
    ]
    assert [item.cursor for item in items if isinstance(item, BadRecord)] == [None, None]
    assert ids(items) == ["1", "2", None, "4"]


def test_bad_record_with_a_cursor_takes_its_place_in_the_file(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-03T00:00:00Z"},
        {"id": [2], "updated_at": "2026-10-02T00:00:00Z"},
        {"id": 3, "updated_at": "2026-10-01T00:00:00Z"},
    )

    items = pull(connector(path))

    assert [item.cursor for item in items] == [
        utc("2026-10-03T00:00:00"),
        utc("2026-10-02T00:00:00"),
        utc("2026-10-01T00:00:00"),
    ]
    assert isinstance(items[1], BadRecord)
    assert (items[1].locator, items[1].field) == ("line 2", "id")


def test_bad_record_before_since_is_not_reported_again(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": None, "updated_at": "2026-10-01T00:00:00Z"},
        {"id": 2, "updated_at": "2026-10-02T00:00:00Z"},
    )

    items = pull(connector(path), since=utc("2026-10-02T00:00:00"))

    assert ids(items) == ["2"]


def test_invalid_utf8_line_is_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_bytes(
        b'{"id": 1, "subject": "caf\xe9", "updated_at": "2026-10-01T00:00:00Z"}\n'
        b'{"id": 2, "updated_at": "2026-10-01T00:00:00Z"}\n'
    )

    items = pull(connector(path))

    assert isinstance(items[0], BadRecord)
    assert items[0].locator == "line 1"
    assert items[0].message == "not valid UTF-8: invalid continuation byte"
    assert ids(items[1:]) == ["2"]


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    path = write_file(tmp_path, "", {"id": 1, "updated_at": "2026-10-01T00:00:00Z"}, "   ", "{")

    items = pull(connector(path))

    assert ids(items) == ["1", None]
    assert [item.locator for item in items if isinstance(item, BadRecord)] == ["line 4"]


def test_byte_order_mark_at_the_start_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_bytes('\ufeff{"id": 1, "updated_at": "2026-10-01T00:00:00Z"}\n'.encode())

    assert ids(pull(connector(path))) == ["1"]


def test_sorted_file_streams_in_file_order_from_since(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z"},
        {"id": 9, "updated_at": "2026-10-02T00:00:00Z"},
        {"id": 3, "updated_at": "2026-10-02T00:00:00Z"},
        {"id": 4, "updated_at": "2026-10-03T00:00:00Z"},
    )

    items = pull(connector(path, sorted=True), since=utc("2026-10-02T00:00:00"))

    # Ties keep file order: the contract allows any order among equal cursors.
    assert ids(items) == ["9", "3", "4"]


def test_sorted_file_yields_tickets_before_the_broken_promise_is_found(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z"},
        {"id": 2, "updated_at": "2026-10-03T00:00:00Z"},
        {"id": 3, "updated_at": "2026-10-02T00:00:00Z"},
    )
    stream = connector(path, sorted=True).pull(None)

    assert [next(stream).source_id, next(stream).source_id] == ["1", "2"]
    with pytest.raises(SourceError) as raised:
        next(stream)

    message = str(raised.value)
    assert message.startswith("connector 'helpdesk-export': file ")
    assert message.endswith(
        "line 3: updated_at 2026-10-02T00:00:00Z is earlier than 2026-10-03T00:00:00Z on line 2,"
        " but sorted = true promises ascending order; sort the file or set sorted = false"
    )


def test_sorted_file_still_reports_bad_lines_in_place(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z"},
        "not json",
        {"id": 2, "updated_at": "2026-10-02T00:00:00Z"},
    )

    items = pull(connector(path, sorted=True))

    assert ids(items) == ["1", None, "2"]


def test_missing_file_fails_the_run_naming_the_path(tmp_path: Path) -> None:
    source = connector(tmp_path / "nowhere.jsonl")

    with pytest.raises(SourceError, match=r"nowhere\.jsonl' does not exist") as raised:
        pull(source)
    assert raised.value.connector == "helpdesk-export"
    with pytest.raises(SourceError, match="does not exist"):
        source.check()


def test_directory_instead_of_file_fails_the_run(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory; path must name a file"):
        pull(connector(tmp_path))


def test_check_passes_on_a_readable_file(tmp_path: Path) -> None:
    connector(write_file(tmp_path, {"id": 1, "updated_at": "2026-10-01T00:00:00Z"})).check()


def test_estimate_counts_lines_for_a_full_pass_only(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        {"id": 1, "updated_at": "2026-10-01T00:00:00Z"},
        "",
        {"id": 2, "updated_at": "2026-10-02T00:00:00Z"},
    )
    source = connector(path)

    assert source.estimate(None) == 2
    assert source.estimate(utc("2026-10-02T00:00:00")) is None
    assert connector(tmp_path / "nowhere.jsonl").estimate(None) is None


def test_demo_export_arrives_in_order_with_its_bulk_update_tie_whole(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    write_jsonl(path, generate_tickets())
    source = connector(path, deleted_field="deleted")

    tickets = tickets_of(pull(source))
    cursors = [ticket.cursor for ticket in tickets]
    bulk_cursor, bulk_size = Counter(cursors).most_common(1)[0]
    from_bulk = tickets_of(pull(source, since=bulk_cursor))

    assert len(tickets) == source.estimate(None) == 1200
    assert cursors == sorted(cursors)
    assert bulk_size == BULK_SIZE
    assert [t.cursor for t in from_bulk[:BULK_SIZE]] == [bulk_cursor] * BULK_SIZE
    assert any(ticket.deleted for ticket in tickets)


def test_jsonl_kind_is_installed_as_a_connector() -> None:
    assert connector_class("jsonl") is JsonlConnector
    assert connector_class("jsonl").Options is JsonlOptions


def test_a_settled_file_is_vouched_for_by_its_size_and_times_without_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file(tmp_path, {"id": "1", "updated_at": "2026-10-01T09:00:00Z"})
    source = connector(path)
    fresh = source.snapshot()
    assert fresh is not None and " " not in fresh  # written just now: its times vouch for nothing

    monkeypatch.setattr(files, "_SETTLED_S", 0.0)
    settled = source.snapshot()
    assert settled is not None and settled.startswith(f"{fresh} stat:")
    assert len(settled) <= connectors_table.c.source_snapshot.type.length  # fits the state
    assert source.same_content(settled, fresh) and source.same_content(fresh, settled)

    # A token whose hash is wrong but whose identity matches comes back as it is: not hashed.
    forged = "blake2b:0000 " + settled.split(" ", 1)[1]
    assert source.snapshot(forged) == forged

    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "2", "updated_at": "2026-10-01T10:00:00Z"}) + "\n")
    changed = source.snapshot(forged)
    assert changed is not None and changed != forged
    assert not source.same_content(changed, settled)
