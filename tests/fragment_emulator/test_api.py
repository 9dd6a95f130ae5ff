"""The Fragment emulator as a client sees it: real HTTP on loopback, real SQLite.

Each test starts its own `Emulator` and talks to it with httpx, asserting on
status codes, bodies and headers a sync client would meet, and on the tasks
the emulator ends up holding.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fragment_emulator import DEFAULT_TOKEN, Emulator, Faults

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


def md5_uid(key: str) -> str:
    """The docs' deterministic uid recipe: an md5 digest read as a UUID (no version bits)."""
    return str(uuid.UUID(hashlib.md5(key.encode()).hexdigest()))  # noqa: S324 (the docs' recipe)


def ticket(number: int, **overrides: Any) -> dict[str, Any]:
    """A batch item for source ticket `number`, with a stable uid."""
    item: dict[str, Any] = {
        "uid": md5_uid(f"zendesk#ticket#{number}"),
        "fields": {"title": f"Ticket {number}", "url": f"https://help.example/t/{number}"},
    }
    item.update(overrides)
    return item


def client_for(emulator: Emulator, **options: Any) -> httpx.Client:
    options.setdefault("timeout", 5.0)
    return httpx.Client(base_url=emulator.base_url, headers=AUTH, **options)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with client_for(emulator) as http:
        yield http


def error_locs(response: httpx.Response) -> list[list[Any]]:
    return [entry["loc"] for entry in response.json()["detail"]]


def send_raw_json(client: httpx.Client, method: str, path: str, text: str) -> httpx.Response:
    """Send `text` as a JSON body as is (httpx's `json=` refuses NaN and Infinity)."""
    return client.request(
        method, path, content=text.encode(), headers={"Content-Type": "application/json"}
    )


# -- auth ------------------------------------------------------------------------


def test_request_without_token_is_refused_with_401(emulator: Emulator) -> None:
    response = httpx.get(f"{emulator.base_url}/accounts/me")

    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


def test_request_with_unknown_token_is_refused_with_401(emulator: Emulator) -> None:
    response = httpx.get(
        f"{emulator.base_url}/accounts/me", headers={"Authorization": "Bearer nope"}
    )

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


def test_accounts_me_answers_account_for_valid_token(client: httpx.Client) -> None:
    response = client.get("/accounts/me")

    assert response.status_code == 200
    assert uuid.UUID(response.json()["uid"])
    assert response.json()["name"]


# -- idempotent upserts ----------------------------------------------------------


def test_identical_put_batch_is_a_no_op_and_changed_content_updates(
    emulator: Emulator, client: httpx.Client
) -> None:
    items = [ticket(1), ticket(2)]
    first = client.put("/tasks/batch", json={"items": items})
    assert first.status_code == 200
    created = first.json()["items"]
    assert [task["uid"] for task in created] == [item["uid"] for item in items]
    assert created[0]["status"] == "TODO"
    assert created[0]["due_at"] is not None

    again = client.put("/tasks/batch", json={"items": items})

    assert again.status_code == 200
    assert again.json()["items"] == created
    assert emulator.store.version(items[0]["uid"]) == 1

    changed = client.put("/tasks/batch", json={"items": [ticket(1, status="DONE"), ticket(2)]})

    assert changed.json()["items"][0]["status"] == "DONE"
    assert emulator.store.version(items[0]["uid"]) == 2
    assert emulator.store.version(items[1]["uid"]) == 1
    assert changed.json()["items"][0]["internal_updated_at"] > created[0]["internal_updated_at"]
    assert changed.json()["items"][1]["internal_updated_at"] == created[1]["internal_updated_at"]


def test_null_for_a_never_set_key_is_no_change(emulator: Emulator, client: httpx.Client) -> None:
    client.put("/tasks/batch", json={"items": [ticket(1)]})

    client.put("/tasks/batch", json={"items": [ticket(1, queue_uid=None, due_at=None)]})
    client.put("/tasks/batch", json={"items": [ticket(1, queue_uid=None)]})

    assert emulator.store.version(ticket(1)["uid"]) == 2  # only clearing due_at changed it
    assert client.get(f"/tasks/{ticket(1)['uid']}").json()["due_at"] is None


