"""The compiled fast path gives the general path's payload, byte for byte, or steps aside."""

from __future__ import annotations

import datetime as dt
import linecache
import math
from decimal import Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from connectors.base import SourceTicket
from sync.config import ConnectorSettings
from sync.errors import ConfigError, MappingError
from sync.mapping import Mapper, TaskPayload

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

FULL = {
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
RECORD = {
    "id": 4242,
    "subject": "Refund not received",
    "priority": "high",
    "status": "Pending",
    "assignee": " ana@support.example.com ",
    "requester": {"email": "joe@example.org", "country": "FR"},
    "created_at": "2026-10-30T08:00:00Z",
    "updated_at": "2026-10-31T09:30:00+02:00",
    "due_at": 1793520000,
    "tags": ["refund", "vip", 3, None, True],
    "score": 2.5,
}


def mappers(mapping: dict[str, Any]) -> tuple[Mapper, Mapper]:
    """The same settings with the fast path on and off."""
    settings = ConnectorSettings.model_validate({"kind": "jsonl", "mapping": mapping}).mapping
    return Mapper("helpdesk", "helpdesk", settings), Mapper(
        "helpdesk", "helpdesk", settings, fast=False
    )


def general(mapper: Mapper, ticket: SourceTicket) -> TaskPayload | MappingError:
    try:
        return mapper.map(ticket)
    except MappingError as exc:
        return exc


def test_a_plain_ticket_takes_the_fast_path_and_gets_the_general_payload() -> None:
    fast, slow = mappers(FULL)
    ticket = SourceTicket("4242", T0, RECORD)
    assert fast._fast is not None
    payload = fast._fast(ticket)
    assert payload is not None  # this ticket must not step aside, or the test proves nothing
    assert payload == slow.map(ticket)
    assert payload.task()["fields"]["url"] == "https://support.example.com/tickets/4242"


def test_a_mapping_with_a_hook_or_a_format_spec_is_not_compiled() -> None:
    assert mappers({"hook": "tests.sync.test_mapping:adjust"})[0]._fast is None
    assert mappers({"title": "{priority:>8}"})[0]._fast is None
    assert mappers({"queue_uid": "{queue}"})[0]._fast is None


def test_errors_come_from_the_general_path_with_the_field_named() -> None:
    fast, _slow = mappers(FULL)
    bad = SourceTicket("4242", T0, {**RECORD, "due_at": "next tuesday"})
    assert fast._fast is not None and fast._fast(bad) is None
    error = general(fast, bad)
    assert isinstance(error, MappingError) and error.field == "due_at"


def test_naive_dates_are_read_in_the_connectors_zone_on_both_paths() -> None:
    settings = ConnectorSettings.model_validate({"kind": "jsonl", "mapping": FULL}).mapping
    zone = dt.timezone(dt.timedelta(hours=-5))
    fast = Mapper("helpdesk", "helpdesk", settings, zone=zone)
    slow = Mapper("helpdesk", "helpdesk", settings, zone=zone, fast=False)
    ticket = SourceTicket("4242", T0, {**RECORD, "due_at": "2026-11-03 08:00"})

    assert fast._fast is not None
    payload = fast._fast(ticket)

    assert payload is not None and payload == slow.map(ticket)
    assert payload.task()["due_at"] == "2026-11-03T13:00:00Z"
    assert payload.task()["external_created_at"] == "2026-10-30T08:00:00Z"  # aware: as it is


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
    well_formed,  # a ticket the fast path should take, when the mapping reads it sensibly
)


@settings(max_examples=400, deadline=None)
@given(mappings, records, st.booleans(), st.sampled_from(["4242", "x y", "Ünï"]))
def test_the_fast_path_gives_the_general_payload_or_steps_aside(
    mapping: dict[str, Any], record: dict[str, Any], deleted: bool, source_id: str
) -> None:
    try:
        fast, slow = mappers(mapping)
    except ConfigError:
        return  # colliding field names: refused at start, whichever path
    ticket = SourceTicket(source_id, T0, record, deleted)
    expected = general(slow, ticket)
    if fast._fast is not None:
        payload = fast._fast(ticket)
        event("fast path" if payload is not None else "stepped aside")
        if payload is not None:
            assert payload == expected
    outcome = general(fast, ticket)
    if isinstance(expected, MappingError):
        assert isinstance(outcome, MappingError)
        assert (outcome.field, str(outcome)) == (expected.field, str(expected))
    else:
        assert outcome == expected


def test_floats_and_nested_fields_are_encoded_as_the_general_path_does() -> None:
    fast, slow = mappers({"fields": {"score": "score", "country": "requester.country"}})
    for score in (0.1, 1e16, -0.0, 1e-7, 2**53 + 1.0):
        ticket = SourceTicket("1", T0, {"score": score, "requester": {"country": "FR"}})
        assert fast._fast is not None
        payload = fast._fast(ticket)
        assert payload is not None and payload == slow.map(ticket)
    assert fast._fast(SourceTicket("1", T0, {"score": math.inf})) is None


def test_mapping_again_with_the_same_settings_keeps_one_source_listing() -> None:
    """A daemon builds a mapper per pass: the compiled source must not pile up in memory."""
    before = set(linecache.cache)
    first, _slow = mappers(FULL)
    for _ in range(5):
        mappers(FULL)
    added = {name for name in set(linecache.cache) - before if "fast map" in name}
    assert first._fast is not None
    assert added <= {first._fast.__code__.co_filename} and len(added) <= 1
