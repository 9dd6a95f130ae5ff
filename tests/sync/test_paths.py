"""Mapping paths: list elements chosen by a key, defaults, JMESPath, and their syntax errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.records import MISSING, FieldPath
from sync.paths import PathNotReadable, parse_path

ISSUE: dict[str, Any] = {
    "id": 7,
    "custom_fields": [
        {"id": 1, "name": "Severity", "value": "High"},
        {"id": 2, "name": "External ID", "value": None},
        {"id": 3, "name": "Tags [ops]", "value": ["vpn", "lan"], "multiple": True},
        {"id": 4, "name": "Impact", "value": ""},  # Redmine's unset text field
    ],
    "Amount [EUR]": 12,
    "requester.email": "flat@example.org",
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("custom_fields[name=Severity].value", "High"),
        ("custom_fields[name = Severity].value", "High"),
        ("custom_fields[id=3].value.1", "lan"),  # a number matches its digits
        ('custom_fields[name="Tags [ops]"].value.0', "vpn"),  # quoted: brackets inside
        ("custom_fields[name=Severity]", ISSUE["custom_fields"][0]),
        ("custom_fields[name=Severity].nothing", MISSING),  # the element exists: null
        ("custom_fields[name=External ID].value", None),
        ("Amount [EUR]", 12),  # brackets without `=` stay part of a key, as before
        ("requester.email", "flat@example.org"),
    ],
)
def test_a_selector_picks_the_element_whose_key_has_the_value(path: str, value: Any) -> None:
    assert parse_path(path).read(ISSUE) == value


def test_a_selector_matching_nothing_fails_naming_what_it_looked_for() -> None:
    path = parse_path("custom_fields[name=Region].value")
    with pytest.raises(PathNotReadable, match=r"custom_fields\[name=Region\]"):
        path.read(ISSUE)
    with pytest.raises(PathNotReadable):
        path.read({"id": 8})  # no list at all: no element either


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ('custom_fields[name=Region].value | "none"', "none"),
        ("custom_fields[name=Region].value | null", None),
        ("custom_fields[name=External ID].value | 0", 0),  # null gives way too
        ('custom_fields[name=Impact].value | "none"', "none"),
        ('custom_fields[name=Severity].value | "none"', "High"),
        ('subject | "(no subject)"', "(no subject)"),
        ('custom_fields[name=Severity].value|["a", 1]', "High"),
    ],
)
def test_a_default_stands_in_for_a_missing_null_or_empty_value(path: str, value: Any) -> None:
    parsed = parse_path(path)
    assert parsed.read(ISSUE) == value
    assert not parsed.may_fail


def test_a_jmespath_expression_reads_what_a_path_cannot() -> None:
    high = parse_path("jmespath:custom_fields[?value=='High'].name | [0]")
    assert high.read(ISSUE) == "Severity"
    count = parse_path("jmespath:length(custom_fields)")
    assert count.read(ISSUE) == 4
    assert parse_path("jmespath:nothing.here").read(ISSUE) is None


def test_a_jmespath_type_error_on_a_record_fails_that_record() -> None:
    with pytest.raises(PathNotReadable, match="JMESPath"):
        parse_path("jmespath:length(id)").read(ISSUE)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("custom_fields[=Severity].value", "names no key"),
        ("custom_fields[name=].value", "has no value"),
        ('custom_fields[name="Sev].value', "closing quote"),
        ("custom_fields[name=Sev.value", "closing"),
        ("custom_fields[name=Severity]value", "expected '\\.' or"),
        ("custom_fields[name=Severity].", "ends with a dot"),
        ("custom_fields[name=Severity].value | none", "not a JSON value"),
        ("jmespath:custom_fields[?name=='Severity'", "invalid JMESPath"),
        ("jmespath:", "empty JMESPath"),
        (" | null", "empty path"),
    ],
)
def test_a_malformed_path_is_refused_saying_why(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_path(path)


def test_a_plain_path_keeps_the_field_paths_own_reader() -> None:
    """No wrapper on the common path: the mapping's speed is FieldPath's."""
    parsed = parse_path("requester.email")
    assert not parsed.may_fail
    assert parsed.read.__self__.__class__ is FieldPath  # type: ignore[attr-defined]


names = st.text(st.characters(codec="utf-8"), min_size=1)


@given(
    st.lists(st.tuples(names, st.integers()), min_size=1, max_size=6, unique_by=lambda p: p[0]),
    st.data(),
)
def test_any_name_quoted_selects_its_own_element(
    pairs: list[tuple[str, int]], data: st.DataObject
) -> None:
    """Whatever a field's name holds (brackets, dots, pipes, `=`, quotes, backslashes, spaces
    around it), written as a JSON string it selects its own element, and a default after it
    still parses."""
    record = {"custom_fields": [{"name": name, "value": value} for name, value in pairs]}
    name, value = data.draw(st.sampled_from(pairs))
    path = parse_path(f"custom_fields[name={json.dumps(name)}].value | null")
    assert path.read(record) == value
    absent = parse_path(f"custom_fields[name={json.dumps(name + '?')}].value")
    if all(other != name + "?" for other, _ in pairs):
        with pytest.raises(PathNotReadable):
            absent.read(record)
