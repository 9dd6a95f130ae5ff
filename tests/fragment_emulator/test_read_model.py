"""What a write stores and a read gives back: the emulator's one path for items and read models.

Every item goes through `TaskWrite`, and every read model (a write's answer, a
GET, a page of the list) is written by `read_model_json`: every documented key
in the docs' order, the values in canonical form, null where unset. Awkward
JSON (duplicate keys, numbers no double holds, unusual spellings) is either
stored in canonical form or refused whole with a 422.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fragment_emulator import DEFAULT_TOKEN, Emulator
from fragment_emulator.models import READ_KEYS, WRITE_ONLY_KEYS, TaskWrite, read_model_json

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
CREATED = "2026-11-30T12:00:00.000000Z"
UPDATED = "2026-11-30T12:00:01.500000Z"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    emulator.reset()
    with httpx.Client(base_url=emulator.base_url, headers=AUTH, timeout=5.0) as http:
        yield http


def send_raw(client: httpx.Client, method: str, path: str, text: str) -> httpx.Response:
    """Send `text` as the JSON body as is (httpx's `json=` refuses NaN and duplicate keys)."""
    return client.request(
        method, path, content=text.encode(), headers={"Content-Type": "application/json"}
    )


def sync_client_item(**overrides: Any) -> dict[str, Any]:
    """An item as fragment-sync sends it: uid, statuses, source timestamps, free-form fields."""
    item = {
        "uid": str(uuid.uuid4()),
        "archived": False,
        "assignee_email": "Tobias.Richter@support.example.com",
        "due_at": None,
        "external_created_at": "2026-08-03T01:05:46Z",
        "external_status": "DONE",
        "external_updated_at": "2026-08-03T01:07:05+02:00",
        "fields": {
            "title": 'Ünïcode 🎉 "quoted" back\\slash\ttab',
            "tags": ["a", "b"],
            "nested": {"n": 10**30, "x": 1.5, "none": None},
        },
        "status": "DONE",
    }
    item.update(overrides)
    return item


def test_a_sync_clients_batch_reads_back_as_sent_with_every_documented_key(
    client: httpx.Client,
) -> None:
    items = [sync_client_item(), sync_client_item(archived=True, status="TODO")]

    answer = client.put("/tasks/batch", json={"items": items})

    assert answer.status_code == 200
    tasks = answer.json()["items"]
    assert answer.json()["meta"]["total_count"] == 2
    for item, task in zip(items, tasks, strict=True):
        assert list(task) == list(READ_KEYS)
        assert client.get(f"/tasks/{item['uid']}").json() == task
        assert task["uid"] == item["uid"]
        assert task["fields"] == item["fields"]
        assert (task["archived"], task["status"]) == (item["archived"], item["status"])
        assert task["external_created_at"] == "2026-08-03T01:05:46.000000Z"
        assert task["external_updated_at"] == "2026-08-02T23:07:05.000000Z"
        assert task["due_at"] is None
        assert task["assignee"]["email"] == "tobias.richter@support.example.com"
        assert task["assignee"]["uid"] == task["assignee_uid"]
        assert task["internal_created_at"] == task["internal_updated_at"]
        assert not WRITE_ONLY_KEYS & task.keys()
        assert task["queue_time"] is None and task["children"] is None
    listed = client.get("/tasks").json()["items"]
    assert listed == tasks


def test_identical_put_of_a_sync_clients_item_changes_nothing(
    emulator: Emulator, client: httpx.Client
) -> None:
    item = sync_client_item()
    first = client.put("/tasks/batch", json={"items": [item]}).json()["items"]

    again = client.put("/tasks/batch", json={"items": [item]}).json()["items"]

    assert again == first
    assert emulator.store.version(item["uid"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"items": [{"fields": {"score": NaN}}]}', id="nan"),
        pytest.param('{"items": [{"fields": {"score": 1e400}}]}', id="beyond-a-double"),
        pytest.param('{"items": [{"bogus": 1}]}', id="unknown-key"),
        pytest.param('{"items": [5]}', id="item-not-an-object"),
        pytest.param('{"items": {}}', id="items-not-a-list"),
        pytest.param('{"items": [], "extra": 1}', id="unknown-envelope-key"),
        pytest.param('{"meta": {}}', id="no-items"),
        pytest.param('{"items": [{"status": null}]}', id="null-status"),
        pytest.param('{"items": [{"fields": null}]}', id="null-fields"),
        pytest.param('{"items": [{"archived": 0}]}', id="number-for-a-flag"),
        pytest.param('{"items": [{"fields": {"t": "\\ud800"}}]}', id="lone-surrogate"),
        pytest.param("[]", id="not-an-object"),
        # Every member is checked, even one a later duplicate key overwrites.
        pytest.param('{"items": [{"fields": {"": 1e400, "": null}}]}', id="overwritten-overflow"),
        pytest.param('{"items": [{"fields": {"n": NaN, "n": 1}}]}', id="overwritten-nan"),
        pytest.param(
            '{"items": [{"fields": {"n": 1' + "0" * 310 + '.5, "n": 1}}]}', id="overwritten-huge"
        ),
        pytest.param('{"items": [], "meta": {"m": -1e400, "m": 0}}', id="overflow-in-meta"),
    ],
)
def test_an_unusual_body_is_refused_whole_and_writes_nothing(
    emulator: Emulator, client: httpx.Client, body: str
) -> None:
    response = send_raw(client, "PUT", "/tasks/batch", body)

    assert response.status_code == 422
    assert response.json()["detail"]
    assert emulator.store.count() == 0