def test_read_model_has_every_documented_key_and_hides_write_only_ones(
    client: httpx.Client,
) -> None:
    task = client.put("/tasks/batch", json={"items": [ticket(1, status_global="STARTED")]}).json()[
        "items"
    ][0]

    for key in ("queue_time", "sla_breach_at", "children", "assignee", "internal_created_at"):
        assert key in task
    assert task["queue_time"] is None
    assert "status_global" not in task
    assert task["status"] == "STARTED"


def test_single_put_upserts_and_post_of_existing_uid_conflicts(client: httpx.Client) -> None:
    uid = md5_uid("jira#issue#PROJ-42")
    created = client.put(f"/tasks/{uid}", json={"fields": {"title": "PROJ-42"}})
    assert created.status_code == 200

    duplicate = client.post("/tasks", json={"uid": uid, "fields": {"title": "again"}})

    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": f"Task {uid} already exists"}
    assert client.get(f"/tasks/{uid}").json()["fields"]["title"] == "PROJ-42"


def test_put_with_body_uid_differing_from_path_is_422(
    emulator: Emulator, client: httpx.Client
) -> None:
    response = client.put(f"/tasks/{ticket(1)['uid']}", json=ticket(2))

    assert response.status_code == 422
    assert error_locs(response) == [["body", "uid"]]
    assert emulator.store.count() == 0


def test_post_without_uid_gets_a_server_uid(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"fields": {"title": "no uid"}})

    assert response.status_code == 200
    uid = response.json()["uid"]
    assert client.get(f"/tasks/{uid}").status_code == 200


def test_unknown_task_is_404(client: httpx.Client) -> None:
    response = client.get(f"/tasks/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Task not found"}


# -- uid forms -------------------------------------------------------------------


def test_md5_derived_uid_without_version_bits_is_accepted_and_normalised(
    client: httpx.Client,
) -> None:
    digest = hashlib.md5(b"ticket#ID#123").hexdigest()  # noqa: S324 (the docs' recipe)
    canonical = str(uuid.UUID(digest))

    response = client.put("/tasks/batch", json={"items": [ticket(123, uid=digest.upper())]})

    assert response.status_code == 200
    assert response.json()["items"][0]["uid"] == canonical
    assert client.get(f"/tasks/{canonical}").status_code == 200


def test_garbage_uid_is_422_at_its_item(emulator: Emulator, client: httpx.Client) -> None:
    response = client.put("/tasks/batch", json={"items": [ticket(1), ticket(2, uid="ticket-2")]})

    assert response.status_code == 422
    assert error_locs(response) == [["body", "items", 1, "uid"]]
    assert emulator.store.count() == 0


def test_uid_valued_keys_are_normalised_like_the_task_uid(client: httpx.Client) -> None:
    digest = hashlib.md5(b"queue#billing").hexdigest()  # noqa: S324 (the docs' recipe)
    canonical = str(uuid.UUID(digest))

    response = client.put(
        "/tasks/batch", json={"items": [ticket(1, queue_uid=digest.upper(), skills=[digest])]}
    )

    task = response.json()["items"][0]
    assert task["queue_uid"] == canonical
    assert task["skills"] == [canonical]


# -- timestamp forms -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000000Z", id="utc"),
        pytest.param(
            "2024-05-01T12:00:00.5+02:00", "2024-05-01T10:00:00.500000Z", id="offset-and-fraction"
        ),
        pytest.param(
            "2024-12-31T23:30:00.000001-01:00", "2025-01-01T00:30:00.000001Z", id="into-next-year"
        ),
        pytest.param("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z", id="year-one-padded"),
        pytest.param(
            "2026-08-03T01:05:46+23:59", "2026-08-02T01:06:46.000000Z", id="widest-offset"
        ),
        pytest.param("2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000000Z", id="leap-day"),
        pytest.param("2026-12-31T00:00:00Z", "2026-12-31T00:00:00.000000Z", id="day-31"),
        pytest.param(
            "2026-08-03T01:05:46.1234567Z", "2026-08-03T01:05:46.123456Z", id="7-digit-fraction"
        ),
        pytest.param("2026-08-03 01:05:46Z", "2026-08-03T01:05:46.000000Z", id="space-separator"),
        pytest.param("2026-08-03t01:05:46z", "2026-08-03T01:05:46.000000Z", id="lowercase-t-z"),
    ],
)
def test_timestamps_are_stored_as_fixed_width_utc_text(
    client: httpx.Client, sent: str, stored: str
) -> None:
    response = client.put("/tasks/batch", json={"items": [ticket(1, due_at=sent)]})

    assert response.json()["items"][0]["due_at"] == stored
    assert client.get(f"/tasks/{ticket(1)['uid']}").json()["due_at"] == stored


