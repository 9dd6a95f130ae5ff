"""The emulator's fast paths give exactly what its definitions give, or step aside.

`fragment_emulator.fastpath` skips pydantic for plainly valid items. Whatever
awkward JSON a client sends (uids in every spelling, timestamps at and past
every range limit, offsets, fractions, unicode, huge ints, non-finite
numbers, duplicate keys, nulls), the fast path either gives exactly what
`TaskWrite` would (same keys, values of the same type and value) or steps
aside. Likewise `fragment_emulator.readmodel` writes a task's read model as
`to_json(render_task(...))` would, or steps aside. Neither steps aside for
what a sync client commonly sends.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import pydantic_core
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fragment_emulator.fastpath import plain_batch, plain_task
from fragment_emulator.models import READ_KEYS, WRITE_ONLY_KEYS, TaskBatch, TaskWrite, render_task
from fragment_emulator.readmodel import read_model_text, task_texts


def identical(left: Any, right: Any) -> bool:
    """Equal and of the same types all the way down (1, 1.0 and True are not alike here)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(identical(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(identical, left, right))
    if isinstance(left, float):
        return math.copysign(1, left) == math.copysign(1, right) and left == right
    return bool(left == right)


def model_written(text: str) -> dict[str, Any] | None:
    """What pydantic makes of a single-task body, or None when it refuses it."""
    try:
        return TaskWrite.model_validate_json(text, strict=True).written()
    except ValidationError:
        return None


def assert_agrees(text: str) -> dict[str, Any] | None:
    """Assert the fast path gives what pydantic gives, or nothing; return what it gave."""
    fast = plain_task(text.encode("utf-8", "surrogatepass"))
    if fast is not None:
        slow = model_written(text)
        assert slow is not None, f"fast path accepted what pydantic refuses: {text}"
        # `written()` lists keys in set order; the values are what count.
        assert fast.keys() == slow.keys()
        assert all(identical(fast[key], slow[key]) for key in fast), (fast, slow)
    return fast


# -- strategies: awkward JSON text, built as text so NaN, 1e400 and duplicates fit ---


def two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


offsets = st.one_of(
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0200", "+02", " Z"]),
    st.tuples(st.sampled_from("+-"), two(0, 25), two(0, 61)).map(lambda p: f"{p[0]}{p[1]}:{p[2]}"),
)
timestamp_texts = st.one_of(
    st.tuples(
        st.integers(0, 9999).map(lambda n: f"{n:04d}"),
        two(0, 13),
        two(0, 32),
        st.sampled_from(["T", "t", " ", "_"]),
        two(0, 25),
        two(0, 61),
        two(0, 61),
        st.one_of(
            st.just(""), st.text("0123456789", min_size=0, max_size=9).map(lambda f: "." + f)
        ),
        offsets,
    ).map(lambda p: f"{p[0]}-{p[1]}-{p[2]}{p[3]}{p[4]}:{p[5]}:{p[6]}{p[7]}{p[8]}"),
    st.sampled_from(
        [
            "2026-08-03",
            "20260803T010546Z",
            "2026-W31-1T01:05:46Z",
            "\uff12\uff10\uff12\uff16-08-03T01:05:46Z",  # fullwidth digits
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "2024-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
        ]
    ),
)
uids = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [
            str(u),
            str(u).upper(),
            u.hex,
            "{" + str(u) + "}",
            "urn:uuid:" + str(u),
            str(u)[1:],
            " " + str(u),
        ]
    )
)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
# Few keys, so objects often repeat one (the last wins when decoding).
keys = st.one_of(texts, st.sampled_from(["a", "b"]))
numbers = st.one_of(
    st.integers(-(2**80), 2**80).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["-0", "-0.0", "1e400", "-1e400", "NaN", "Infinity", "1E2", "0.1", "4.9e-324"]),
)
json_texts = st.recursive(
    st.one_of(
        st.sampled_from(["null", "true", "false"]),
        numbers,
        texts.map(json.dumps),
        st.just('"\\ud800"'),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(keys, inner), max_size=3).map(
            lambda pairs: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=10,
)


def quoted(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return strategy.map(json.dumps)


finite_json_texts = st.recursive(
    st.one_of(
        st.sampled_from(["null", "true", "false", "-0", "-0.0", "1E2", "0.1", "4.9e-324", "1e308"]),
        st.integers(-(2**80), 2**80).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        texts.map(json.dumps),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(keys, inner), max_size=3).map(
            lambda pairs: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=10,
)
zones = st.one_of(
    st.just(dt.UTC),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m))),
)
valid_timestamp_texts = st.tuples(
    st.datetimes(timezones=zones),
    st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]),
    st.booleans(),
).map(lambda p: p[0].isoformat(timespec=p[1]).replace("+00:00", "Z" if p[2] else "+00:00"))