def test_a_uid_in_any_spelling_is_stored_in_canonical_form(client: httpx.Client) -> None:
    uid = uuid.uuid4()
    spellings = [str(uid).upper(), uid.hex, "{" + str(uid) + "}", "urn:uuid:" + str(uid)]

    for spelling in spellings:
        answer = client.put("/tasks/batch", json={"items": [sync_client_item(uid=spelling)]})

        assert answer.status_code == 200
        assert answer.json()["items"][0]["uid"] == str(uid)


@pytest.mark.parametrize("key", sorted(TaskWrite.model_fields))
def test_null_is_refused_only_for_the_keys_every_task_has(client: httpx.Client, key: str) -> None:
    uid = str(uuid.uuid4())
    client.put(f"/tasks/{uid}", json={"fields": {"title": "T"}})

    response = client.put(f"/tasks/{uid}", json={key: None})

    if key in ("archived", "status", "fields"):
        assert response.status_code == 422
        assert [entry["loc"] for entry in response.json()["detail"]] == [["body", key]]
    elif key in WRITE_ONLY_KEYS:
        assert response.status_code == 200
        assert key not in response.json()
    else:
        assert response.status_code == 200
        assert response.json()[key] is None or key == "uid"


# -- the read model's text, for any document --------------------------------------

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        texts,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
DOCUMENT_KEYS = sorted(set(TaskWrite.model_fields) - WRITE_ONLY_KEYS)
documents = st.dictionaries(
    st.sampled_from(DOCUMENT_KEYS),
    st.one_of(json_values, st.sampled_from(['say "hi"', "back\\slash", "del\x7f", "é", "</"])),
    max_size=12,
)
assignees = st.one_of(st.none(), st.dictionaries(texts, json_values, max_size=4))


@settings(max_examples=500, deadline=None)
@given(documents, assignees)
def test_read_model_json_is_every_read_key_in_order_with_the_documents_values(
    doc: dict[str, Any], assignee: dict[str, Any] | None
) -> None:
    text = read_model_json(doc, CREATED, UPDATED, json.dumps(assignee).encode())

    decoded = json.loads(text)
    assert list(decoded) == list(READ_KEYS)
    assert decoded == {
        **dict.fromkeys(READ_KEYS),
        **doc,
        "internal_created_at": CREATED,
        "internal_updated_at": UPDATED,
        "assignee": assignee,
    }