# -- validation: the bad item is named, nothing is written -----------------------


@pytest.mark.parametrize(
    ("bad_item", "loc_tail"),
    [
        pytest.param(ticket(2, status="CLOSED"), ["status"], id="status-outside-enum"),
        pytest.param(ticket(2, fields=["Ticket 2"]), ["fields"], id="fields-not-object"),
        pytest.param(
            ticket(2, fields={"url": "https://x"}),
            ["fields", "title"],
            id="title-missing-on-create",
        ),
        pytest.param(ticket(2, due_at="2024-05-01T10:00:00"), ["due_at"], id="naive-datetime"),
        pytest.param(ticket(2, priority="high"), ["priority"], id="unknown-key"),
        pytest.param(ticket(2, fields={"title": ""}), ["fields", "title"], id="empty-title"),
        pytest.param(ticket(2, archived="yes"), ["archived"], id="non-boolean-archived"),
        pytest.param(
            ticket(2, fields={"title": "t", "url": 5}), ["fields", "url"], id="url-not-string"
        ),
    ],
)
def test_invalid_item_fails_whole_batch_with_its_index(
    emulator: Emulator, client: httpx.Client, bad_item: dict[str, Any], loc_tail: list[Any]
) -> None:
    response = client.put("/tasks/batch", json={"items": [ticket(1), bad_item, ticket(3)]})

    assert response.status_code == 422
    assert error_locs(response) == [["body", "items", 1, *loc_tail]]
    assert emulator.store.count() == 0


@pytest.mark.parametrize(
    "sent",
    [
        "2023-02-29T12:00:00Z",
        "2026-04-31T12:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-08-03T23:59:60Z",
        "2026-W31-1T01:05:46Z",
    ],
    ids=["february-29-2023", "april-31", "month-13", "year-0", "second-60", "week-date"],
)
def test_a_timestamp_that_is_no_moment_is_422_at_its_field(
    emulator: Emulator, client: httpx.Client, sent: str
) -> None:
    response = client.put("/tasks/batch", json={"items": [ticket(1), ticket(2, due_at=sent)]})

    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert (detail["type"], detail["loc"], detail["input"]) == (
        "datetime_parsing",
        ["body", "items", 1, "due_at"],
        sent,
    )
    assert emulator.store.count() == 0


@pytest.mark.parametrize(
    "sent", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"], ids=["year-0", "year-10000"]
)
def test_timestamp_utc_cannot_hold_is_422_at_its_field_not_a_500(
    emulator: Emulator, client: httpx.Client, sent: str
) -> None:
    batch = client.put(
        "/tasks/batch", json={"items": [ticket(1), ticket(2, external_created_at=sent)]}
    )
    single = client.put(
        f"/tasks/{ticket(3)['uid']}", json={"fields": {"title": "T"}, "due_at": sent}
    )
    listed = client.get("/tasks", params={"updated_at_after": sent})

    assert batch.status_code == 422
    assert batch.json()["detail"] == [
        {
            "type": "datetime_parsing",
            "loc": ["body", "items", 1, "external_created_at"],
            "msg": "Input should be a valid datetime, in UTC it falls outside years 1-9999",
            "input": sent,
            "ctx": {"error": "in UTC it falls outside years 1-9999"},
        }
    ]
    assert single.status_code == 422
    assert error_locs(single) == [["body", "due_at"]]
    assert listed.status_code == 422
    assert error_locs(listed) == [["query", "updated_at_after"]]
    assert emulator.store.count() == 0


