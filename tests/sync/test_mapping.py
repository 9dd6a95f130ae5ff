"""The mapper: declarative mapping, uids, snake_case keys, errors that name the field.

The payloads' bytes and hashes are pinned: the state stores each task's content
hash, and a changed byte would push every ticket again after an upgrade.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from connectors.base import SourceTicket
from fragment_emulator import Emulator
from sync.config import ConnectorSettings, build_config
from sync.errors import ConfigError, MappingError
from sync.mapping import Mapper, TaskPayload, content_hash, task_uid
from sync.run import RunOptions, run_once
from sync.spec import Template, snake_case
from sync.state import StateStore
from sync_demo import DEMO_MAPPING, generate_tickets
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


def mapper(*, zone: dt.tzinfo = dt.UTC, **mapping: Any) -> Mapper:
    settings = ConnectorSettings.model_validate({"kind": "jsonl", "mapping": mapping})
    return Mapper("helpdesk", "helpdesk", settings.mapping, zone=zone)


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


FULL: dict[str, Any] = {
    "title": "[{priority}] {subject}",
    "url": "https://support.example.com/tickets/{id}",
    "status": "status",
    "status_map": {"pending": "STARTED", "solved": "DONE", "3": "DONE"},
    "due_at": "due_at",
    "assignee_email": "assignee",
    "external_created_at": "created_at",
    "external_updated_at": "updated_at",
    "fields": {"Country Code": "requester.country", "tags": "tags", "score": "score"},
}
FULL_RECORD: dict[str, Any] = {
    **RECORD,
    "assignee": " ana@support.example.com ",
    "tags": ["refund", "vip", 3, None, True],
    "score": 2.5,
}
UID_4242 = "60a54509-7648-6a2e-1bab-400890be91de"


@pytest.mark.parametrize(
    ("mapping", "source_id", "record", "deleted", "body", "hash_"),
    [
        (
            FULL,
            "4242",
            FULL_RECORD,
            False,
            '{"archived":false,"assignee_email":"ana@support.example.com",'
            '"due_at":"2026-11-01T08:00:00Z","external_created_at":"2026-10-30T08:00:00Z",'
            '"external_status":"STARTED","external_updated_at":"2026-10-31T07:30:00Z",'
            '"fields":{"country_code":"FR","score":2.5,"tags":["refund","vip",3,null,true],'
            '"ticket_id":"4242","title":"[high] Refund not received",'
            '"url":"https://support.example.com/tickets/4242"},'
            f'"status":"STARTED","uid":"{UID_4242}"}}',
            "de03305c767a61582b6e02cf6e83dbf6",
        ),
        (
            FULL,
            "4242",
            FULL_RECORD,
            True,
            '{"archived":true,"assignee_email":"ana@support.example.com",'
            '"due_at":"2026-11-01T08:00:00Z","external_created_at":"2026-10-30T08:00:00Z",'
            '"external_status":"STARTED","external_updated_at":"2026-10-31T07:30:00Z",'
            '"fields":{"country_code":"FR","score":2.5,"tags":["refund","vip",3,null,true],'
            '"ticket_id":"4242","title":"[high] Refund not received",'
            '"url":"https://support.example.com/tickets/4242"},'
            f'"status":"STARTED","uid":"{UID_4242}"}}',
            "20dd942e20ea81aacb868e8da3d3ed31",
        ),
        (
            {"title": "{priority:>6}|{score:.3f}", "queue_uid": "{queue}"},
            "4242",
            {**FULL_RECORD, "queue": "6F9619FF-8B86-D011-B42D-00C04FC964FF"},
            False,
            '{"archived":false,"fields":{"ticket_id":"4242","title":"  high|2.500"},'
            f'"queue_uid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","uid":"{UID_4242}"}}',
            "6d85770a528e5dd2e7e74e3ba9c5304b",
        ),
        (
            {},
            "Ünï 7",
            {},
            False,
            '{"archived":false,"fields":{"ticket_id":"Ünï 7","title":"Ticket Ünï 7"},'
            '"uid":"8a08cc59-febe-e1e6-967c-cd6bc3af1bfc"}',
            "25100a3d809331ba5d1b64aef61130fa",
        ),
    ],
    ids=["full", "full-deleted", "format-spec-and-queue", "defaults"],
)
def test_payload_bytes_and_hashes_are_those_the_state_already_holds(
    mapping: dict[str, Any],
    source_id: str,
    record: dict[str, Any],
    deleted: bool,
    body: str,
    hash_: str,
) -> None:
    """A changed byte would change the stored hash and push every ticket again."""
    payload = mapper(**mapping).map(SourceTicket(source_id, T0, record, deleted))
    assert payload.body.decode("utf-8") == body
    assert payload.content_hash == hash_ == content_hash(body.encode("utf-8"))
    assert (payload.source_id, payload.cursor) == (source_id, T0)
    assert payload.uid == task_uid("helpdesk", source_id)


def test_a_tombstone_is_the_uid_and_archived_with_its_pinned_hash() -> None:
    payload = mapper(**FULL).tombstone(SourceTicket("4242", T0, FULL_RECORD, True))
    assert payload.body == f'{{"archived":true,"uid":"{UID_4242}"}}'.encode()
    assert payload.content_hash == "b2423eca34865027c0333a998849b859"


def test_the_demo_tickets_keep_their_hashes() -> None:
    """The demo mapping over the demo's first 1,000 tickets: every content hash, in one digest."""
    demo = mapper(**DEMO_MAPPING)
    digest = hashlib.sha256()
    for record in generate_tickets(1000, 7):
        ticket_ = SourceTicket(str(record["id"]), T0, record, bool(record["deleted"]))
        digest.update(demo.map(ticket_).content_hash.encode())
    assert digest.hexdigest() == "7cca0b685c926802f56d2ac95be3d0e4255a369baf159513937f5b39220c53e0"


