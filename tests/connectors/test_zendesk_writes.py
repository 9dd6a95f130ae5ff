"""Zendesk write-back: `ZendeskConnector.write` against `fakes.zendesk`'s Update Ticket,
and one operator's change carried through the engine's `run_once`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import TicketWrite
from connectors.errors import FixConfiguration, WriteConflict, WriteRefused
from connectors.zendesk import ZendeskConnector, ZendeskOptions
from fakes import Request
from fakes.suite import T0
from fakes.zendesk import FakeZendesk
from fragment_emulator import Emulator
from sync.config import build_config
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

EMAIL = "ops-admin@acme.example"
API_TOKEN = "zendesk-token-9d2e41"


@pytest.fixture
def fake() -> Iterator[FakeZendesk]:
    with FakeZendesk(EMAIL, API_TOKEN) as zendesk:
        zendesk.add_user(601, "Aaron Agent", "aaron@acme.example")
        zendesk.add_user(602, "Nina Notes", "nina@acme.example", role="admin")
        zendesk.add_user(501, "Rita Requester", "rita@example.com", role="end-user")
        for number in (1, 2, 3):
            zendesk.add(number, T0 + dt.timedelta(minutes=number))
        yield zendesk


@pytest.fixture
def source(fake: FakeZendesk) -> Iterator[ZendeskConnector]:
    options = {"base_url": fake.base_url, "email": EMAIL, "api_token": API_TOKEN}
    connector = ZendeskConnector("helpdesk", ZendeskOptions.model_validate(options))
    yield connector
    connector.close()


def test_a_status_written_back_lands_and_writing_it_again_sends_nothing(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    source.write(TicketWrite("1", status="solved"))
    source.write(TicketWrite("1", status="Solved"))  # a repeat, any case

    assert fake.tickets[1]["status"] == "solved"
    assert fake.writes == [(1, {"ticket": {"status": "solved"}})]


def test_writes_go_on_their_own_budget_not_the_exports(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    source.write(TicketWrite("2", status="pending"))

    assert fake.tickets[2]["status"] == "pending"
    assert source.writing is not source
    assert source.clock_offset() is None  # the export's session was never opened


def test_an_assignee_lands_an_end_user_is_refused_in_zendesks_words_and_none_unassigns(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    source.write(TicketWrite("1", assign=True, assignee_id="602"))
    assert fake.tickets[1]["assignee_id"] == 602

    with pytest.raises(WriteRefused) as refused:
        source.write(TicketWrite("1", assign=True, assignee_id="501"))
    message = str(refused.value)
    assert not isinstance(refused.value, WriteConflict)
    assert "ticket '1'" in message and "field 'assignee'" in message and "'501'" in message
    assert "Zendesk answered 422: Assignee: is invalid" in message
    assert fake.tickets[1]["assignee_id"] == 602

    source.write(TicketWrite("1", assign=True, assignee_id=None))
    assert fake.tickets[1]["assignee_id"] is None


def test_a_field_required_to_solve_is_a_refusal_in_zendesks_words(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    fake.require_to_solve(360008591391, "Type of Content")

    with pytest.raises(WriteRefused) as refused:
        source.write(TicketWrite("1", status="solved"))

    message = str(refused.value)
    assert not isinstance(refused.value, WriteConflict)
    assert "field 'status'" in message and "'solved'" in message
    assert "Zendesk answered 422: Type of Content: is required to solve a ticket" in message
    assert fake.tickets[1]["status"] == "open"


def test_a_closed_ticket_is_a_conflict_and_nothing_is_sent(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    fake.touch(3, T0 + dt.timedelta(hours=1), status="closed")

    with pytest.raises(WriteConflict) as conflict:
        source.write(TicketWrite("3", status="open"))
    source.write(TicketWrite("3", status="closed"))  # already there: no conflict, no write

    assert "closed in Zendesk" in str(conflict.value) and "field 'status'" in str(conflict.value)
    assert fake.writes == []
    assert fake.tickets[3]["status"] == "closed"


def test_a_ticket_closed_between_the_read_and_the_update_is_a_conflict_in_zendesks_words(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    def is_update(request: Request) -> bool:
        return request.method == "PUT"

    fake.when(is_update, lambda: fake.touch(2, T0 + dt.timedelta(hours=1), status="closed"))

    with pytest.raises(WriteConflict) as conflict:
        source.write(TicketWrite("2", status="pending", assign=True, assignee_id="601"))

    assert "field 'status+assignee'" in str(conflict.value)
    assert len(fake.writes) == 1
    assert fake.tickets[2]["status"] == "closed"


def test_a_solved_ticket_is_reopened_solved_is_not_closed(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    fake.touch(1, T0 + dt.timedelta(hours=1), status="solved")

    source.write(TicketWrite("1", status="open"))

    assert fake.tickets[1]["status"] == "open"


def test_a_deleted_ticket_is_refused_as_gone_and_an_unknown_status_names_the_key(
    fake: FakeZendesk, source: ZendeskConnector
) -> None:
    with pytest.raises(FixConfiguration) as unknown:
        source.write(TicketWrite("1", status="Done-ish"))
    fake.delete(2, T0 + dt.timedelta(hours=1))
    with pytest.raises(WriteRefused) as gone:
        source.write(TicketWrite("2", status="solved"))
    with pytest.raises(WriteRefused) as never:
        source.write(TicketWrite("99", status="solved"))

    assert unknown.value.key == "connectors.helpdesk.write_back.status"
    assert "'Done-ish'" in str(unknown.value) and "hold" in str(unknown.value)
    assert "gone" in str(gone.value) and "gone" in str(never.value)
    assert fake.writes == []


def test_the_per_ticket_update_limit_is_waited_out_through_the_session() -> None:
    with FakeZendesk(EMAIL, API_TOKEN, updates_per_ticket=1, update_window=1.0) as fake:
        fake.add(1, T0)
        options = {"base_url": fake.base_url, "email": EMAIL, "api_token": API_TOKEN}
        limited = ZendeskConnector("helpdesk", ZendeskOptions.model_validate(options))
        try:
            limited.write(TicketWrite("1", status="pending"))
            limited.write(TicketWrite("1", status="solved"))  # 429, Retry-After: 1, again
        finally:
            limited.close()

    assert fake.tickets[1]["status"] == "solved"
    assert [body["ticket"]["status"] for _, body in fake.writes] == [
        "pending",
        "solved",
        "solved",
    ]


def test_an_operators_done_and_assignee_reach_the_ticket_once_through_run_once(
    fake: FakeZendesk, emulator: Emulator, sqlite_url: str
) -> None:
    fake.clock.stop_at(T0 + dt.timedelta(hours=1))
    fake.touch(3, T0 + dt.timedelta(minutes=3), assignee_id=602)  # Nina is known by email
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "helpdesk": {
                    "kind": "zendesk",
                    "base_url": fake.base_url,
                    "email": EMAIL,
                    "api_token": API_TOKEN,
                    "requests_per_minute": 10**4,
                    "write_back": {
                        "status": {"DONE": "solved", "STARTED": "pending"},
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
            fake.clock.advance(dt.timedelta(minutes=2))  # past Zendesk's withheld minute
            return summary

        assert one_run().pushed == 3
        _patch(emulator, "2", status="DONE", assignee_email="nina@acme.example")

        wrote = one_run()  # the write; Zendesk withholds the change for a minute
        pushed = one_run()  # the solved ticket, as Zendesk now has it
        settled = one_run()

    assert (fake.tickets[2]["status"], fake.tickets[2]["assignee_id"]) == ("solved", 602)
    assert fake.writes == [(2, {"ticket": {"status": "solved", "assignee_id": 602}})]
    assert wrote.pushed == 0 and pushed.pushed == 1 and settled.pushed == 0
    task = tasks_by_ticket(emulator)["2"]
    assert task["status"] == "DONE" and task["fields"]["source_status"] == "solved"
    assert task["assignee"]["email"] == "nina@acme.example"


def _patch(emulator: Emulator, number: str, **changes: Any) -> None:
    uid = task_uid("helpdesk", number)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.patch(f"{emulator.base_url}/tasks/{uid}", json=changes, headers=headers)
    assert answer.status_code == 200, answer.text