@pytest.mark.parametrize(
    ("number", "echoed"),
    [
        pytest.param("NaN", "NaN", id="nan"),
        pytest.param("Infinity", "Infinity", id="infinity"),
        pytest.param("-Infinity", "-Infinity", id="minus-infinity"),
        pytest.param("1e400", "Infinity", id="overflows-a-double"),
        pytest.param("-1e400", "-Infinity", id="overflows-negative"),
    ],
)
def test_non_finite_number_is_422_at_its_field_and_writes_nothing(
    emulator: Emulator, client: httpx.Client, number: str, echoed: str
) -> None:
    client.put("/tasks/batch", json={"items": [ticket(1, fields={"title": "a", "country": "FR"})]})
    bad = f'{{"uid": "{ticket(3)["uid"]}", "fields": {{"title": "c", "score": {number}}}}}'

    response = send_raw_json(
        client, "PUT", "/tasks/batch", f'{{"items": [{json.dumps(ticket(2))}, {bad}]}}'
    )

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "finite_number",
            "loc": ["body", "items", 1, "fields", "score"],
            "msg": "Input should be a finite number",
            "input": echoed,  # standard JSON: the answer carries no NaN or Infinity token
        },
    ]
    assert emulator.store.count() == 1  # ticket 1, from before
    assert client.get("/tasks", params={"country": "FR"}).status_code == 200


def test_non_finite_number_deep_in_a_single_write_is_422_at_its_key(
    emulator: Emulator, client: httpx.Client
) -> None:
    response = send_raw_json(
        client, "POST", "/tasks", '{"fields": {"title": "T"}, "form_data": {"x": [1, {"y": NaN}]}}'
    )

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "finite_number",
            "loc": ["body", "form_data", "x"],
            "msg": "Input should be a finite number",
            "input": [1, {"y": "NaN"}],
        }
    ]
    assert emulator.store.count() == 0


def test_every_bad_item_of_a_batch_is_reported_at_once(client: httpx.Client) -> None:
    items = [ticket(1, status="NOPE"), ticket(2), ticket(3, fields={}), ticket(4, uid="x")]

    response = client.put("/tasks/batch", json={"items": items})

    assert sorted(loc[2] for loc in error_locs(response)) == [0, 2, 3]


def test_single_endpoint_errors_are_located_in_the_body(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"fields": {"title": "x"}, "status": "LOCKED"})

    assert response.status_code == 422
    assert error_locs(response) == [["body", "status"]]