def test_a_full_mapping_names_the_field_of_an_unreadable_date() -> None:
    bad = SourceTicket("4242", T0, {**FULL_RECORD, "due_at": "next tuesday"})
    with pytest.raises(MappingError) as caught:
        mapper(**FULL).map(bad)
    error = caught.value
    assert (error.connector, error.source_id, error.field) == ("helpdesk", "4242", "due_at")


def test_naive_dates_are_read_in_the_connectors_zone_and_aware_ones_keep_their_offset() -> None:
    zone = dt.timezone(dt.timedelta(hours=-5))
    ticket_ = SourceTicket("4242", T0, {**FULL_RECORD, "due_at": "2026-11-03 08:00"})
    task = mapper(zone=zone, **FULL).map(ticket_).task()
    assert task["due_at"] == "2026-11-03T13:00:00Z"
    assert task["external_created_at"] == "2026-10-30T08:00:00Z"  # aware: as it is
    assert task["external_updated_at"] == "2026-10-31T07:30:00Z"


def test_floats_and_nested_fields_are_encoded_as_json_writes_them() -> None:
    m = mapper(fields={"score": "score", "country": "requester.country"})
    for score in (0.1, 1e16, -0.0, 1e-7, 2**53 + 1.0):
        payload = m.map(SourceTicket("1", T0, {"score": score, "requester": {"country": "FR"}}))
        fields = json.loads(payload.body)["fields"]
        assert f'"score":{json.dumps(score)}'.encode() in payload.body
        assert fields["country"] == "FR"
    with pytest.raises(MappingError) as caught:
        m.map(SourceTicket("1", T0, {"score": math.inf}))
    assert caught.value.field == "score"


KEYS = ["id", "subject", "priority", "status", "when", "who", "requester", "requester.email",
        "tags", "n", "source_id", "Ünïcode"]  # fmt: skip
