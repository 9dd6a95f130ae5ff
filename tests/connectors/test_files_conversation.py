"""The file connectors' `comments_field`: each record's comments, a list in JSON Lines and
its JSON text in a CSV cell."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.base import BadRecord, SourceTicket
from connectors.csv import CsvConnector, CsvOptions
from connectors.jsonl import JsonlConnector, JsonlOptions

NOTES = [
    {"id": 2, "created_at": "2026-11-02 09:05:00", "body": "Later", "public": "false"},
    {"id": 1, "created_at": "2026-11-02T08:00:00Z", "body": "Earlier", "author_id": 42},
]


def test_a_csv_cell_of_json_gives_the_rows_comments_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text(
        "id,updated_at,notes\n"
        f'7,2026-11-02T10:00:00Z,"{json.dumps(NOTES).replace(chr(34), chr(34) * 2)}"\n'
        "8,2026-11-02T10:00:00Z,\n"
    )
    source = CsvConnector(
        "export", CsvOptions(path=path, comments_field="notes", timezone="Europe/Paris")
    )
    source.read_comments = True

    seven, eight = source.pull(None)

    assert isinstance(seven, SourceTicket) and seven.comments is not None
    assert [(c.comment_id, c.body, c.public, c.author_id) for c in seven.comments] == [
        ("1", "Earlier", True, "42"),
        ("2", "Later", False, None),
    ]
    assert seven.comments[1].created_at.isoformat() == "2026-11-02T08:05:00+00:00"  # Paris
    assert isinstance(eight, SourceTicket) and eight.comments == []


def test_comments_are_left_unread_unless_the_engine_asks(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_text(json.dumps({"id": 1, "updated_at": "2026-11-02T10:00:00Z", "notes": NOTES}))
    source = JsonlConnector("export", JsonlOptions(path=path, comments_field="notes"))

    [ticket] = source.pull(None)

    assert isinstance(ticket, SourceTicket) and ticket.comments is None


def test_a_comments_field_that_is_no_list_fails_its_ticket_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    lines = [
        {"id": 1, "updated_at": "2026-11-02T10:00:00Z", "notes": "not json"},
        {"id": 2, "updated_at": "2026-11-02T10:00:00Z", "notes": [{"id": 5, "body": "x"}]},
        {"id": 3, "updated_at": "2026-11-02T10:00:00Z", "notes": []},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    source = JsonlConnector("export", JsonlOptions(path=path, comments_field="notes"))
    source.read_comments = True

    one, two, three = source.pull(None)

    assert isinstance(one, BadRecord) and isinstance(two, BadRecord)
    assert (one.source_id, one.field, one.locator) == ("1", "notes", "ticket 1 (line 1)")
    assert "not a JSON array" in one.message
    assert (two.field, two.message) == ("notes.0.created_at", "a comment can't be read: is missing")
    assert two.cursor is not None  # the watermark may pass it
    assert isinstance(three, SourceTicket) and three.comments == []


def test_an_unset_comments_field_stays_out_of_the_settings_fingerprint(tmp_path: Path) -> None:
    options = JsonlOptions(path=tmp_path / "t.jsonl")

    assert "comments_field" not in options.model_dump(mode="json")
    assert "comments_field" in JsonlOptions(
        path=tmp_path / "t.jsonl", comments_field="notes"
    ).model_dump(mode="json")
