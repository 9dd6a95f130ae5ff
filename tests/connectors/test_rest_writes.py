"""The `rest` connector's write-back (`write_request`), against the back-office fake's
`PATCH /api/v1/tickets/{ref}`, one connector at a time and through `run_once`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import TicketWrite
from connectors.errors import SourceError, WriteConflict, WriteRefused
from connectors.rest import RestApiConnector, RestApiOptions, WriteRequest
from fakes.backoffice import PATH, FakeBackOffice
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN, tasks_by_ticket

API_KEY = "bo-key-93f1c2"
T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)

WRITE_REQUEST: dict[str, Any] = {
    "method": "PATCH",
    "path": f"{PATH}/{{source_id}}",
    "status": {"ticket": {"state": "{status}"}},
    "assignee": {"ticket": {"owner_id": "{assignee_id}"}},
    "assignee_id_kind": "int",
}


def options(fake: FakeBackOffice, **keys: Any) -> dict[str, Any]:
    return {
        "base_url": fake.base_url,
        "path": PATH,
        "auth": {"type": "header", "header": "X-Api-Key", "value": API_KEY},
        "paginator": {"type": "next_token", "token_path": "paging.next_cursor", "param": "cursor"},
        "since_param": "modified_since",
        "records_path": "data.tickets",
        "id_path": "ref",
        "cursor_path": "modified",
        "deleted_path": "removed",
        "write_request": WRITE_REQUEST,
        **keys,
    }


@pytest.fixture
def fake() -> Iterator[FakeBackOffice]:
    with FakeBackOffice(API_KEY) as office:
        office.users = {7: {"name": "Carol Chen", "email": "carol@example.com"}}
        for ref in (1, 2, 3):
            office.add(ref, T0 + dt.timedelta(seconds=ref))
        yield office


@pytest.fixture
def connector(fake: FakeBackOffice) -> Iterator[RestApiConnector]:
    source = RestApiConnector("backoffice", RestApiOptions.model_validate(options(fake)))
    yield source
    source.close()


# The connector


def test_a_status_written_back_lands_and_writing_it_again_is_harmless(
    fake: FakeBackOffice, connector: RestApiConnector
) -> None:
    connector.write(TicketWrite("2", status="done"))
    modified = fake.tickets[2]["modified"]
    connector.write(TicketWrite("2", status="done"))  # repeated after a crash

    assert fake.writes == [("PATCH", 2, {"ticket": {"state": "done"}})] * 2
    assert fake.tickets[2]["state"] == "done"
    assert fake.tickets[2]["modified"] >= modified
    assert fake.tickets[1]["state"] == "open"


def test_an_assignee_goes_as_the_integer_asked_both_fields_in_one_request_and_null_unassigns(
    fake: FakeBackOffice, connector: RestApiConnector
) -> None:
    connector.write(TicketWrite("1", status="working", assign=True, assignee_id="7"))
    owner = fake.tickets[1]["owner"]
    connector.write(TicketWrite("1", assign=True, assignee_id=None))

    assert [body for _method, _ref, body in fake.writes] == [
        {"ticket": {"state": "working", "owner_id": 7}},
        {"ticket": {"owner_id": None}},
    ]
    assert owner == {"id": 7, "name": "Carol Chen", "email": "carol@example.com"}
    assert fake.tickets[1]["owner"] is None and fake.tickets[1]["state"] == "working"


def test_a_refused_value_is_refused_in_the_apis_words(
    fake: FakeBackOffice, connector: RestApiConnector
) -> None:
    with pytest.raises(WriteRefused) as state:
        connector.write(TicketWrite("1", status="Resolved"))
    with pytest.raises(WriteRefused) as owner:
        connector.write(TicketWrite("1", assign=True, assignee_id="99"))
    with pytest.raises(WriteRefused) as not_a_number:
        connector.write(TicketWrite("1", assign=True, assignee_id="carol"))

    assert not isinstance(state.value, WriteConflict)
    assert "field 'status'" in str(state.value) and "'Resolved'" in str(state.value)
    assert "answered 422" in str(state.value) and "is not one of open, working" in str(state.value)
    assert "field 'assignee'" in str(owner.value) and "owner_id: no user 99" in str(owner.value)
    assert "'carol' is not an integer" in str(not_a_number.value)
    assert len(fake.writes) == 2  # the last one never went out
    assert fake.tickets[1]["state"] == "open"


def test_a_removed_ticket_is_refused_as_gone(
    fake: FakeBackOffice, connector: RestApiConnector
) -> None:
    fake.remove(3, T0 + dt.timedelta(minutes=1))

    with pytest.raises(WriteRefused) as gone:
        connector.write(TicketWrite("3", status="done"))
    with pytest.raises(WriteRefused) as never:
        connector.write(TicketWrite("404", status="done"))

    assert "gone" in str(gone.value) and "ticket 3 not found" in str(gone.value)
    assert "gone" in str(never.value) and not isinstance(never.value, WriteConflict)


def test_a_ticket_the_source_closed_stays_closed_as_a_conflict(
    fake: FakeBackOffice, connector: RestApiConnector
) -> None:
    fake.touch(2, T0 + dt.timedelta(minutes=1), state="closed")

    with pytest.raises(WriteConflict) as conflict:
        connector.write(TicketWrite("2", status="working"))

    assert "409" in str(conflict.value) and "ticket 2 is closed" in str(conflict.value)
    assert conflict.value.target == "working"
    assert fake.tickets[2]["state"] == "closed"


def test_refused_credentials_fail_the_write_as_a_source_error(fake: FakeBackOffice) -> None:
    wrong = options(fake, auth={"type": "header", "header": "X-Api-Key", "value": "nope-123"})
    source = RestApiConnector("backoffice", RestApiOptions.model_validate(wrong))
    try:
        with pytest.raises(SourceError) as caught:
            source.write(TicketWrite("1", status="done"))
    finally:
        source.close()

    assert not isinstance(caught.value, WriteRefused)
    assert "401" in str(caught.value)


def test_the_ticket_id_is_escaped_into_the_path_and_text_placeholders_are_filled() -> None:
    request = WriteRequest.model_validate(
        {
            "path": "/tickets/{source_id}/state",
            "status": {"state": "{status}", "note": "set to {status} for #{source_id}"},
        }
    )

    assert request.url("a/../b") == "/tickets/a%2F..%2Fb/state"
    assert request.body(TicketWrite("9", status="done")) == {
        "state": "done",
        "note": "set to done for #9",
    }


# Configuration


def backoffice_config(write_request: Any, **keys: Any) -> dict[str, Any]:
    raw = {
        "kind": "rest",
        "base_url": "https://backoffice.example.com",
        "path": PATH,
        "paginator": {"type": "link_header"},
        "write_request": write_request,
        **keys,
    }
    return {"connectors": {"backoffice": raw}}


@pytest.mark.parametrize(
    ("write_request", "key", "message"),
    [
        ({**WRITE_REQUEST, "path": f"{PATH}/{{ref}}"}, "path", "names {ref}"),
        ({**WRITE_REQUEST, "path": PATH}, "path", "must name {source_id}"),
        ({**WRITE_REQUEST, "path": "tickets/{source_id}"}, "path", "must start with '/'"),
        ({**WRITE_REQUEST, "status": {"state": "done"}}, "status", "must name {status}"),
        (
            {**WRITE_REQUEST, "assignee": {"owner": "{assignee_id}", "state": "{status}"}},
            "assignee",
            "names {status}",
        ),
        ({**WRITE_REQUEST, "method": "DELETE"}, "method", "PATCH"),
        ({"path": f"{PATH}/{{source_id}}"}, "write_request", "status write"),
    ],
)
def test_a_bad_write_request_fails_the_config_naming_its_key(
    write_request: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(backoffice_config(write_request), source="test")

    assert caught.value.key.startswith("connectors.backoffice.write_request")
    assert caught.value.key.endswith(key)
    assert message in str(caught.value)


def test_write_back_needs_a_body_for_each_field_it_writes() -> None:
    status_only = {k: v for k, v in WRITE_REQUEST.items() if k != "assignee"}
    write_back = {"status": {"DONE": "done"}, "assignee": True}

    with pytest.raises(ConfigError) as caught:
        build_config(backoffice_config(status_only, write_back=write_back), source="test")
    raw = backoffice_config(None, write_back={"status": {"DONE": "done"}})
    del raw["connectors"]["backoffice"]["write_request"]
    with pytest.raises(ConfigError) as neither:
        build_config(raw, source="test")

    assert caught.value.key == "connectors.backoffice.write_back.assignee"
    assert "it can write: status" in str(caught.value)
    assert neither.value.key == "connectors.backoffice.write_back.status"
    assert "it can write: nothing" in str(neither.value)


# Through the engine


def test_an_operators_done_and_assignee_land_in_one_request_and_the_next_run_sends_nothing(
    fake: FakeBackOffice, emulator: Emulator, sqlite_url: str
) -> None:
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "backoffice": {
                    "kind": "rest",
                    **options(fake),
                    "mapping": {
                        "title": "{headline}",
                        "status": "state",
                        "status_map": {
                            "open": "TODO",
                            "working": "STARTED",
                            "done": "DONE",
                            "closed": "DONE",
                        },
                        "assignee": "owner.id",
                        "fields": {"source_status": "state"},
                    },
                    "people": {"table": {"7": "carol@example.com"}},
                    "write_back": {
                        "status": {"DONE": "done", "STARTED": "working"},
                        "assignee": True,
                    },
                }
            },
        },
        source="test",
    )
    with StateStore.open(sqlite_url) as store:

        def one_run() -> RunSummary:
            [summary] = run_once(config, store)  # write-back, then the forward pass
            assert summary.outcome == "ok", summary.error
            return summary

        assert one_run().pushed == 3
        answer = httpx.patch(
            f"{emulator.base_url}/tasks/{task_uid('backoffice', '2')}",
            json={"status": "DONE", "assignee_email": "carol@example.com"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 200, answer.text

        written = one_run()
        settled = one_run()

        assert fake.tickets[2]["state"] == "done" and fake.tickets[2]["owner"]["id"] == 7
        assert written.pushed == 1  # the ticket, as the write left it
        task = tasks_by_ticket(emulator)["2"]
        assert task["fields"]["source_status"] == "done"
        assert task["assignee"]["email"] == "carol@example.com"
        assert settled.pushed == 0
        # Both fields in one request, sent once.
        assert fake.writes == [("PATCH", 2, {"ticket": {"state": "done", "owner_id": 7}})]
        assert WriteBackLedger(store).rows("backoffice") == []