PATHS = [*KEYS, "requester.email", "requester.country", "tags.0", "requester.a.b", "absent"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "   ",
            "solved",
            "Pending",
            "a@b.example",
            " x@y.example ",
            "\ud800",
            "2026-10-30T08:00:00Z",
            "2026-13-30T08:00:00Z",
            "2026-10-30T08:00:00+02:00",
            "2026-10-30T08:00:00.5Z",
            "1793520000",
            "3",
        ]
    ),
    st.sampled_from([Decimal("1.5"), Decimal("NaN"), T0, T0.date(), dt.datetime(2026, 1, 1)]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
templates = st.lists(
    st.one_of(
        st.sampled_from(["[", "] ", "#", " ", "{{", "}}", "", "ü"]),
        st.sampled_from(PATHS).map(lambda path: "{" + path + "}"),
    ),
    max_size=4,
).map("".join)
mappings = st.fixed_dictionaries(
    {"title": templates},
    optional={
        "url": templates,
        "fields": st.dictionaries(
            st.sampled_from(["Country", "tags", "n", "Score", "Ünïcode", "aa", "zz"]),
            st.sampled_from(PATHS),
            max_size=4,
        ),
        "source_id_field": st.sampled_from(["ticket_id", "aa", "zz", "key"]),
        "status": st.sampled_from(["status", *PATHS]),
        "status_map": st.just({"solved": "DONE", "pending": "STARTED", "3": "DONE"}),
        "status_default": st.sampled_from(["TODO", "STARTED"]),
        "set_status": st.booleans(),
        "due_at": st.sampled_from(["when", "when", *PATHS]),
        "external_created_at": st.sampled_from(["when", "created"]),
        "assignee_email": st.sampled_from(["who", "who", *PATHS]),
    },
)
plain = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=8),
    st.sampled_from(["solved", "Pending", "a@b.example", "2026-10-30T08:00:00Z"]),
    st.lists(st.one_of(st.text(max_size=4), st.integers(), st.none()), max_size=3),
    st.fixed_dictionaries({}, optional={"email": st.text(max_size=6), "country": st.text()}),
)
texts = st.text(max_size=8)
well_formed = st.fixed_dictionaries(
    {
        "id": st.integers() | texts,
        "subject": texts,
        "priority": texts | st.integers() | st.booleans() | st.none(),
        "status": st.sampled_from(["solved", "Pending", "other", 3, None]),
        "when": st.sampled_from(["2026-10-30T08:00:00Z", "2026-10-30T10:00:00+02:00", None, ""]),
        "who": st.sampled_from(["a@b.example", " x@y.example ", None, ""]),
        "requester": st.fixed_dictionaries({"email": texts, "country": texts}),
        "tags": st.lists(st.one_of(texts, st.integers(), st.none(), st.booleans()), max_size=3),
        "n": st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
    },
    optional={"source_id": texts, "Ünïcode": texts, "requester.email": texts},
)
records = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), st.one_of(plain, values), max_size=10),
    well_formed,  # a ticket most generated mappings can map
)


@settings(max_examples=400, deadline=None)
@given(mappings, records, st.booleans(), st.sampled_from(["4242", "x y", "Ünï"]))
def test_any_mapping_gives_canonical_json_or_an_error_naming_ticket_and_field(
    mapping: dict[str, Any], record: dict[str, Any], deleted: bool, source_id: str
) -> None:
    try:
        m = mapper(**mapping)
    except ConfigError as exc:
        assert exc.key.startswith("connectors.helpdesk.mapping.fields.")  # noqa: PT017
        return  # colliding field names: refused at start
    try:
        payload = m.map(SourceTicket(source_id, T0, record, deleted))
    except MappingError as exc:
        event("mapping error")
        assert (exc.connector, exc.source_id) == ("helpdesk", source_id)  # noqa: PT017
        assert exc.field and exc.field in str(exc)  # noqa: PT017
        return
    event("payload")
    task = json.loads(payload.body)
    assert payload.body == json.dumps(
        task, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert payload.content_hash == content_hash(payload.body)
    assert task["uid"] == payload.uid == task_uid("helpdesk", source_id)
    assert task["archived"] is deleted
    assert isinstance(task["fields"]["title"], str) and task["fields"]["title"].strip()


def _imported_modules(module: str) -> set[str]:
    """Every module `module`'s source imports, at any depth of its code."""
    source = Path(__file__).parents[2] / (module.replace(".", "/") + ".py")
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_spec_sits_below_both_config_and_mapping() -> None:
    """config validates the spec and mapping runs it; neither imports the other."""
    assert {"sync.config", "sync.mapping"}.isdisjoint(_imported_modules("sync.spec"))
    assert "sync.mapping" not in _imported_modules("sync.config")
    assert "sync.config" not in _imported_modules("sync.mapping")
    assert "sync.spec" in _imported_modules("sync.config") & _imported_modules("sync.mapping")


# Fields by name, and dates without a time

ISSUE: dict[str, Any] = {
    "id": 7,
    "subject": "VPN drops",
    "status": {"id": 2, "name": "In Progress"},
    "custom_fields": [
        {"id": 1, "name": "Impact", "value": "Team"},
        {"id": 2, "name": "Severity", "value": "High"},
    ],
    "due_date": "2026-11-30",
}


def test_custom_fields_are_picked_by_name_in_paths_and_templates() -> None:
    m = mapper(
        title="[{custom_fields[name=Severity].value}] {subject}",
        fields={
            "severity": "custom_fields[name=Severity].value",
            "impact": "jmespath:custom_fields[?name=='Impact'].value | [0]",
            "region": 'custom_fields[name=Region].value | "emea"',
        },
    )
    task = m.map(SourceTicket("7", T0, ISSUE)).task()
    assert task["fields"]["title"] == "[High] VPN drops"
    assert task["fields"]["severity"] == "High"
    assert task["fields"]["impact"] == "Team"
    assert task["fields"]["region"] == "emea"


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"fields": {"Severity level": "custom_fields[name=Sev].value"}}, "severity_level"),
        ({"title": "{custom_fields[name=Sev].value}"}, "title"),
        ({"status": "custom_fields[name=State].value"}, "status"),
        ({"due_at": "custom_fields[name=Deadline].value"}, "due_at"),
        ({"fields": {"n": "jmespath:length(subject.name)"}}, "n"),
    ],
)
def test_a_missing_element_fails_the_ticket_naming_connector_ticket_and_field(
    mapping: dict[str, Any], field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        mapper(**mapping).map(SourceTicket("7", T0, ISSUE))
    error = caught.value
    assert (error.connector, error.source_id, error.field) == ("helpdesk", "7", field)
    assert "helpdesk" in str(error) and "'7'" in str(error) and field in str(error)


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"fields": {"Severity": "custom_fields[=Severity].value"}}, "fields.Severity"),
        ({"status": "jmespath:status.[name"}, "status"),
        ({"due_at": 'due_date | "soon'}, "due_at"),
        ({"title": "{custom_fields[name=Sev.value}"}, "title"),
        ({"assignee_email": "jmespath:"}, "assignee_email"),
        ({"date_only_time": "5pm"}, "date_only_time"),
        ({"date_only_zone": "Mars/Olympus"}, "date_only_zone"),
    ],
)
def test_a_malformed_path_or_date_setting_is_a_config_error_naming_the_key(
    mapping: dict[str, Any], key: str
) -> None:
    raw = {"connectors": {"helpdesk": {"kind": "jsonl", "path": "t.jsonl", "mapping": mapping}}}
    with pytest.raises(ConfigError) as caught:
        build_config(raw, source="test")
    assert caught.value.key == f"connectors.helpdesk.mapping.{key}"