def test_malformed_json_is_422_json_invalid(client: httpx.Client) -> None:
    response = client.put(
        "/tasks/batch", content=b'{"items": [', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_batch_over_the_size_cap_is_refused() -> None:
    with Emulator(max_batch_items=2) as emulator, client_for(emulator) as client:
        response = client.put("/tasks/batch", json={"items": [ticket(1), ticket(2), ticket(3)]})

        assert response.status_code == 422
        assert error_locs(response) == [["body", "items"]]
        assert emulator.store.count() == 0


def test_patch_batch_of_unknown_uid_names_the_item(
    emulator: Emulator, client: httpx.Client
) -> None:
    client.put("/tasks/batch", json={"items": [ticket(1)]})

    response = client.patch(
        "/tasks/batch",
        json={"items": [{"uid": ticket(1)["uid"], "status": "DONE"}, {"uid": ticket(9)["uid"]}]},
    )

    assert response.status_code == 422
    assert error_locs(response) == [["body", "items", 1, "uid"]]
    unchanged = emulator.store.get(ticket(1)["uid"])
    assert unchanged is not None
    assert unchanged["status"] == "TODO"


def test_unknown_route_is_404_and_wrong_method_is_405(client: httpx.Client) -> None:
    assert client.get("/queues").status_code == 404
    assert client.post(f"/tasks/{uuid.uuid4()}", json={}).status_code == 405


# -- users -----------------------------------------------------------------------


def test_unknown_assignee_email_is_422_at_its_item_when_users_are_configured() -> None:
    with Emulator(users=["ada@example.com"]) as emulator, client_for(emulator) as client:
        items = [
            ticket(1, assignee_email="ada@example.com"),
            ticket(2, assignee_email="bob@example.com"),
        ]

        response = client.put("/tasks/batch", json={"items": items})

        assert response.status_code == 422
        assert response.json()["detail"] == [
            {
                "type": "unknown_user",
                "loc": ["body", "items", 1, "assignee_email"],
                "msg": "unknown user bob@example.com",
                "input": "bob@example.com",
            }
        ]
        assert emulator.store.count() == 0


def test_known_assignee_email_resolves_to_a_user(client: httpx.Client) -> None:
    task = client.put(
        "/tasks/batch", json={"items": [ticket(1, assignee_email="ada@example.com")]}
    ).json()["items"][0]

    assert task["assignee_uid"] == task["assignee"]["uid"]
    assert task["assignee"]["email"] == "ada@example.com"
    assert "assignee_email" not in task


# -- listing -----------------------------------------------------------------------


def test_list_pages_return_every_task_exactly_once(client: httpx.Client) -> None:
    client.put("/tasks/batch", json={"items": [ticket(n) for n in range(23)]})
    seen: list[str] = []
    cursor: str | None = None
    pages = 0

    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/tasks", params=params).json()
        pages += 1
        seen += [task["uid"] for task in page["items"]]
        assert page["meta"]["total_count"] == 23
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break

    assert pages == 5
    assert seen == [ticket(n)["uid"] for n in range(23)]


def test_list_prev_cursor_leads_back_to_the_previous_page(client: httpx.Client) -> None:
    client.put("/tasks/batch", json={"items": [ticket(n) for n in range(10)]})
    first = client.get("/tasks", params={"limit": 4}).json()
    second = client.get(
        "/tasks", params={"limit": 4, "cursor": first["meta"]["next_cursor"]}
    ).json()

    back = client.get("/tasks", params={"limit": 4, "cursor": second["meta"]["prev_cursor"]}).json()

    assert first["meta"]["prev_cursor"] is None
    assert back["items"] == first["items"]


def test_list_filters_by_status_and_custom_field(client: httpx.Client) -> None:
    items = [
        ticket(1, fields={"title": "a", "country": "FR"}),
        ticket(2, fields={"title": "b", "country": "DE"}, status="DONE"),
        ticket(3, fields={"title": "c", "country": "FR"}, status="DONE"),
    ]
    client.put("/tasks/batch", json={"items": items})

    def uids(**params: str) -> list[str]:
        return [task["uid"] for task in client.get("/tasks", params=params).json()["items"]]

    assert uids(country="FR") == [items[0]["uid"], items[2]["uid"]]
    assert uids(**{"fields.country": "FR", "status": "DONE"}) == [items[2]["uid"]]
    assert client.get("/tasks", params={"status": "OPEN"}).status_code == 422


def test_list_filters_by_archived_and_updated_at_after(client: httpx.Client) -> None:
    items = [
        ticket(1, updated_at="2024-01-01T00:00:00Z"),
        ticket(2, updated_at="2024-03-01T12:00:00+02:00", archived=True),
        ticket(3, updated_at="2024-06-01T00:00:00Z"),
    ]
    client.put("/tasks/batch", json={"items": items})

    def uids(**params: str) -> list[str]:
        return [task["uid"] for task in client.get("/tasks", params=params).json()["items"]]

    assert uids(archived="true") == [items[1]["uid"]]
    assert uids(updated_at_after="2024-03-01T09:00:00Z") == [items[1]["uid"], items[2]["uid"]]
    assert uids(updated_at_after="2024-03-01T09:00:00Z", archived="false") == [items[2]["uid"]]


def every_page(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Every task a client paging by `next_cursor` is shown, in the order shown."""
    tasks: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get("/tasks", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        tasks.extend(page.json()["items"])
        cursor = page.json()["meta"]["next_cursor"]
        if cursor is None:
            return tasks


def test_every_change_stamps_updated_at_with_the_servers_clock(
    emulator: Emulator, client: httpx.Client
) -> None:
    emulator.faults.clock_offset = -3600  # Fragment's clock an hour behind ours
    client.put("/tasks/batch", json={"items": [ticket(1), ticket(2)]})
    created = {task["uid"]: task for task in client.get("/tasks").json()["items"]}
    uid = ticket(1)["uid"]
    time.sleep(0.01)

    client.patch(f"/tasks/{uid}", json={"status": "DONE"})  # an operator's change
    client.put("/tasks/batch", json={"items": [ticket(2)]})  # the same content: no change

    after = {task["uid"]: task for task in client.get("/tasks").json()["items"]}
    assert after[uid]["updated_at"] > created[uid]["updated_at"]
    assert after[ticket(2)["uid"]]["updated_at"] == created[ticket(2)["uid"]]["updated_at"]
    an_hour_ago = time.time() - 3600
    stamped = dt.datetime.fromisoformat(after[uid]["updated_at"]).timestamp()
    assert abs(stamped - an_hour_ago) < 60
    # A client that sets updated_at itself keeps it.
    client.patch(f"/tasks/{uid}", json={"status": "STARTED", "updated_at": "2024-01-01T00:00:00Z"})
    assert client.get(f"/tasks/{uid}").json()["updated_at"] == "2024-01-01T00:00:00.000000Z"


def test_listing_by_updated_at_pages_through_ties_and_shows_a_changed_task_again_last(
    client: httpx.Client,
) -> None:
    same = "2026-11-02T09:00:00Z"
    items = [ticket(n, updated_at=same) for n in range(7)]  # ties across page boundaries
    items.append(ticket(7, updated_at="2026-11-02T08:00:00Z"))
    client.put("/tasks/batch", json={"items": items})

    listed = every_page(client, order_by="updated_at", limit="3")

    assert [task["uid"] for task in listed] == [ticket(7)["uid"]] + [
        ticket(n)["uid"] for n in range(7)
    ]
    first = client.get("/tasks", params={"order_by": "updated_at", "limit": "3"}).json()
    client.patch(f"/tasks/{ticket(7)['uid']}", json={"status": "DONE"})
    rest = every_page(client, order_by="updated_at", limit="3", cursor=first["meta"]["next_cursor"])
    # The changed task left its place on the page already read and shows up at the end.
    assert [task["uid"] for task in rest][-1] == ticket(7)["uid"]
    newer = every_page(client, order_by="updated_at", updated_at_after=same)
    assert [task["uid"] for task in newer] == [ticket(7)["uid"]]


def test_a_cursor_belongs_to_its_order(client: httpx.Client) -> None:
    client.put("/tasks/batch", json={"items": [ticket(n) for n in range(3)]})
    by_update = client.get("/tasks", params={"order_by": "updated_at", "limit": "1"}).json()
    in_order = client.get("/tasks", params={"limit": "1"}).json()

    mixed = client.get("/tasks", params={"cursor": by_update["meta"]["next_cursor"]})
    crossed = client.get(
        "/tasks", params={"order_by": "updated_at", "cursor": in_order["meta"]["next_cursor"]}
    )
    unknown = client.get("/tasks", params={"order_by": "priority"})

    assert mixed.status_code == crossed.status_code == 422
    assert error_locs(mixed) == error_locs(crossed) == [["query", "cursor"]]
    assert unknown.status_code == 422
    assert error_locs(unknown) == [["query", "order_by"]]


# -- partial updates and deletes -------------------------------------------------


def test_patch_merges_fields_and_keeps_other_keys(client: httpx.Client) -> None:
    uid = ticket(1)["uid"]
    client.put(
        "/tasks/batch",
        json={
            "items": [ticket(1, fields={"title": "T", "country": "FR"}, external_status="STARTED")]
        },
    )

    response = client.patch(f"/tasks/{uid}", json={"status": "DONE", "fields": {"country": "DE"}})

    assert response.status_code == 200
    task = client.get(f"/tasks/{uid}").json()
    assert task["status"] == "DONE"
    assert task["fields"] == {"title": "T", "country": "DE"}
    assert task["external_status"] == "STARTED"


def test_patch_of_unknown_task_is_404(client: httpx.Client) -> None:
    assert client.patch(f"/tasks/{uuid.uuid4()}", json={"status": "DONE"}).status_code == 404


def test_delete_returns_the_task_then_it_is_gone(emulator: Emulator, client: httpx.Client) -> None:
    uid = ticket(1)["uid"]
    client.put("/tasks/batch", json={"items": [ticket(1)]})

    deleted = client.delete(f"/tasks/{uid}")

    assert deleted.status_code == 200
    assert deleted.json()["uid"] == uid
    assert client.get(f"/tasks/{uid}").status_code == 404
    assert client.delete(f"/tasks/{uid}").status_code == 404
    assert emulator.store.count() == 0


# -- faults ------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_then_lets_requests_through() -> None:
    with Emulator(faults=Faults(rate_limit=(2, 1.0))) as emulator, client_for(emulator) as client:
        assert client.get("/accounts/me").status_code == 200
        assert client.get("/accounts/me").status_code == 200

        limited = client.get("/accounts/me")

        assert limited.status_code == 429
        assert limited.json() == {"detail": "Too Many Requests"}
        retry_after = int(limited.headers["Retry-After"])
        assert retry_after >= 1
        time.sleep(retry_after)
        assert client.get("/accounts/me").status_code == 200


def test_dropped_connection_is_a_transport_error_and_writes_nothing(
    emulator: Emulator, client: httpx.Client
) -> None:
    emulator.faults.drop_rate = 1.0

    with pytest.raises(httpx.TransportError):
        client.put("/tasks/batch", json={"items": [ticket(1)]})

    assert emulator.store.count() == 0


def test_lost_response_applies_the_batch_though_the_client_saw_an_error(
    emulator: Emulator, client: httpx.Client
) -> None:
    emulator.faults.lost_response_rate = 1.0

    with pytest.raises(httpx.TransportError):
        client.put("/tasks/batch", json={"items": [ticket(1), ticket(2)]})

    assert emulator.store.count() == 2
    emulator.faults.lost_response_rate = 0.0
    retry = client.put("/tasks/batch", json={"items": [ticket(1), ticket(2)]})
    assert retry.status_code == 200
    assert emulator.store.version(ticket(1)["uid"]) == 1


def test_error_rate_answers_5xx_without_applying(emulator: Emulator, client: httpx.Client) -> None:
    emulator.faults.update({"error_rate": 1.0, "seed": 7})

    statuses = {
        client.put("/tasks/batch", json={"items": [ticket(1)]}).status_code for _ in range(8)
    }

    assert statuses <= {500, 502, 503, 504}
    assert emulator.store.count() == 0


def test_timeout_fault_trips_the_client_timeout(emulator: Emulator) -> None:
    emulator.faults.update({"timeout_rate": 1.0, "hang_seconds": 0.5})

    with client_for(emulator, timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/accounts/me")


def test_faults_can_be_set_over_http_and_spare_admin_routes(emulator: Emulator) -> None:
    response = httpx.post(f"{emulator.url}/_emulator/faults", json={"drop_rate": 1.0}, headers=AUTH)

    assert response.status_code == 200
    assert emulator.faults.drop_rate == 1.0
    assert httpx.get(f"{emulator.url}/_emulator/stats", headers=AUTH).status_code == 200
    assert (
        httpx.post(
            f"{emulator.url}/_emulator/faults", json={"drop_rate": 3}, headers=AUTH
        ).status_code
        == 422
    )


# -- admin -------------------------------------------------------------------------


def test_stats_record_each_api_request(emulator: Emulator, client: httpx.Client) -> None:
    client.put("/tasks/batch", json={"items": [ticket(1), ticket(2), ticket(3)]})
    client.get(f"/tasks/{ticket(1)['uid']}")

    stats = httpx.get(f"{emulator.url}/_emulator/stats", headers=AUTH).json()

    assert stats["counts"]["PUT /api/v1/tasks/batch 200"] == 1
    assert stats["counts"]["GET /api/v1/tasks/{uid} 200"] == 1
    batch = stats["requests"][0]
    assert (batch["method"], batch["path"], batch["status"], batch["items"]) == (
        "PUT",
        "/api/v1/tasks/batch",
        200,
        3,
    )
    assert batch["t"] <= time.time()
    assert emulator.requests == stats["requests"]


def test_reset_clears_tasks_and_stats(emulator: Emulator, client: httpx.Client) -> None:
    client.put("/tasks/batch", json={"items": [ticket(1)]})

    assert httpx.post(f"{emulator.url}/_emulator/reset", headers=AUTH).status_code == 200

    assert httpx.get(f"{emulator.url}/_emulator/tasks", headers=AUTH).json()["items"] == []
    assert emulator.requests == []


# -- persistence -------------------------------------------------------------------


def test_file_database_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "fragment.db"
    with Emulator(db_path=db) as first, client_for(first) as client:
        client.put("/tasks/batch", json={"items": [ticket(1, assignee_email="ada@example.com")]})

    with Emulator(db_path=db) as second, client_for(second) as client:
        task = client.get(f"/tasks/{ticket(1)['uid']}").json()

    assert task["fields"]["title"] == "Ticket 1"
    assert task["assignee"]["email"] == "ada@example.com"
