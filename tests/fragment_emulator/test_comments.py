"""A task's comments on the emulator: `POST` and `GET /tasks/{uid}/comments` over real HTTP.

Fragment documents that `POST /tasks/{uid}/comments` exists, not its body
(fragment-api.md §14): the emulator takes the text under `content`, `body`
or `text`, and lists a task's comments (inferred) so a client can check what
landed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fragment_emulator import Emulator, Faults
from tests.fragment_emulator.test_api import client_for, ticket


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with client_for(emulator) as http:
        http.put("/tasks/batch", json={"items": [ticket(1), ticket(2)]}).raise_for_status()
        yield http


UID = ticket(1)["uid"]


@pytest.mark.parametrize("key", ["content", "body", "text"])
def test_a_comment_is_stored_under_any_accepted_key_and_returned(
    client: httpx.Client, key: str
) -> None:
    answer = client.post(f"/tasks/{UID}/comments", json={key: "Printer fixed"})

    assert answer.status_code == 200
    comment = answer.json()
    assert comment["content"] == "Printer fixed"
    assert comment["task_uid"] == UID
    assert comment["uid"] and comment["created_at"].endswith("Z")
    listed = client.get(f"/tasks/{UID}/comments").json()
    assert listed["items"] == [comment]
    assert listed["meta"]["total_count"] == 1


def test_comments_are_listed_oldest_first_per_task(client: httpx.Client) -> None:
    for text in ("one", "two", "three"):
        client.post(f"/tasks/{UID}/comments", json={"content": text}).raise_for_status()
    client.post(f"/tasks/{ticket(2)['uid']}/comments", json={"content": "other"})

    listed = client.get(f"/tasks/{UID}/comments").json()["items"]

    assert [c["content"] for c in listed] == ["one", "two", "three"]


def test_posting_twice_stores_two_comments(client: httpx.Client) -> None:
    """The endpoint is not idempotent: a client must not retry a POST blindly."""
    for _ in range(2):
        client.post(f"/tasks/{UID}/comments", json={"content": "same"}).raise_for_status()

    assert len(client.get(f"/tasks/{UID}/comments").json()["items"]) == 2


def test_a_comment_on_an_unknown_task_is_404(client: httpx.Client) -> None:
    unknown = ticket(99)["uid"]

    answer = client.post(f"/tasks/{unknown}/comments", json={"content": "hello"})

    assert answer.status_code == 404
    assert answer.json() == {"detail": "Task not found"}
    assert client.get(f"/tasks/{unknown}/comments").status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"content": ""}, ["body", "content"]),
        ({"text": "   \n"}, ["body", "text"]),
        ({"content": 12}, ["body", "content"]),
        ({"title": "no text"}, ["body", "content"]),
    ],
)
def test_an_empty_or_missing_text_is_422_at_its_key(
    client: httpx.Client, body: dict[str, object], loc: list[str]
) -> None:
    answer = client.post(f"/tasks/{UID}/comments", json=body)

    assert answer.status_code == 422
    assert [entry["loc"] for entry in answer.json()["detail"]] == [loc]
    assert client.get(f"/tasks/{UID}/comments").json()["items"] == []


def test_a_malformed_uid_is_422(client: httpx.Client) -> None:
    answer = client.post("/tasks/not-a-uid/comments", json={"content": "x"})

    assert answer.status_code == 422


def test_comments_count_against_the_rate_limit_like_any_request() -> None:
    with Emulator(faults=Faults(rate_limit=(2, 1.0))) as emulator, client_for(emulator) as client:
        client.put("/tasks/batch", json={"items": [ticket(1)]}).raise_for_status()
        assert client.post(f"/tasks/{UID}/comments", json={"content": "a"}).status_code == 200

        limited = client.post(f"/tasks/{UID}/comments", json={"content": "b"})

        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert [c["content"] for c in emulator.store.comments(UID)] == ["a"]
        time.sleep(int(limited.headers["Retry-After"]))
        assert client.post(f"/tasks/{UID}/comments", json={"content": "b"}).status_code == 200


def test_deleting_a_task_deletes_its_comments(client: httpx.Client) -> None:
    client.post(f"/tasks/{UID}/comments", json={"content": "gone soon"})

    client.delete(f"/tasks/{UID}").raise_for_status()
    client.put("/tasks/batch", json={"items": [ticket(1)]}).raise_for_status()

    assert client.get(f"/tasks/{UID}/comments").json()["items"] == []


def test_comments_survive_a_restart_of_a_file_database(tmp_path: Path) -> None:
    db = tmp_path / "fragment.db"
    with Emulator(db_path=db) as first, client_for(first) as client:
        client.put("/tasks/batch", json={"items": [ticket(1)]}).raise_for_status()
        client.post(f"/tasks/{UID}/comments", json={"body": "kept"}).raise_for_status()

    with Emulator(db_path=db) as second, client_for(second) as client:
        listed = client.get(f"/tasks/{UID}/comments").json()["items"]

    assert [c["content"] for c in listed] == ["kept"]
