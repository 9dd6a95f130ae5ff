"""Reading record values by dotted field path, and tombstone flags."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.records import MISSING, get_path, is_flag_set

TICKET: dict[str, Any] = {
    "id": 10001,
    "assignee": None,
    "requester": {"email": "lena.weber@gmx.example", "address": {"country": "DE"}},
    "tags": ["billing", "vip"],
    "comments": [{"author": "agent"}, {"author": "requester"}],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("id", 10001),
        ("requester.email", "lena.weber@gmx.example"),
        ("requester.address.country", "DE"),
        ("tags.0", "billing"),
        ("tags.1", "vip"),
        ("comments.1.author", "requester"),
    ],
)
def test_dotted_path_reads_nested_keys_and_list_items(path: str, expected: Any) -> None:
    assert get_path(TICKET, path) == expected


def test_present_null_is_none_but_absent_field_is_missing() -> None:
    assert get_path(TICKET, "assignee") is None
    assert get_path(TICKET, "due_at") is MISSING


@pytest.mark.parametrize(
    "path",
    ["requester.phone", "tags.2", "tags.-1", "tags.first", "id.0", "requester.email.0", ""],
)
def test_path_that_leads_nowhere_is_missing(path: str) -> None:
    assert get_path(TICKET, path) is MISSING


def test_flat_key_containing_dots_is_found() -> None:
    row = {"requester.email": "ana.silva@uol.example"}

    assert get_path(row, "requester.email") == "ana.silva@uol.example"


def test_flat_key_wins_over_nested_path_of_same_spelling() -> None:
    record = {"a.b": "flat", "a": {"b": "nested"}}

    assert get_path(record, "a.b") == "flat"


def test_nested_path_is_tried_when_flat_key_leads_nowhere() -> None:
    record = {"a.b": {"x": 1}, "a": {"b": {"c": 2}}}

    assert get_path(record, "a.b.c") == 2


def test_missing_prints_as_missing() -> None:
    assert repr(MISSING) == "MISSING"


_KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=5)


@given(keys=st.lists(_KEYS, min_size=1, max_size=4), value=st.integers())
def test_value_nested_under_any_keys_is_found_by_joined_path(keys: list[str], value: int) -> None:
    record: Any = value
    for key in reversed(keys):
        record = {key: record}

    assert get_path(record, ".".join(keys)) == value


@pytest.mark.parametrize(
    "value", [True, 1, 2.5, "true", "TRUE", "yes", "Y", "1", "deleted", "2026-10-03T08:00:00Z"]
)
def test_values_that_mark_a_tombstone(value: Any) -> None:
    assert is_flag_set(value)


@pytest.mark.parametrize(
    "value", [False, 0, 0.0, None, MISSING, "", "  ", "false", "False", "no", "N", "0", " off "]
)
def test_values_that_leave_a_ticket_live(value: Any) -> None:
    assert not is_flag_set(value)
