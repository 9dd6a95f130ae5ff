"""Hostile tickets and hostile configuration.

The mapper, fed arbitrary JSON records (deep nesting, huge strings, every
Unicode plane, NaN and infinities, colliding keys, nulls everywhere), gives a
task the emulator's own model accepts or a `MappingError` naming connector,
ticket and field; nothing else escapes. Uids depend on (namespace, id) only,
and `python -m sync uid` agrees. A hostile config file makes the CLI exit 2
with one clear message naming the key, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectors.base import SourceTicket
from fragment_emulator.models import TaskWrite
from sync.errors import MappingError
from sync.mapping import MAX_DEPTH, Mapper, TaskPayload, task_uid
from sync.spec import MappingSettings

CONNECTOR = "hostile"
CURSOR = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
MAPPING = MappingSettings(
    title="[{priority}] {subject}",
    url="https://support.example.com/t/{id}",
    status="status",
    status_map={"open": "TODO", "solved": "DONE"},
    due_at="due_at",
    assignee_email="assignee",
    external_updated_at="updated_at",
    fields={"custom": "custom", "countryCode": "requester.country", "tags": "tags"},
)
TARGET_FIELDS = {
    "title",
    "url",
    "status",
    "due_at",
    "assignee_email",
    "external_updated_at",
    "custom",
    "country_code",
    "tags",
}

# Every plane, astral included. Lone surrogates (which no UTF-8 source can
# send) have their own test below: they hit a product bug.
plane_chars = st.characters(exclude_categories=["Cs"])
any_char = st.one_of(plane_chars, st.characters(categories=["Cs"]))
texts = st.text(plane_chars, max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=20,
)
moments = st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-8))]))
plausible = {
    "subject": texts,
    "priority": texts,
    "id": st.integers(min_value=0),
    "status": st.sampled_from(["open", "Solved", "pending", ""]),
    "due_at": st.one_of(st.none(), moments.map(lambda m: m.isoformat())),
    "assignee": st.one_of(st.none(), st.emails()),
    "updated_at": moments.map(lambda m: m.isoformat()),
}
records = st.fixed_dictionaries(
    # Mostly plausible values (so mapping often gets to the end), else anything at all.
    {key: st.one_of(value, value, value, json_values) for key, value in plausible.items()},
    optional={
        "custom": json_values,
        "requester": st.one_of(json_values, st.fixed_dictionaries({"country": json_values})),
        "tags": json_values,
        "Subject": json_values,
        "sub_ject": json_values,
    },
)


def _map(record: dict[str, Any], source_id: str = "T-1") -> TaskPayload:
    mapper = Mapper(CONNECTOR, CONNECTOR, MAPPING)
    return mapper.map(SourceTicket(source_id, CURSOR, record, False))


def _assert_valid_task(payload: TaskPayload, source_id: str) -> dict[str, Any]:
    TaskWrite.model_validate_json(payload.body)  # what the emulator would accept
    task = json.loads(payload.body)
    assert task["uid"] == task_uid(CONNECTOR, source_id)
    assert payload.content_hash == TaskPayload.encode(source_id, CURSOR, task).content_hash
    return task


def _assert_names_the_ticket(error: MappingError, source_id: str) -> None:
    assert (error.connector, error.source_id) == (CONNECTOR, source_id)
    assert error.field in TARGET_FIELDS, error.field
    assert f"'{CONNECTOR}'" in str(error) and repr(source_id) in str(error)
    assert error.field in str(error)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records, source_id=st.text(plane_chars, min_size=1))
def test_any_json_record_maps_to_a_valid_task_or_a_mapping_error_naming_the_field(
    record: dict[str, Any], source_id: str
) -> None:
    try:
        payload = _map(record, source_id)
    except MappingError as error:
        _assert_names_the_ticket(error, source_id)
        event(f"refused: {error.field}")
    else:
        _assert_valid_task(payload, source_id)
        event("mapped")


def _plain_json(value: Any) -> bool:
    """Whether `value` is JSON with finite numbers only (what a mapped value may hold)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


@settings(max_examples=100, deadline=None)
@given(value=json_values.filter(_plain_json))
def test_a_mapped_object_keeps_its_keys_even_when_they_collide_after_snake_case(
    value: Any,
) -> None:
    custom = {"fooBar": 1, "foo_bar": 2, "Foo Bar": 3, "FOO-BAR": value}
    record = {"subject": "s", "priority": "p", "id": 1, "custom": custom, "requester": None}

    task = _assert_valid_task(_map(record), "T-1")

    assert task["fields"]["custom"] == custom  # carried as is: only config names are normalised
    assert task["fields"]["country_code"] is None


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_nesting_deeper_than_max_depth_is_a_mapping_error_naming_the_field() -> None:
    base = {"subject": "s", "priority": "p", "id": 1}
    _assert_valid_task(_map({**base, "custom": _nested(MAX_DEPTH)}), "T-1")

    with pytest.raises(MappingError) as refused:
        _map({**base, "custom": _nested(MAX_DEPTH + 1)})
    _assert_names_the_ticket(refused.value, "T-1")
    assert refused.value.field == "custom"

    with pytest.raises(MappingError) as very_deep:
        _map({**base, "tags": _nested(50_000)})  # far past the recursion limit
    assert very_deep.value.field == "tags"