def value_for(key: str, wild: bool) -> st.SearchStrategy[str]:
    """JSON text for `key`: what its type takes, in awkward forms; `wild` adds anything at all."""
    if key not in TaskWrite.model_fields:
        return json_texts
    annotation = str(TaskWrite.model_fields[key].annotation)
    if key in ("fields", "legacy_data", "participants", "form_data"):
        typed = st.lists(st.tuples(keys, finite_json_texts), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"
        )
    elif key == "skills":
        typed = st.lists(quoted(st.uuids().map(str)), max_size=3).map(
            lambda items: "[" + ",".join(items) + "]"
        )
    elif key.endswith("_at"):
        typed = quoted(valid_timestamp_texts)
    elif "uid" in key or key.endswith("_by"):
        typed = quoted(st.uuids(version=None).map(str))
    elif "Literal" in annotation:
        typed = quoted(st.sampled_from(["TODO", "STARTED", "DONE"]))
    elif "bool" in annotation:
        typed = st.sampled_from(["true", "false"])
    else:
        typed = quoted(texts)
    if not wild:
        return st.one_of(typed, typed, typed, st.just("null"))
    if key.endswith("_at"):
        typed = st.one_of(typed, quoted(timestamp_texts))
    elif "uid" in key or key.endswith("_by"):
        typed = st.one_of(typed, quoted(uids))
    return st.one_of(typed, typed, st.just("null"), json_texts)


def objects(wild: bool) -> st.SearchStrategy[str]:
    keys = [*TaskWrite.model_fields, "bogus"] if wild else list(TaskWrite.model_fields)
    return st.lists(
        st.sampled_from(keys).flatmap(lambda key: value_for(key, wild).map(lambda v: (key, v))),
        max_size=8,
    ).map(lambda pairs: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}")


# Plausible items (most valid, in every awkward spelling), anything-goes items
# (most invalid), and JSON that is not an object at all.
items = st.one_of(objects(wild=False), objects(wild=True), json_texts)


# -- the tests ----------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(items)
def test_fast_path_item_is_exactly_what_the_model_makes_of_it(text: str) -> None:
    fast = assert_agrees(text)

    event("fast path" if fast is not None else "left to pydantic")


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=4), st.one_of(st.none(), json_texts))
def test_fast_path_batch_is_each_item_as_the_model_reads_it(
    item_texts: list[str], meta: str | None
) -> None:
    envelope = '{"items":[' + ",".join(item_texts) + "]" + (f',"meta":{meta}' if meta else "") + "}"
    fast = plain_batch(envelope.encode("utf-8", "surrogatepass"))
    if fast is None:
        return
    batch = TaskBatch.model_validate_json(envelope, strict=True)
    assert len(fast) == len(batch.items)
    for plain, model in zip(fast, batch.items, strict=True):
        slow = model.written()
        assert plain.keys() == slow.keys()
        assert all(identical(plain[key], slow[key]) for key in plain)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("2026-08-03T01:05:46Z", "2026-08-03T01:05:46.000000Z", id="zulu"),
        pytest.param("2026-08-03T01:05:46.5Z", "2026-08-03T01:05:46.500000Z", id="fraction"),
        pytest.param(
            "2024-12-31T23:30:00.000001-01:00", "2025-01-01T00:30:00.000001Z", id="offset"
        ),
        pytest.param(
            "2026-08-03T01:05:46+23:59", "2026-08-02T01:06:46.000000Z", id="widest-offset"
        ),
        pytest.param("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z", id="year-one"),
        pytest.param("2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000000Z", id="leap-day"),
        pytest.param("2026-12-31T00:00:00Z", "2026-12-31T00:00:00.000000Z", id="day-31"),
    ],
)
def test_plain_timestamps_take_the_fast_path_and_are_stored_as_utc_text(
    sent: str, stored: str
) -> None:
    written = assert_agrees(json.dumps({"due_at": sent}))

    assert written == {"due_at": stored}


