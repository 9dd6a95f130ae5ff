"""The mapper: declarative mapping, uids, snake_case keys, errors that name the field."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import SourceTicket
from fragment_emulator import Emulator
from sync.config import ConnectorSettings, build_config
from sync.errors import ConfigError, MappingError
from sync.mapping import Mapper, TaskPayload, Template, snake_case, task_uid
from sync.run import RunOptions, run_once
from sync.state import StateStore
from synckit import make_config

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

RECORD: dict[str, Any] = {
    "id": 4242,
    "subject": "Refund not received",
    "priority": "high",
    "status": "Pending",
    "assignee": "ana@support.example.com",
    "requester": {"email": "joe@example.org", "country": "FR"},
    "created_at": "2026-10-30T08:00:00Z",
    "updated_at": "2026-10-31T09:30:00+02:00",
    "due_at": 1793520000,
    "tags": ["refund", "vip"],
}


def mapper(**mapping: Any) -> Mapper:
    settings = ConnectorSettings.model_validate({"kind": "jsonl", "mapping": mapping})
    return Mapper("helpdesk", "helpdesk", settings.mapping)


def ticket(record: dict[str, Any] | None = None, deleted: bool = False) -> SourceTicket:
    return SourceTicket("4242", T0, record if record is not None else RECORD, deleted)


def test_uid_follows_the_docs_md5_recipe_and_is_stable() -> None:
    expected = uuid.UUID(hashlib.md5(b"helpdesk#ticket#4242", usedforsecurity=False).hexdigest())
    assert task_uid("helpdesk", "4242") == str(expected)
    assert task_uid("helpdesk", "4242") == task_uid("helpdesk", "4242")
    assert task_uid("helpdesk", "4242") != task_uid("billing", "4242")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ticketId", "ticket_id"),
        ("Country Code", "country_code"),
        ("HTTPStatus", "http_status"),
        ("already_snake", "already_snake"),
        ("  spaced--out  ", "spaced_out"),
        ("Prioridad Número", "prioridad_número"),
    ],
)
def test_keys_are_normalised_to_snake_case(name: str, key: str) -> None:
    assert snake_case(name) == key


def test_a_full_declarative_mapping_produces_the_documented_task() -> None:
    task = (
        mapper(
            title="[{priority}] {subject}",
            url="https://support.example.com/tickets/{id}",
            status="status",
            status_map={"pending": "STARTED", "solved": "DONE"},
            due_at="due_at",
            assignee_email="assignee",
            external_created_at="created_at",
            external_updated_at="updated_at",
            fields={"Country Code": "requester.country", "firstTag": "tags.0", "tags": "tags"},
        )
        .map(ticket())
        .task()
    )
    assert task == {
        "uid": task_uid("helpdesk", "4242"),
        "archived": False,
        "status": "STARTED",
        "external_status": "STARTED",
        "due_at": "2026-11-01T08:00:00Z",
        "assignee_email": "ana@support.example.com",
        "external_created_at": "2026-10-30T08:00:00Z",
        "external_updated_at": "2026-10-31T07:30:00Z",
        "fields": {
            "title": "[high] Refund not received",
            "url": "https://support.example.com/tickets/4242",
            "ticket_id": "4242",
            "country_code": "FR",
            "first_tag": "refund",
            "tags": ["refund", "vip"],
        },
    }


def test_unmapped_status_gets_the_default_and_set_status_false_leaves_status_alone() -> None:
    task = mapper(status="status", status_default="TODO", set_status=False).map(ticket()).task()
    assert task["external_status"] == "TODO"
    assert "status" not in task


def test_deleted_ticket_becomes_archived() -> None:
    assert mapper().map(ticket(deleted=True)).task()["archived"] is True


def test_missing_template_key_names_connector_ticket_and_field() -> None:
    with pytest.raises(MappingError) as caught:
        mapper(title="{subject} ({product})").map(ticket())
    error = caught.value
    assert (error.connector, error.source_id, error.field) == ("helpdesk", "4242", "title")
    assert "'product'" in str(error) and "helpdesk" in str(error) and "4242" in str(error)


@pytest.mark.parametrize(
    ("mapping", "record_change", "field"),
    [
        ({"due_at": "due_at"}, {"due_at": "next tuesday"}, "due_at"),
        ({"assignee_email": "assignee"}, {"assignee": 17}, "assignee_email"),
        ({"fields": {"score": "score"}}, {"score": math.nan}, "score"),
        ({"queue_uid": "{queue}"}, {"queue": "not-a-uuid"}, "queue_uid"),
        ({"title": "{subject}"}, {"subject": "   "}, "title"),
    ],
)
def test_wrong_values_name_the_field(
    mapping: dict[str, Any], record_change: dict[str, Any], field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        mapper(**mapping).map(ticket({**RECORD, **record_change}))
    assert caught.value.field == field


def test_equal_content_gives_equal_hashes_whatever_the_key_order() -> None:
    shuffled = dict(reversed(list(RECORD.items())))
    first = mapper(fields={"country": "requester.country"}).map(ticket())
    second = mapper(fields={"country": "requester.country"}).map(ticket(shuffled))
    assert first.body == second.body
    assert first.content_hash == second.content_hash
    changed = mapper(fields={"country": "requester.country"}).map(
        ticket({**RECORD, "requester": {"country": "DE"}})
    )
    assert changed.content_hash != first.content_hash


def adjust(ticket: SourceTicket, task: dict[str, Any]) -> dict[str, Any]:
    task["fields"]["vip"] = "vip" in ticket.record.get("tags", [])
    return task


def break_uid(ticket: SourceTicket, task: dict[str, Any]) -> dict[str, Any]:
    return {**task, "uid": str(uuid.uuid4())}


def test_a_python_hook_adjusts_the_task() -> None:
    task = mapper(hook=f"{__name__}:adjust").map(ticket()).task()
    assert task["fields"]["vip"] is True


def copy_raw(ticket: SourceTicket, task: dict[str, Any]) -> dict[str, Any]:
    task["fields"]["raw"] = ticket.record.get("raw")
    return task


def test_a_hook_result_nested_too_deeply_to_encode_names_the_hook() -> None:
    # A hook copying hostile source data through: the encoder's RecursionError used to
    # escape as an internal error of the whole pass, on the same ticket every time.
    nested: list[Any] = []
    for _ in range(5_000):
        nested = [nested]
    with pytest.raises(MappingError) as caught:
        mapper(hook=f"{__name__}:copy_raw").map(ticket({**RECORD, "raw": nested}))
    assert caught.value.field == "hook"


def test_a_lone_surrogate_deep_in_a_hook_result_names_the_field_holding_it() -> None:
    # Deep enough for the encoder, too deep for a recursive search of the culprit: that
    # search's RecursionError escaped as an internal error of the whole pass.
    nested: list[Any] = ["\ud800"]
    for _ in range(900):
        nested = [nested]
    with pytest.raises(MappingError, match="surrogate") as caught:
        mapper(hook=f"{__name__}:copy_raw").map(ticket({**RECORD, "raw": nested}))
    assert caught.value.field == "raw"


def test_a_hook_may_not_change_the_uid() -> None:
    with pytest.raises(MappingError, match="uid") as caught:
        mapper(hook=f"{__name__}:break_uid").map(ticket())
    assert caught.value.field == "hook"


def test_config_rejects_field_names_that_collide_after_snake_case() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(
            {
                "connectors": {
                    "helpdesk": {
                        "kind": "jsonl",
                        "path": "t.jsonl",
                        "mapping": {"fields": {"ticketId": "a", "Ticket ID": "b"}},
                    }
                }
            },
            source="test",
        )
    assert caught.value.key.startswith("connectors.helpdesk.mapping.fields.")


def test_template_with_unbalanced_brace_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="template"):
        Template("{subject")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_a_built_task_encodes_to_the_canonical_bytes(fields: dict[str, Any]) -> None:
    """The mapper's direct C encoder and the checked `JSONEncoder` agree, errors included."""
    task = {"uid": task_uid("helpdesk", "1"), "archived": False, "fields": fields, **fields}
    outcomes: list[bytes | type[Exception]] = []
    for built in (True, False):
        try:
            outcomes.append(TaskPayload.encode("1", T0, task, built=built).body)
        except (ValueError, UnicodeEncodeError) as exc:  # NaN and infinities; lone surrogates
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    if isinstance(outcomes[0], bytes):
        assert outcomes[0] == json.dumps(
            task, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=8), st.text(min_size=1))
