"""Freshdesk write-back: `FreshdeskConnector.write` against `fakes.freshdesk`'s Update a
Ticket, and one operator's change carried through the engine's `run_once`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import TicketWrite
from connectors.errors import FixConfiguration, WriteConflict, WriteRefused
from connectors.freshdesk import FreshdeskConnector, FreshdeskOptions
from fakes.freshdesk import TICKET_FIELDS, FakeFreshdesk
from fakes.suite import T0
from fragment_emulator import Emulator
from sync.config import build_config
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

API_KEY = "freshdesk-key-3f8a20"


@pytest.fixture
def fake() -> Iterator[FakeFreshdesk]:
    with FakeFreshdesk(API_KEY) as freshdesk:
        freshdesk.add_agent(6001, "Aaron Agent", "aaron@acme.example")
        freshdesk.add_agent(6002, "Nina Notes", "nina@acme.example")
        freshdesk.add_status(6, "Waiting on Customer", "Awaiting your Reply")
        for number in (1, 2, 3):
            freshdesk.add(number, T0 + dt.timedelta(minutes=number))
        yield freshdesk


@pytest.fixture
def source(fake: FakeFreshdesk) -> Iterator[FreshdeskConnector]:
    options = {"base_url": fake.base_url, "api_key": API_KEY}
    connector = FreshdeskConnector("helpdesk", FreshdeskOptions.model_validate(options))
    yield connector
    connector.close()


def test_a_status_written_back_lands_and_writing_it_again_sends_nothing(
    fake: FakeFreshdesk, source: FreshdeskConnector
) -> None:
    source.write(TicketWrite("1", status="Resolved"))
    source.write(TicketWrite("1", status="resolved"))  # a repeat, any case
    source.write(TicketWrite("2", status="4"))  # a code does too

    assert fake.tickets[1]["status"] == 4 and fake.tickets[2]["status"] == 4
    assert fake.writes == [(1, {"status": 4}), (2, {"status": 4})]
    assert len(fake.gets(TICKET_FIELDS)) == 1  # the labels, read once


def test_a_custom_status_is_found_by_its_agent_label(
    fake: FakeFreshdesk, source: FreshdeskConnector
) -> None:
    source.write(TicketWrite("3", status="Waiting on Customer"))

    assert fake.tickets[3]["status"] == 6
    assert source.clock_offset() is None  # the lists' session was never opened


def test_an_assignee_lands_a_non_agent_is_refused_in_freshdesks_words_and_none_unassigns(
    fake: FakeFreshdesk, source: FreshdeskConnector
) -> None:
    source.write(TicketWrite("1", assign=True, assignee_id="6002"))
    assert fake.tickets[1]["responder_id"] == 6002

    with pytest.raises(WriteRefused) as refused:
        source.write(TicketWrite("1", assign=True, assignee_id="5001"))  # the requester
    message = str(refused.value)
    assert not isinstance(refused.value, WriteConflict)
    assert "ticket '1'" in message and "field 'assignee'" in message and "'5001'" in message
    assert "Freshdesk answered 400: Validation failed: responder_id:" in message
    assert "(invalid_value)" in message
    assert fake.tickets[1]["responder_id"] == 6002

    source.write(TicketWrite("1", assign=True, assignee_id=None))
    assert fake.tickets[1]["responder_id"] is None
    assert fake.writes[-1] == (1, {"responder_id": None})


def test_a_closed_ticket_is_a_conflict_and_a_resolved_one_may_be_reopened(
    fake: FakeFreshdesk, source: FreshdeskConnector
) -> None:
    fake.touch(2, T0 + dt.timedelta(hours=1), status=5)
    fake.touch(3, T0 + dt.timedelta(hours=1), status=4)

    with pytest.raises(WriteConflict) as conflict:
        source.write(TicketWrite("2", status="Resolved", assign=True, assignee_id="6002"))
    source.write(TicketWrite("2", status="Closed"))  # already there
    source.write(TicketWrite("3", status="Open"))

    assert "Closed in Freshdesk" in str(conflict.value)
    assert "field 'status+assignee'" in str(conflict.value)
    assert fake.tickets[2]["status"] == 5 and fake.tickets[2]["responder_id"] == 6001
    assert fake.tickets[3]["status"] == 2
    assert fake.writes == [(3, {"status": 2})]


def test_a_deleted_ticket_is_refused_as_gone_and_an_unknown_status_names_the_key(
    fake: FakeFreshdesk, source: FreshdeskConnector
) -> None:
    with pytest.raises(FixConfiguration) as unknown:
        source.write(TicketWrite("1", status="Done-ish"))
    fake.delete(2, T0 + dt.timedelta(hours=1))
    with pytest.raises(WriteRefused) as deleted:
        source.write(TicketWrite("2", status="Resolved"))
    with pytest.raises(WriteRefused) as never:
        source.write(TicketWrite("99", status="Resolved"))

    assert unknown.value.key == "connectors.helpdesk.write_back.status"
    assert "'Done-ish'" in str(unknown.value)
    assert "waiting on customer (6)" in str(unknown.value)
    assert "gone" in str(deleted.value) and "gone" in str(never.value)
    assert fake.writes == []


def test_a_status_the_account_dropped_is_refused_in_freshdesks_words(
    fake: FakeFreshdesk, source: FreshdeskConnector
) -> None:
    source.write(TicketWrite("1", status="Pending"))  # the labels are read now
    del fake.statuses[6]  # an admin deletes the custom status

    with pytest.raises(WriteRefused) as refused:
        source.write(TicketWrite("1", status="Waiting on Customer"))

    assert "Validation failed: status: It should be one of these values" in str(refused.value)
    assert fake.tickets[1]["status"] == 3


def test_an_operators_done_resolves_the_ticket_once_through_run_once(
    fake: FakeFreshdesk, emulator: Emulator, sqlite_url: str
) -> None:
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "helpdesk": {
                    "kind": "freshdesk",
                    "base_url": fake.base_url,
                    "api_key": API_KEY,
                    "requests_per_minute": 10**4,
                    "write_back": {"status": {"DONE": "Resolved", "STARTED": "Pending"}},
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
        _patch(emulator, "2", status="DONE")

        wrote = one_run()  # the write, then the resolved ticket pushed as Freshdesk has it
        settled = one_run()

    assert fake.tickets[2]["status"] == 4
    assert fake.writes == [(2, {"status": 4})]
    assert wrote.pushed == 1 and settled.pushed == 0
    task = tasks_by_ticket(emulator)["2"]
    assert task["status"] == "DONE" and task["fields"]["source_status"] == "Resolved"


def _patch(emulator: Emulator, number: str, **changes: Any) -> None:
    uid = task_uid("helpdesk", number)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.patch(f"{emulator.base_url}/tasks/{uid}", json=changes, headers=headers)
    assert answer.status_code == 200, answer.text