@pytest.mark.parametrize(
    "sent",
    [
        "0001-01-01T00:30:00+01:00",  # year 0 in UTC
        "9999-12-31T23:30:00-01:00",  # year 10000 in UTC
        "2023-02-29T12:00:00Z",
        "2026-04-31T12:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-08-03T01:05:46.1234567Z",  # pydantic truncates; left to it
        "2026-08-03 01:05:46Z",
        "2026-W31-1T01:05:46Z",
    ],
)
def test_timestamps_outside_the_plain_shape_are_left_to_pydantic(sent: str) -> None:
    assert plain_task(json.dumps({"due_at": sent}).encode()) is None


def test_what_a_sync_client_sends_takes_the_fast_path() -> None:
    """The fast path must serve the common case, or it is dead weight."""
    item = {
        "uid": str(uuid.uuid4()),
        "archived": False,
        "assignee_email": "tobias.richter@support.example.com",
        "due_at": None,
        "external_created_at": "2026-08-03T01:05:46Z",
        "external_status": "DONE",
        "external_updated_at": "2026-08-03T01:07:05+02:00",
        "fields": {
            "title": "[normal] Ünïcode 🎉",
            "tags": ["a", "b"],
            "nested": {"n": 10**30, "x": 1.5, "none": None},
        },
        "status": "DONE",
    }
    body = json.dumps({"items": [item, item | {"uid": str(uuid.uuid4())}]}).encode()

    assert plain_batch(body) is not None
    assert assert_agrees(json.dumps(item)) is not None


@pytest.mark.parametrize(
    "body",
    [
        '{"items": [{"uid": "A0000000-0000-0000-0000-00000000000B"}]}',
        '{"items": [{"fields": {"score": NaN}}]}',
        '{"items": [{"fields": {"score": 1e400}}]}',
        '{"items": [{"bogus": 1}]}',
        '{"items": [5]}',
        '{"items": {}}',
        '{"items": [], "extra": 1}',
        '{"meta": {}}',
        '{"items": [{"status": null}]}',
        '{"items": [{"fields": null}]}',
        '{"items": [{"archived": 0}]}',
        '{"items": [{"fields": {"t": "\\ud800"}}]}',
        "[]",
        # pydantic checks a member a later duplicate key overwrites; decoding drops it
        '{"items": [{"fields": {"": 1e400, "": null}}]}',
        '{"items": [{"fields": {"n": [1.5E+308 ], "n": 1}}]}',
        '{"items": [{"fields": {"n": NaN, "n": 1}}]}',
        '{"items": [{"fields": {"n": 1' + "0" * 300 + '.5, "n": 1}}]}',
        '{"items": [], "meta": {"m": -1e400, "m": 0}}',
    ],
)
def test_anything_unusual_is_left_to_pydantic(body: str) -> None:
    assert plain_batch(body.encode()) is None


def test_null_takes_the_fast_path_for_exactly_the_keys_the_model_lets_be_null() -> None:
    for key in TaskWrite.model_fields:
        text = json.dumps({key: None})
        assert (plain_task(text.encode()) is not None) == (model_written(text) is not None), key


# -- the read model's text --------------------------------------------------------