def test_arbitrary_records_map_to_valid_json_or_a_mapping_error(
    record: dict[str, Any], source_id: str
) -> None:
    m = mapper(
        title="{subject}",
        status="status",
        due_at="due",
        assignee_email="who",
        fields={"Any Thing": "subject", "nested": "a.b.0"},
    )
    try:
        payload = m.map(SourceTicket(source_id, T0, record))
    except MappingError as exc:
        # Either outcome is allowed; a mapping error must still name the ticket and field.
        assert exc.source_id == source_id and exc.field  # noqa: PT017
        return
    task = json.loads(payload.body)
    assert task["uid"] == task_uid("helpdesk", source_id)
    assert isinstance(task["fields"]["title"], str) and task["fields"]["title"].strip()
    assert task["status"] in ("TODO", "STARTED", "DONE")


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("Asia/Kolkata", dt.timedelta(hours=5, minutes=30)),
        ("America/New_York", -dt.timedelta(hours=5)),
    ],
)
def test_every_naive_date_a_file_mapping_reads_is_in_the_connectors_timezone(
    kind: str,
    zone: str,
    offset: dt.timedelta,
    emulator: Emulator,
    tmp_path: Path,
    sqlite_url: str,
) -> None:
    """`timezone` applied to the cursor only: due_at and the external dates of naive
    values were read as UTC, off by the zone's offset."""
    row = {
        "id": "7",
        "subject": "Printer on fire",
        "created_at": "2026-01-14T08:00:00",
        "updated_at": "2026-01-15 09:30:00",
        "due_at": "2026-01-20 17:00",
    }
    if kind == "jsonl":
        path = tmp_path / "tickets.jsonl"
        path.write_text(json.dumps(row) + "\n")
    else:
        path = tmp_path / "tickets.csv"
        path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    mapping = {
        "title": "{subject}",
        "external_created_at": "created_at",
        "external_updated_at": "updated_at",
        "due_at": "due_at",
    }
    config = make_config(
        emulator,
        path,
        sqlite_url,
        mapping=mapping,
        connector={"kind": kind, "timezone": zone, "deleted_field": None},
    )
    store = StateStore.open(sqlite_url)
    try:
        [summary] = run_once(config, store, options=RunOptions())
    finally:
        store.close()

    assert summary.ok and summary.pushed == 1, summary.error
    [task] = emulator.store.all_tasks()

    def utc(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC) - offset

    assert dt.datetime.fromisoformat(task["external_created_at"]) == utc("2026-01-14T08:00")
    assert dt.datetime.fromisoformat(task["external_updated_at"]) == utc("2026-01-15T09:30")
    assert dt.datetime.fromisoformat(task["due_at"]) == utc("2026-01-20T17:00")