def test_a_one_megabyte_string_maps_and_validates() -> None:
    huge = "é𝄞x" * (1_000_000 // 3)
    task = _assert_valid_task(
        _map({"subject": huge, "priority": "p", "id": 1, "custom": huge}), "T-1"
    )
    assert task["fields"]["title"] == f"[p] {huge}"
    assert task["fields"]["custom"] == huge


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_in_a_mapped_field_are_refused_naming_the_field(bad: float) -> None:
    with pytest.raises(MappingError) as refused:
        _map({"subject": "s", "priority": "p", "id": 1, "custom": {"score": [1, bad]}})
    assert refused.value.field == "custom"
    assert "JSON number" in refused.value.reason


def test_nulls_everywhere_still_give_a_task() -> None:
    record = dict.fromkeys([*plausible, "custom", "requester", "tags"])
    task = _assert_valid_task(_map(record), "T-1")
    assert task["fields"]["title"] == "[] "
    assert task["fields"]["custom"] is None and task["due_at"] is None


@pytest.mark.parametrize(("key", "field"), [("custom", "custom"), ("subject", "title")])
def test_a_lone_surrogate_is_refused_naming_the_field_it_is_in(key: str, field: str) -> None:
    record = {"subject": "s", "priority": "p", "id": 1, key: "bad \ud800 text"}
    with pytest.raises(MappingError) as refused:
        _map(record)
    assert refused.value.field == field


@settings(max_examples=60, deadline=None)
@given(namespace=st.text(any_char), source_id=st.text(any_char))
def test_uids_are_a_function_of_namespace_and_source_id(namespace: str, source_id: str) -> None:
    try:
        namespace.encode("utf-8"), source_id.encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate can't be a key (nor come out of a JSON source decoded)
    first = task_uid(namespace, source_id)
    assert first == task_uid(namespace, source_id)
    mapper = Mapper("another-name", namespace, MappingSettings())
    assert mapper.uid(source_id) == first
    record = {"subject": "x"}
    assert (
        json.loads(mapper.map(SourceTicket(source_id, CURSOR, record, False)).body)["uid"] == first
    )


@pytest.mark.parametrize(
    ("namespace", "source_id"), [("helpdesk", "42"), ("zendesk-eu", "Ticket #7 — é𝄞")]
)
def test_the_uid_command_agrees_with_the_mapper(namespace: str, source_id: str) -> None:
    done = _cli("uid", namespace, source_id, cwd=Path("/"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == task_uid(namespace, source_id)


# Hostile configuration, through the CLI

GOOD = {
    "fragment": '[fragment]\nurl = "http://127.0.0.1:9/api/v1"\ntoken = "t"\n',
    "state": '[state]\nurl = "sqlite:///{dir}/state.db"\n',
    "connector": '[connectors.desk]\nkind = "jsonl"\npath = "{dir}/t.jsonl"\n',
}


def _config_text(tmp_path: Path, **replace: str) -> str:
    sections = {**GOOD, **replace}
    return "".join(sections.values()).replace("{dir}", str(tmp_path))


HOSTILE = {
    "unknown-key": (
        {"fragment": '[fragment]\nurl = "http://127.0.0.1:9/api/v1"\ntokn = "t"\n'},
        "fragment.tokn",
    ),
    "wrong-type": (
        {"fragment": '[fragment]\nurl = "http://x.example/api/v1"\nbatch_size = "lots"\n'},
        "fragment.batch_size",
    ),
    "unknown-option": (
        {"connector": '[connectors.desk]\nkind = "jsonl"\npath = "/t"\nfolder = "/x"\n'},
        "connectors.desk",
    ),
    "unknown-kind": (
        {"connector": '[connectors.desk]\nkind = "carrier-pigeon"\n'},
        "connectors.desk.kind",
    ),
    "unset-variable": (
        {"fragment": '[fragment]\nurl = "http://x.example/api/v1"\ntoken = "${NO_SUCH_VAR_9}"\n'},
        "fragment.token",
    ),
    "unreachable-state": (
        {"state": '[state]\nurl = "postgresql+psycopg://sync:pw@127.0.0.1:1/nowhere"\n'},
        "state.url",
    ),
    "toml-syntax": ({"state": "[state\nurl = 'x'\n"}, "t.toml"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_config_exits_2_with_a_clear_message_naming_the_key(
    case: str, tmp_path: Path
) -> None:
    replace, key = HOSTILE[case]
    config = tmp_path / "t.toml"
    config.write_text(_config_text(tmp_path, **replace))

    done = _cli("run", "--once", "--config", str(config))

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    messages = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    plain = [line for line in messages if not line.startswith("{")]
    assert len(plain) == 1, done.stderr
    assert key in plain[0], plain[0]
    assert done.stdout == ""


def test_an_empty_config_file_exits_2_naming_what_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("")
    done = _cli("run", "--once", "--config", str(config))
    assert done.returncode == 2
    assert "connectors" in done.stderr or "fragment" in done.stderr


def test_a_config_error_is_one_line_on_stderr(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text(_config_text(tmp_path, **HOSTILE["unknown-key"][0]))
    done = _cli("run", "--once", "--config", str(config))
    assert done.stderr.strip().splitlines() == ["configuration error: fragment.tokn: unknown key"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "NO_COLOR": "1", "PYTHONPATH": str(Path(__file__).parents[2])},
        cwd=cwd,
        check=False,
    )