@pytest.mark.parametrize(
    ("settings", "zone", "due_at"),
    [
        ({}, dt.UTC, "2026-11-30T17:00:00Z"),  # the end of the business day, by default
        ({}, dt.timezone(dt.timedelta(hours=-5)), "2026-11-30T22:00:00Z"),  # the records' zone
        ({"date_only_zone": "Europe/Paris"}, dt.UTC, "2026-11-30T16:00:00Z"),
        (
            {"date_only_time": "23:59:59", "date_only_zone": "America/Los_Angeles"},
            dt.UTC,
            "2026-12-01T07:59:59Z",
        ),
        (
            {"date_only_time": "09:30", "date_only_zone": "Europe/Paris"},
            dt.UTC,
            "2026-07-01T07:30:00Z",
        ),  # summer time: UTC+2
    ],
)
def test_a_date_without_a_time_falls_at_the_configured_time_in_its_zone(
    settings: dict[str, Any], zone: dt.tzinfo, due_at: str
) -> None:
    day = "2026-07-01" if "09:30" in str(settings) else "2026-11-30"
    m = mapper(zone=zone, due_at="due_date", **settings)
    for value in (day, dt.date.fromisoformat(day)):
        task = m.map(SourceTicket("7", T0, {**ISSUE, "due_date": value})).task()
        assert task["due_at"] == due_at


def test_a_date_with_a_time_is_not_moved_by_the_date_only_settings() -> None:
    m = mapper(due_at="due_date", date_only_time="08:00", date_only_zone="Asia/Tokyo")
    for value, expected in [
        ("2026-11-30T10:00:00Z", "2026-11-30T10:00:00Z"),
        ("2026-11-30 10:00", "2026-11-30T10:00:00Z"),  # naive: the records' zone, UTC here
        (dt.datetime(2026, 11, 30, tzinfo=dt.UTC), "2026-11-30T00:00:00Z"),
    ]:
        task = m.map(SourceTicket("7", T0, {**ISSUE, "due_date": value})).task()
        assert task["due_at"] == expected