def reference_text(doc: dict[str, Any], assignee: dict[str, Any] | None) -> str:
    """The read model's text as the dict path makes it: the definition."""
    rendered = render_task(doc, CREATED, UPDATED, assignee)
    return pydantic_core.to_json(rendered, inf_nan_mode="strings").decode()


CREATED = "2026-11-30T12:00:00.000000Z"
UPDATED = "2026-11-30T12:00:01.500000Z"
ASSIGNEE = {"uid": str(uuid.UUID(int=7)), "email": "zoë@x.example", "skills": [], "n": None}
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(),  # NaN and infinities too: answers write them as strings
        texts,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
doc_values = st.one_of(
    st.uuids().map(str),
    valid_timestamp_texts,
    st.sampled_from(["TODO", "DONE", 'say "hi"', "back\\slash", "tab\there", "del\x7f", "é", ""]),
    json_values,
)
doc_keys = st.sampled_from([*READ_KEYS, "bogus", "status_global"])


def plausible_value(key: str) -> st.SearchStrategy[Any]:
    """What validation leaves under `key`, in awkward forms; now and then anything."""
    if key in ("archived", "is_assigned_player"):
        typed: st.SearchStrategy[Any] = st.booleans()
    elif key.endswith("_at"):
        typed = valid_timestamp_texts
    elif "uid" in key or key.endswith("_by"):
        typed = st.uuids().map(str)
    elif "status" in key:
        typed = st.sampled_from(["TODO", "STARTED", "DONE"])
    elif key == "skills":
        typed = st.lists(st.uuids().map(str), max_size=2)
    elif key == "form_type":
        typed = texts
    else:
        typed = st.dictionaries(texts, json_values, max_size=4)
    return st.one_of(typed, typed, typed, typed, doc_values)


plausible_docs = st.lists(
    st.sampled_from(
        [*sorted(set(TaskWrite.model_fields) - WRITE_ONLY_KEYS), "internal_created_at"]
    ).flatmap(lambda key: plausible_value(key).map(lambda value: (key, value))),
    max_size=12,
).map(dict)
docs = st.one_of(st.dictionaries(doc_keys, doc_values, max_size=12), plausible_docs)


@settings(max_examples=1500, deadline=None)
@given(docs, st.sampled_from([None, ASSIGNEE]))
def test_task_texts_are_exactly_the_dicts_json_or_nothing(
    doc: dict[str, Any], assignee: dict[str, Any] | None
) -> None:
    assignee_json = pydantic_core.to_json(assignee).decode()

    text = read_model_text(doc, CREATED, UPDATED, assignee_json)
    texts = task_texts(doc, CREATED, UPDATED, assignee_json)

    event("template" if text is not None else "dict path")
    assert (texts is None) == (text is None)
    if text is not None and texts is not None:
        assert text == reference_text(doc, assignee)
        stored, answer = texts
        assert answer == text
        # The stored text is the document's JSON, keys in read-model order.
        in_order = {key: doc[key] for key in READ_KEYS if key in doc}
        assert stored == pydantic_core.to_json(in_order).decode()


def test_a_sync_clients_task_takes_the_template() -> None:
    item = json.dumps(
        {
            "uid": str(uuid.uuid4()),
            "archived": False,
            "external_status": "DONE",
            "external_created_at": "2026-08-03T01:05:46Z",
            "fields": {"title": 'Ünïcode 🎉 "quoted"', "tags": ["a"], "n": 1.5, "big": 10**30},
            "status": "DONE",
            "assignee_uid": ASSIGNEE["uid"],
        }
    )
    doc = plain_task(item.encode())
    assert doc is not None

    text = read_model_text(doc, CREATED, UPDATED, pydantic_core.to_json(ASSIGNEE).decode())

    assert text == reference_text(doc, ASSIGNEE)


def test_every_key_a_document_can_hold_comes_before_the_servers_keys() -> None:
    """The templates put the document's values first, then the server's."""
    writable = set(TaskWrite.model_fields) - WRITE_ONLY_KEYS
    first_server_key = READ_KEYS.index("internal_created_at")

    assert writable <= set(READ_KEYS[:first_server_key])
